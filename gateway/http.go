package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// health is the body of /healthz.
type health struct {
	Status          string `json:"status"` // ok or unavailable
	BrokerListening bool   `json:"broker_listening"`
	UplinkRunning   bool   `json:"uplink_running"`
	UplinkConnected bool   `json:"uplink_connected"`
	UplinkQueued    int    `json:"uplink_queued"`
	Devices         int64  `json:"devices_connected"`
}

// handleHealth answers 200 only while the broker listens and the uplink
// stage runs. A cloud outage alone keeps it 200: the gateway is doing its
// job, holding events until the link returns; uplink_connected says so.
func (g *Gateway) handleHealth(w http.ResponseWriter, _ *http.Request) {
	st := g.up.Stats()
	h := health{Status: "ok", BrokerListening: g.listening.Load(), UplinkRunning: g.upRunning.Load(),
		UplinkConnected: st.Connected, UplinkQueued: st.Queued, Devices: atomic.LoadInt64(&g.broker.Info.ClientsConnected)}
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", g.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("gateway: http listener %s: %w", g.cfg.HTTP.Listen, err)
	}
	g.httpAddr = ln.Addr()
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
