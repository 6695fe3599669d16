package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowgate/flowgate/uplink"
)

// health is the body of /healthz.
type health struct {
	Status          string       `json:"status"` // ok or unavailable
	BrokerListening bool         `json:"broker_listening"`
	UplinkRunning   bool         `json:"uplink_running"`
	UplinkConnected bool         `json:"uplink_connected"`
	UplinkQueued    int          `json:"uplink_queued"`
	Devices         int64        `json:"devices_connected"`
	Uplink          uplinkHealth `json:"uplink"`
}

// uplinkHealth is the uplink's detail in /healthz: the same figures as the
// metrics, for a person with curl.
type uplinkHealth struct {
	QueuedBytes      int64             `json:"queued_bytes"`
	OldestAgeSeconds float64           `json:"oldest_age_seconds"`
	Inflight         int               `json:"inflight"`
	Forwarded        uint64            `json:"forwarded"`
	Resent           uint64            `json:"resent"`
	Dropped          map[string]uint64 `json:"dropped"`
	Quarantined      uint64            `json:"quarantined"`
	Reconnects       uint64            `json:"reconnects"`
	Stalls           uint64            `json:"stalls"`
	StoreBytes       int64             `json:"store_bytes"`
	Classes          []classHealth     `json:"classes"`
}

type classHealth struct {
	Name   string `json:"name"`
	Queued int    `json:"queued"`
	Bytes  int64  `json:"bytes"`
}

func newUplinkHealth(s uplink.Stats, now time.Time) uplinkHealth {
	h := uplinkHealth{QueuedBytes: s.QueuedBytes, OldestAgeSeconds: oldestAge(s, now).Seconds(),
		Inflight: s.Inflight, Forwarded: s.Forwarded, Resent: s.Resent, Dropped: map[string]uint64{},
		Quarantined: s.Quarantined, Reconnects: s.Reconnects, Stalls: s.Stalls, StoreBytes: s.StoreBytes}
	for _, r := range dropReasons {
		h.Dropped[r] = s.Dropped[r]
	}
	for _, c := range s.Classes {
		h.Classes = append(h.Classes, classHealth{c.Name, c.Queued, c.Bytes})
	}
	return h
}

// handleHealth answers 200 only while the broker listens and the uplink
// stage runs. A cloud outage alone keeps it 200: the gateway is doing its
// job, holding events until the link returns; uplink_connected says so.
func (g *Gateway) handleHealth(w http.ResponseWriter, _ *http.Request) {
	st := g.up.Stats()
	h := health{Status: "ok", BrokerListening: g.listening.Load(), UplinkRunning: g.upRunning.Load(),
		UplinkConnected: st.Connected, UplinkQueued: st.Queued, Devices: atomic.LoadInt64(&g.broker.Info.ClientsConnected),
		Uplink: newUplinkHealth(st, time.Now())}
	code := http.StatusOK
	if !h.BrokerListening || !h.UplinkRunning {
		h.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(h)
}

func (g *Gateway) startHTTP(wg *sync.WaitGroup) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.handleHealth)
	mux.HandleFunc("GET /api/catalog", g.handleCatalog) // see catalog.go
	mux.HandleFunc("GET /api/devices", g.handleDevices) // see devicesapi.go
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	if g.cfg.HTTP.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, goroutine, allocs… by name
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", g.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("gateway: http listener %s: %w", g.cfg.HTTP.Listen, err)
	}
	g.httpAddr = ln.Addr()
	// No WriteTimeout: a CPU profile streams for as long as it was asked.
	g.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := g.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}
