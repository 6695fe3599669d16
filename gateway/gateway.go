package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/rules"
	"github.com/flowgate/flowgate/uplink"
)

// Gateway is one running Flowgate: broker, pipeline, uplink and HTTP.
type Gateway struct {
	cfg *config.Config
	log *slog.Logger
	m   *metrics

	registry atomic.Pointer[devices.Registry]
	broker   *mqtt.Server
	pipe     *pipeline
	acks     *acker
	up       *uplink.Uplink
	http     *http.Server
	sensors  *sensorRuntime
	presence *presenceEvents

	brokerAddr    string // host:port of the plain listener, set once the broker listens
	brokerTLSAddr string // host:port of the TLS listener
	httpAddr      net.Addr
	listening     atomic.Bool
	upRunning     atomic.Bool
	ready         chan struct{} // closed once the broker listens
	subID         atomic.Int32  // last inline subscription id

	load     func() (*config.Config, error) // reads the config again; nil: no reloads
	reloadMu sync.Mutex                     // one reload at a time
	running  *config.Config                 // the config the registry and rules in force came from
	reloads  *prometheus.CounterVec
	stamped  map[string]stamp // the config's files as New found them
	ck       checkpoints      // only the rules clock's goroutine uses it after Run starts
}

// New builds a gateway from a validated config. It opens nothing: Run does.
func New(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	g := &Gateway{cfg: cfg, running: cfg, log: log, m: newMetrics(), ready: make(chan struct{})}
	reg, err := devices.NewRegistry(deviceList(cfg.Devices), cfg.Broker.AllowAnonymous)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.registry.Store(reg)
	g.reloads = reloadMetrics(g.m.reg)
	g.stamped = stamps(cfg.Files())
	g.ck = newCheckpoints(g.m.reg)
	router, err := rules.NewRouter(routeList(cfg.Routes, cfg.Uplink.Classes))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	opts := cfg.EngineOptions()
	opts.Logger = log.With("component", "rules")
	flow := rules.NewFlow(router, rules.NewEngine(cfg.RuleSet(), opts), cfg.Rules.LateTopic)
	g.m.watchRules(flow.Engine())
	g.up, err = uplink.New(cfg.UplinkOptions(log.With("component", "uplink")))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.m.watchUplink(g.up)
	g.broker = newBroker(cfg.Broker, log.With("component", "broker"))
	g.m.watchBroker(g.broker)
	g.pipe = &pipeline{
		norm:      normalizer(cfg),
		flow:      flow,
		up:        g.up,
		local:     func(topic string, payload []byte) error { return g.broker.Publish(topic, payload, false, 1) },
		deadTopic: cfg.Ingest.DeadLetterTopic,
		lateTopic: cfg.Rules.LateTopic,
		now:       time.Now,
		m:         g.m,
		log:       log.With("component", "pipeline"),
	}
	g.pipe.init()
	g.presence = &presenceEvents{tracker: devices.NewPresence(), pipe: g.pipe, source: "/gateways/" + cfg.Gateway.ID,
		now: time.Now}
	g.presence.setTypes(cfg.PresenceTypes())
	g.m.watchPresence(g.presence.tracker)
	g.m.watchLimits(g.broker)
	g.acks = newAcker(g.pipe.durable)
	hook := &brokerHook{registry: &g.registry, pipe: g.pipe, acks: g.acks, presence: g.presence, m: g.m, log: log.With("component", "auth")}
	if err := g.broker.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return g, nil
}

// Run starts everything, serves until ctx is cancelled, then shuts down in
// order within the configured shutdown timeout. It returns the first start
// error, or the shutdown's errors.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()

	// The outbox opens first: with a store that cannot be opened there is
	// nothing to accept events into, so nothing else starts.
	// A reload (SIGHUP) waits until the rules have their checkpoint back:
	// replacing them first would make the engine refuse it.
	g.reloadMu.Lock()
	if err := g.up.Open(); err != nil {
		g.reloadMu.Unlock()
		_ = g.up.Close(context.Background())
		return fmt.Errorf("gateway: %w", err)
	}
	g.restoreRules()
	g.reloadMu.Unlock()
	upCtx, stopUplink := context.WithCancel(context.Background())
	defer stopUplink()
	upErr := make(chan error, 1)
	g.upRunning.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer g.upRunning.Store(false)
		upErr <- g.up.Run(upCtx)
	}()

	stopClock := g.startRulesClock(&wg)
	defer stopClock()
	stopWatch := g.watchFiles(&wg)
	defer stopWatch()
	if err := g.startHTTP(&wg); err != nil {
		g.shutdown(stopUplink, stopClock)
		return err
	}
	if err := g.startBroker(); err != nil {
		g.shutdown(stopUplink, stopClock)
		return err
	}
	if err := g.publishCatalog(); err != nil {
		g.log.Warn("event catalog not published", "err", err)
	}
	if err := g.startSensors(ctx, &wg); err != nil {
		g.shutdown(stopUplink, stopClock)
		return err
	}
	// What starting took (decoding the config, opening the store, compiling
	// rules) goes back to the system now rather than when the runtime's
	// scavenger gets to it: an idle gateway on a Pi stays small.
	debug.FreeOSMemory()
	g.log.Info("gateway running", "id", g.cfg.Gateway.ID, "mqtt", g.brokerAddr, "mqtts", g.brokerTLSAddr,
		"http", g.httpAddr.String(), "uplink", g.cfg.Uplink.URL, "devices", g.registry.Load().Len())

	select {
	case <-ctx.Done():
		return g.shutdown(stopUplink, stopClock)
	case err := <-upErr:
		g.log.Error("uplink stopped unexpectedly", "err", err)
		return errors.Join(fmt.Errorf("gateway: uplink stopped: %w", err), g.shutdown(stopUplink, stopClock))
	}
}

