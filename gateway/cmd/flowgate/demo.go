package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	sim "github.com/flowgate/flowgate/firmware-sim"
	"github.com/flowgate/flowgate/gateway"
	"github.com/flowgate/flowgate/gateway/config"
)

// demoSecret is flowgate-sim's default -secret, from which the passwords
// of configs/scenarios/facility-devices.yaml derive.
const demoSecret = "flowgate-sim"

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flowgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "configs/demo.yaml", "config `FILE` (YAML)")
	interval := fs.Duration("interval", 2*time.Second, "time between two readings of one simulated device")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowgate demo [-c FILE] [-interval 2s]\n\n"+
			"Run the gateway with FILE, a stand-in cloud broker at its uplink url, and\n"+
			"flowgate-sim's facility scenario, in real time, for FILE's devices of kind\n"+
			"sim-env. Prints what the devices send, what is dead-lettered, and what\n"+
			"reaches the cloud.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *interval <= 0 {
		fmt.Fprintln(stderr, "flowgate demo: -interval must be positive")
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signalContext(log)
	defer stop()

	out := &printer{w: stdout}
	cloud, err := startCloud(cfg.Uplink.URL, out, log.With("component", "cloud"))
	if err != nil {
		log.Error("stand-in cloud", "err", err)
		return 1
	}
	defer cloud.Close()

	g, err := gateway.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	gwErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); gwErr <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-gwErr:
		log.Error("gateway", "err", err)
		return 1
	}
	_ = g.Subscribe(gateway.DeadLetterFilter(cfg.Ingest.DeadLetterTopic), func(_ string, payload []byte) { out.deadLetter(payload) })
	out.line("flowgate demo: gateway mqtt://%s, cloud %s, metrics http://%s/metrics; Ctrl-C stops", g.BrokerAddr(), cfg.Uplink.URL, cfg.HTTP.Listen)

	runner, err := demoDevices(cfg, g, *interval, out, log)
	if err != nil {
		log.Error("simulated devices", "err", err)
		stop()
		<-gwErr
		return 1
	}
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runner.Run(simCtx); err != nil && simCtx.Err() == nil {
			log.Error("simulated devices", "err", err)
		}
	}()

	err = <-gwErr
	stopSim()
	if err != nil {
		log.Error("stopped with errors", "err", err)
		return 1
	}
	return 0
}

// demoDevices is flowgate-sim's facility scenario, in real time from now:
// the rooms of configs/scenarios/facility-devices.yaml (their passwords
// derive from flowgate-sim's default secret), a few of them failing, one
// in fifty payloads malformed. It prints every publish.
func demoDevices(cfg *config.Config, g *gateway.Gateway, interval time.Duration, out *printer, log *slog.Logger) (*sim.Runner, error) {
	var n int
	for _, d := range cfg.Devices {
		if d.Kind == "sim-env" {
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no devices of kind sim-env in the config (devices_file: scenarios/facility-devices.yaml)")
	}
	// 10,000 readings per room (at the default -interval 2s, 5.5 hours):
	// the plan is made before the first is sent.
	start := time.Now().UTC().Truncate(time.Second)
	plan, err := sim.NewPlan("facility", sim.Options{Seed: 1, Start: start, Duration: 10000 * interval,
		Devices: n, Interval: interval, Faults: 0.02})
	if err != nil {
		return nil, err
	}
	return &sim.Runner{Broker: "mqtt://" + g.BrokerAddr(), Plan: plan, Clock: &sim.Clock{Start: start, Speed: 1},
		Secret: demoSecret, QoS: 1, Logger: log.With("component", "sim"),
		OnPublish: func(device string, m *sim.Message) {
			out.line("device  %-9s → devices/%s/%s %s", device, device, m.Topic, m.Payload())
		}}, nil
}

// startCloud runs an embedded broker standing in for the cloud at rawURL
// and prints every event that arrives.
func startCloud(rawURL string, out *printer, log *slog.Logger) (*mqtt.Server, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	_ = s.AddHook(new(allowAll), nil)
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "cloud", Address: u.Host})); err != nil {
		return nil, fmt.Errorf("listen %s: %w", u.Host, err)
	}
	if err := s.Serve(); err != nil {
		return nil, err
	}
	err = s.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if !strings.HasPrefix(pk.TopicName, "$") { // the stand-in's own $SYS topics
			out.cloudEvent(pk.TopicName, pk.Payload)
		}
	})
	return s, err
}

// printer writes the demo's narrative, one line at a time.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (p *printer) cloudEvent(topic string, payload []byte) {
	var ev struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		p.line("CLOUD   %s (not a CloudEvent) %s", topic, payload)
		return
	}
	p.line("CLOUD   %-9s ← %s %s id=%s %s", ev.Subject, topic, ev.Type, ev.ID, ev.Data)
}

func (p *printer) deadLetter(payload []byte) {
	var dl struct{ Device, Reason, Error, Topic string }
	_ = json.Unmarshal(payload, &dl)
	p.line("DEAD    %-9s ✗ %s %s: %s", dl.Device, dl.Topic, dl.Reason, dl.Error)
}

// allowAll lets every client of the stand-in cloud in.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