func (g *Gateway) startBroker() error {
	specs, err := brokerListeners(g.cfg.Broker, g.log.With("component", "tls"))
	if err != nil {
		return err
	}
	b := g.cfg.Broker
	limit := newConnLimiter(b.ConnectionRate, b.ConnectionBurst, b.ConnectionRateExempt, time.Now)
	for _, spec := range specs {
		l, err := listen(g.broker, spec, limit, g.m, g.log.With("component", "broker"))
		if err != nil {
			return fmt.Errorf("gateway: mqtt listener %s: %w", spec.addr, err)
		}
		if spec.tls != nil {
			g.brokerTLSAddr = l.Address()
		} else {
			g.brokerAddr = l.Address()
		}
	}
	if err := g.broker.Serve(); err != nil {
		return fmt.Errorf("gateway: broker: %w", err)
	}
	g.listening.Store(true)
	close(g.ready)
	return nil
}

// shutdown stops the components front to back within the shutdown
// timeout.
func (g *Gateway) shutdown(stopUplink, stopClock context.CancelFunc) error {
	timeout := g.cfg.Gateway.ShutdownTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	var errs []error

	// 1. No new readings from sensors, no new device connections or
	// publishes, and 2. the publishes in
	// progress finish. Closing the broker disconnects every device and
	// waits for its connection, including a publish blocked on a full
	// uplink during a cloud outage; so the pipeline gets half the timeout
	// to drain, after which blocked publishes are let go unacknowledged
	// (their devices resend them when they reconnect) and the uplink keeps
	// the other half to flush.
	g.listening.Store(false)
	if err := g.stopSensors(ctx); err != nil {
		errs = append(errs, err)
	}
	brokerDone := make(chan struct{})
	go func() {
		defer close(brokerDone)
		_ = g.broker.Close()
	}()
	drainCtx, cancelDrain := context.WithTimeout(ctx, timeout/2)
	if err := g.pipe.close(drainCtx); err != nil {
		errs = append(errs, fmt.Errorf("gateway: pipeline drain: %w", err))
	}
	cancelDrain()
	select {
	case <-brokerDone:
	case <-ctx.Done():
		errs = append(errs, errors.New("gateway: broker did not close in time"))
	}
	// What the devices' last publishes put into the outbox is written, and
	// acknowledged if their connections still take it.
	if err := g.acks.close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("gateway: acknowledgements: %w", err))
	}
	// The rules' clock moves on once more, delivering what fell due, and
	// stops.
	stopClock()
	// 3. The uplink delivers what it holds and disconnects.
	if err := g.up.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	stopUplink()
	// 4. Health and metrics last, so the shutdown can be watched.
	if g.http != nil {
		if err := g.http.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("gateway: http: %w", err))
		}
	}
	err := errors.Join(errs...)
	g.log.Info("gateway stopped", "took", time.Since(start).Round(time.Millisecond), "err", err)
	return err
}

// BrokerAddr is the address the plain MQTT listener is bound to, once Run
// has started it ("" when it is off).
func (g *Gateway) BrokerAddr() string { return g.brokerAddr }

// BrokerTLSAddr is the address the MQTT over TLS listener is bound to, once
// Run has started it ("" without one).
func (g *Gateway) BrokerTLSAddr() string { return g.brokerTLSAddr }

// Ready is closed once the broker listens and devices can connect.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Subscribe calls fn for every message published on the local broker on
// topics matching filter: a local consumer inside the gateway process.
func (g *Gateway) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	return g.broker.Subscribe(filter, int(g.subID.Add(1)), func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
}
