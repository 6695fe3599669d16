// Package bench is the side-by-side benchmark of `make bench` (issue 8):
// the same load, from the same generator (package load), against Debian's
// mosquitto and against the flowgate binary running the full pipeline
// (configs/bench/flowgate.yaml: normalization, 50 rules, the durable outbox
// forwarding every reading to a stand-in cloud mosquitto), alternating
// A B A B in one run so that the ratios hold on a noisy machine. It also
// measures latency through the gateway, its memory idle and under 1,000
// devices, takes CPU and heap profiles of it, and adds the outbox figures
// of the Go benchmarks. A third party, mochi alone (the broker Flowgate
// embeds, with nothing on it: `flowgate-sim broker`), runs the idle,
// latency and footprint loads too, so that the table shows which part of
// those figures is the embedded broker's and which the pipeline's. Run
// prints nothing but progress; Report.Markdown writes the table.
//
// Every process it starts listens on 127.0.0.1 on a port found free, and
// is stopped before Run returns.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/firmware-sim/load"
)

// Options is one harness run. Full and Short give the two sizes.
type Options struct {
	Flowgate  string // the flowgate binary
	Config    string // the gateway's config (configs/bench/flowgate.yaml)
	Mosquitto string // the mosquitto binary; empty: found on PATH or /usr/sbin
	Sim       string // the flowgate-sim binary, whose broker command is mochi alone; empty: this executable, which must be flowgate-sim
	Dir       string // working files (configs, stores); empty: a temporary directory, removed after

	Rounds           int           // ingest rounds, each mosquitto then flowgate
	IngestDevices    int           // publisher connections
	IngestDuration   time.Duration // of each ingest run
	Inflight         int           // QoS 1 window of each device
	Size             int           // payload bytes
	LatencyRate      float64       // msg/s of the latency run
	LatencyDuration  time.Duration //
	LatencyWarmup    time.Duration // the steady figures leave out messages sent this early
	IdleSettle       time.Duration // how long the gateway idles before its idle RSS is read
	FootprintDevices int
	FootprintRate    float64 // msg/s per device
	FootprintTime    time.Duration

	// Only names the phases to run, of Phases; empty: all of them.
	Only []string

	GoBench    string // `go test -bench` output to take the outbox figures from; empty: none
	ProfileDir string // where to write the gateway's CPU and heap profiles; empty: none
	Log        io.Writer
}

// Phases are the harness's runs, in the order they run.
var Phases = []string{"idle", "ingest", "latency", "footprint"}

// Full is the size `make bench` runs: about four minutes.
func Full() Options {
	return Options{Rounds: 3, IngestDevices: 100, IngestDuration: 10 * time.Second, Inflight: 10, Size: 64,
		LatencyRate: 5000, LatencyDuration: 10 * time.Second, LatencyWarmup: 2 * time.Second, IdleSettle: 5 * time.Second,
		FootprintDevices: 1000, FootprintRate: 10, FootprintTime: 20 * time.Second, Log: io.Discard}
}

// Short proves the harness works in a few seconds; its figures mean
// nothing.
func Short() Options {
	o := Full()
	o.Rounds, o.IngestDevices, o.IngestDuration = 1, 10, time.Second
	o.LatencyRate, o.LatencyDuration, o.LatencyWarmup, o.IdleSettle = 500, time.Second, 200*time.Millisecond, 200*time.Millisecond
	o.FootprintDevices, o.FootprintTime = 20, time.Second
	return o
}

// harness is one run's processes and files.
type harness struct {
	o       Options
	dir     string
	devices string
	mosq    string
	sim     string
	ref     *proc // mosquitto A: the reference broker
	refAddr string
	mochi   *proc // mochi alone: the embedded broker without the gateway
	mochiAd string
	cloud   *proc // mosquitto behind the gateway
	cloudAd string
	gw      *gateway
	rep     *Report
	lost    [3]uint64 // messages lost in all runs, by party
}

// party is who a run measures.
type party int

const (
	mosquitto party = iota // the reference
	mochi                  // the embedded broker alone
	flowgate               // the gateway, full pipeline
)

func (p party) String() string { return [...]string{"mosquitto", "mochi alone", "flowgate"}[p] }

// Run runs every phase and returns the report.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	for _, name := range o.Only {
		if !slices.Contains(Phases, name) {
			return nil, fmt.Errorf("bench: no phase %q (phases: %s)", name, strings.Join(Phases, ", "))
		}
	}
	h := &harness{o: o, rep: &Report{}}
	if h.mosq, err = findMosquitto(o.Mosquitto); err != nil {
		return nil, err
	}
	if h.sim = o.Sim; h.sim == "" {
		if h.sim, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: the flowgate-sim binary: %w", err)
		}
	}
	h.dir = o.Dir
	if h.dir == "" {
		if h.dir, err = os.MkdirTemp("", "flowgate-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(h.dir)
	}
	defer h.stopAll()
	if h.devices, err = writeDevices(h.dir, max(o.IngestDevices, o.FootprintDevices)); err != nil {
		return nil, err
	}
	if err := h.restartBrokers(ctx); err != nil {
		return nil, err
	}
	if h.cloud, h.cloudAd, err = startMosquitto(ctx, h.mosq, h.dir, "mosquitto (cloud)"); err != nil {
		return nil, err
	}
	phases := map[string]func(context.Context) error{"idle": h.idle, "ingest": h.ingest, "latency": h.latency, "footprint": h.footprint}
	for _, name := range Phases {
		if len(o.Only) > 0 && !slices.Contains(o.Only, name) {
			continue
		}
		if err := phases[name](ctx); err != nil {
			return nil, err
		}
	}
	h.rep.add(Row{Figure: "messages lost, every run above", Value: fmt.Sprint(h.lost[flowgate]), Reference: fmt.Sprint(h.lost[mosquitto]),
		Ratio: "—", Target: "0", Met: met(h.lost[flowgate] == 0)})
	// mochi drops a QoS 1 message to a subscriber that has broker.max_inflight
	// unacknowledged, where mosquitto (max_queued_messages 0) queues it.
	h.rep.add(Row{Figure: "messages lost, mochi alone, every run above (it drops what a subscriber is sent beyond max_inflight unacknowledged)", Value: fmt.Sprint(h.lost[mochi]), Reference: fmt.Sprint(h.lost[mosquitto]),
		Ratio: "—", Target: "—", Met: "—"})
	if o.GoBench != "" {
		if err := h.outbox(); err != nil {
			return nil, err
		}
	}
	return h.rep, nil
}

func (h *harness) stopAll() {
	for _, p := range []*proc{h.ref, h.mochi, h.cloud} {
		if p != nil {
			p.stop()
		}
	}
	if h.gw != nil {
		h.gw.stop()
	}
}

func (h *harness) logf(format string, args ...any) { fmt.Fprintf(h.o.Log, format+"\n", args...) }

// restartGateway stops the gateway, if running, and starts a fresh one
// with an empty store.
func (h *harness) restartGateway(ctx context.Context) error {
	if h.gw != nil {
		h.gw.stop()
		h.gw = nil
	}
	gw, err := startFlowgate(ctx, &h.o, h.dir, h.devices, h.cloudAd)
	if err != nil {
		return err
	}
	h.gw = gw
	return nil
}

// restartBrokers starts fresh reference brokers, mosquitto and mochi
// alone, stopping those running: what a broker holds after a phase (a
// subscriber's backlog, a grown heap) is not the next phase's to carry.
func (h *harness) restartBrokers(ctx context.Context) (err error) {
	for _, p := range []*proc{h.ref, h.mochi} {
		if p != nil {
			p.stop()
		}
	}
	h.ref, h.mochi = nil, nil
	if h.ref, h.refAddr, err = startMosquitto(ctx, h.mosq, h.dir, "mosquitto (reference)"); err != nil {
		return err
	}
	h.mochi, h.mochiAd, err = startMochi(ctx, h.sim)
	return err
}

// runFresh restarts every broker and the gateway, then runs the same load,
// set from loadConfig's by set, against each party in turn.
func (h *harness) runFresh(ctx context.Context, what string, devices int, set func(*load.Config)) (res [3]*load.Result, err error) {
	if err = h.restartBrokers(ctx); err == nil {
		err = h.restartGateway(ctx)
	}
	for _, who := range []party{mosquitto, mochi, flowgate} {
		if err != nil {
			return res, err
		}
		c := h.loadConfig(who, devices)
		set(&c)
		res[who], err = h.runLoad(ctx, what, c, who)
	}
	return res, err
}

// loadConfig is the generator's settings shared by every run: devices
// bench-0…, logging in with their id and password, publishing on their
// own topic, one subscriber.
func (h *harness) loadConfig(who party, devices int) load.Config {
	c := load.Defaults()
	c.Publishers, c.Subscribers, c.QoS, c.SubQoS, c.Size, c.Inflight = devices, 1, 1, 1, h.o.Size, h.o.Inflight
	c.Topic, c.IDPrefix, c.SubIDPrefix = "devices/{id}/env", "bench-", "bench-sub-"
	c.Username, c.Password = "{id}", devicePassword
	c.Drain, c.DrainMax = 5*time.Second, 3*time.Minute
	switch who {
	case flowgate:
		c.Broker, c.SubBroker, c.SubTopic, c.PID = h.gw.mqtt, h.cloudAd, "flowgate/bench/events/bench.reading", h.gw.pid()
	case mochi:
		c.Broker, c.SubTopic, c.PID = h.mochiAd, "devices/+/env", h.mochi.pid()
	default:
		c.Broker, c.SubTopic, c.PID = h.refAddr, "devices/+/env", h.ref.pid()
	}
	return c
}

// runLoad runs the generator and checks the run is usable.
func (h *harness) runLoad(ctx context.Context, what string, c load.Config, who party) (*load.Result, error) {
	what += " " + who.String()
	res, err := load.Run(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", what, err)
	}
	h.lost[who] += res.Lost
	h.logf("%s (pid %d): sent %d, acked %.0f/s, received %.0f/s, lost %d, p50 %v p99 %v, RSS max %s, generator CPU %v",
		what, c.PID, res.Sent, res.AckRate(), res.RecvRate(), res.Lost, res.P50, res.P99, mbytes(res.Broker.RSSMax), res.LoadCPU)
	if len(res.Errors) > 0 {
		return nil, fmt.Errorf("bench: %s: %v", what, res.Errors)
	}
	if res.Sent == 0 {
		return nil, fmt.Errorf("bench: %s: nothing sent", what)
	}
	return res, nil
}

// idle starts the gateway and reads its memory, and the reference
// brokers', after it idled.
func (h *harness) idle(ctx context.Context) error {
	if err := h.restartGateway(ctx); err != nil {
		return err
	}
	t := time.NewTimer(h.o.IdleSettle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	var rss, file [3]int64
	for who, p := range [3]*proc{h.ref, h.mochi, h.gw.proc} {
		var err error
		if rss[who], err = load.ReadRSS(p.pid()); err == nil {
			file[who], err = load.ReadStatus(p.pid(), "RssFile")
		}
		if err != nil {
			return err
		}
	}
	gw, ref, mo := rss[flowgate], rss[mosquitto], rss[mochi]
	h.logf("idle: flowgate %s, mosquitto %s, mochi alone %s", mbytes(gw), mbytes(ref), mbytes(mo))
	fig := fmt.Sprintf("RSS idle, no device, %v after start", h.o.IdleSettle)
	h.rep.add(Row{Figure: fig, Value: mbytes(gw), Reference: mbytes(ref), Ratio: ratio(float64(gw), float64(ref)), Target: "≤ 25 MB", Met: met(gw <= 25<<20)})
	h.rep.add(Row{Figure: fig + ": mochi alone", Value: mbytes(mo), Reference: mbytes(ref), Ratio: ratio(float64(mo), float64(ref)), Target: "—", Met: "—"})
	h.rep.note("RSS includes each program's mapped files, its binary first: idle, flowgate %s, mochi alone %s (it runs inside flowgate-sim), mosquitto %s.",
		mbytes(file[flowgate]), mbytes(file[mochi]), mbytes(file[mosquitto]))
	return nil
}

// ingest alternates mosquitto and flowgate under the same load. mochi
// alone does not run it: it acknowledges a publish on receipt and drops a
// subscriber's copy past max_inflight unacknowledged, so as fast as it
// acknowledges it discards most of what the subscriber should get, and
// its rate would not compare with mosquitto's, which queues them.
func (h *harness) ingest(ctx context.Context) error {
	if h.gw == nil { // the idle phase did not run
		if err := h.restartGateway(ctx); err != nil {
			return err
		}
	}
	var ratios []float64
	var cpuShare float64
	for round := 1; round <= h.o.Rounds; round++ {
		var res [3]*load.Result
		for _, who := range []party{mosquitto, flowgate} {
			c := h.loadConfig(who, h.o.IngestDevices)
			c.Duration = h.o.IngestDuration
			stopProfile := h.profileIngest(ctx, who == flowgate && round == 1)
			r, err := h.runLoad(ctx, fmt.Sprintf("ingest round %d", round), c, who)
			if perr := stopProfile(); err == nil && perr != nil {
				err = perr
			}
			if err != nil {
				return err
			}
			res[who] = r
			cpuShare = max(cpuShare, r.LoadCPU.Seconds()/r.AckTime.Seconds())
		}
		a, b := res[mosquitto], res[flowgate]
		ratios = append(ratios, b.AckRate()/a.AckRate())
		h.rep.add(Row{Figure: fmt.Sprintf("ingest, round %d: QoS 1 publishes acknowledged, %d devices, %d B", round, h.o.IngestDevices, h.o.Size),
			Value: rate(b.AckRate()), Reference: rate(a.AckRate()), Ratio: ratio(b.AckRate(), a.AckRate()),
			Target: "≥ 1.0×", Met: met(b.AckRate() >= a.AckRate())})
		h.rep.add(Row{Figure: fmt.Sprintf("ingest, round %d: delivered to the subscriber (cloud for Flowgate)", round),
			Value: rate(b.RecvRate()), Reference: rate(a.RecvRate()), Ratio: ratio(b.RecvRate(), a.RecvRate()), Target: "—", Met: "—"})
	}
	med := median(ratios)
	h.rep.add(Row{Figure: fmt.Sprintf("ingest: median ratio of %d rounds (spread %.2f–%.2f)", len(ratios), slices.Min(ratios), slices.Max(ratios)),
		Value: "—", Reference: "—", Ratio: fmt.Sprintf("%.2f×", med), Target: "≥ 1.0×", Met: met(med >= 1)})
	h.rep.note("Ingest: each device keeps up to %d QoS 1 publishes in flight; the subscriber is QoS 1. Mosquitto acknowledges on receipt; "+
		"Flowgate once the event is fsynced in its outbox, and then forwards it to the cloud mosquitto, where the subscriber is. "+
		"The generator used at most %.0f%% of one core in these runs.", h.o.Inflight, cpuShare*100)
	return nil
}

// profileIngest starts a CPU profile of the gateway for the ingest run
// about to start; the returned function waits for it and takes a heap
// profile.
func (h *harness) profileIngest(ctx context.Context, on bool) func() error {
	if !on || h.o.ProfileDir == "" {
		return func() error { return nil }
	}
	if err := os.MkdirAll(h.o.ProfileDir, 0o755); err != nil {
		return func() error { return fmt.Errorf("bench: %w", err) }
	}
	cpu := filepath.Join(h.o.ProfileDir, "flowgate-ingest-cpu.pprof")
	heap := filepath.Join(h.o.ProfileDir, "flowgate-ingest-heap.pprof")
	secs := max(int(h.o.IngestDuration/time.Second)-1, 1)
	done := make(chan error, 1)
	go func() { done <- h.gw.profile(ctx, "profile", secs, cpu) }()
	return func() error {
		err := <-done
		if err == nil {
			err = h.gw.profile(ctx, "heap", 0, heap)
		}
		if err == nil {
			h.rep.note("Profiles of the gateway during ingest round 1: `go tool pprof -top %s %s` (CPU, %d s), and %s (heap after the run).",
				h.o.Flowgate, cpu, secs, heap)
		}
		return err
	}
}

// latency sends a steady rate through each broker, all fresh: the ingest
// rounds leave a store that Badger is still compacting, and brokers whose
// heaps grew with a subscriber's backlog.
func (h *harness) latency(ctx context.Context) error {
	res, err := h.runFresh(ctx, fmt.Sprintf("latency at %.0f/s", h.o.LatencyRate), h.o.IngestDevices, func(c *load.Config) {
		c.Rate, c.Duration, c.Warmup = h.o.LatencyRate, h.o.LatencyDuration, h.o.LatencyWarmup
	})
	if err != nil {
		return err
	}
	a, b, m := res[mosquitto], res[flowgate], res[mochi]
	fig := fmt.Sprintf("latency device → cloud at %s msg/s, %d devices", thousands(int64(h.o.LatencyRate)), h.o.IngestDevices)
	h.rep.add(Row{Figure: fig + ", p50", Value: ms(b.P50), Reference: ms(a.P50), Ratio: ratio(float64(b.P50), float64(a.P50)), Target: "—", Met: "—"})
	h.rep.add(Row{Figure: fig + ", p99", Value: ms(b.P99), Reference: ms(a.P99), Ratio: ratio(float64(b.P99), float64(a.P99)),
		Target: "≤ 5 ms", Met: met(b.P99 <= 5*time.Millisecond)})
	h.rep.add(Row{Figure: fig + ", p99.9", Value: ms(b.P999), Reference: ms(a.P999), Ratio: ratio(float64(b.P999), float64(a.P999)), Target: "—", Met: "—"})
	if w := h.o.LatencyWarmup; w > 0 {
		// The same runs without their first seconds, which hold the start's
		// costs (connections, the runtime's first heap growth, the store's first files).
		sa, sb := a.Steady, b.Steady
		steady := fmt.Sprintf("the same runs, messages sent after the first %v", w)
		h.rep.add(Row{Figure: steady + ", p50", Value: ms(sb.P50), Reference: ms(sa.P50), Ratio: ratio(float64(sb.P50), float64(sa.P50)), Target: "—", Met: "—"})
		h.rep.add(Row{Figure: steady + ", p99", Value: ms(sb.P99), Reference: ms(sa.P99), Ratio: ratio(float64(sb.P99), float64(sa.P99)),
			Target: "≤ 5 ms", Met: met(sb.P99 <= 5*time.Millisecond)})
		sm := m.Steady
		alone := steady + ": mochi alone, device → broker → subscriber"
		h.rep.add(Row{Figure: alone + ", p50", Value: ms(sm.P50), Reference: ms(sa.P50), Ratio: ratio(float64(sm.P50), float64(sa.P50)), Target: "—", Met: "—"})
		h.rep.add(Row{Figure: alone + ", p99", Value: ms(sm.P99), Reference: ms(sa.P99), Ratio: ratio(float64(sm.P99), float64(sa.P99)), Target: "—", Met: "—"})
	}
	h.rep.note("Latency: from the time each message was due (stamped in its payload) to its arrival at the subscriber; "+
		"for mosquitto (the reference) and mochi alone that is device → broker → subscriber, for Flowgate device → gateway (fsync) → cloud mosquitto → subscriber. "+
		"Achieved rates: mosquitto %s, mochi alone %s, Flowgate %s.", rate(a.RecvRate()), rate(m.RecvRate()), rate(b.RecvRate()))
	return nil
}

// footprint runs many slow devices against fresh brokers and a fresh
// gateway: each one's memory is its own under this load, not what an
// earlier phase left behind.
func (h *harness) footprint(ctx context.Context) error {
	total := h.o.FootprintRate * float64(h.o.FootprintDevices)
	res, err := h.runFresh(ctx, fmt.Sprintf("footprint %d devices", h.o.FootprintDevices), h.o.FootprintDevices, func(c *load.Config) {
		c.Rate, c.Duration, c.Inflight = total, h.o.FootprintTime, 1
	})
	if err != nil {
		return err
	}
	a, b, m := res[mosquitto], res[flowgate], res[mochi]
	ra, rb, rm := a.Broker.RSSMax, b.Broker.RSSMax, m.Broker.RSSMax
	fig := fmt.Sprintf("RSS, largest sample, %s devices at %.0f msg/s each for %v", thousands(int64(h.o.FootprintDevices)), h.o.FootprintRate, h.o.FootprintTime)
	h.rep.add(Row{Figure: fig, Value: mbytes(rb), Reference: mbytes(ra), Ratio: ratio(float64(rb), float64(ra)), Target: "≤ 60 MB", Met: met(rb <= 60<<20)})
	h.rep.add(Row{Figure: "the same run: p99 latency device → cloud", Value: ms(b.P99), Reference: ms(a.P99),
		Ratio: ratio(float64(b.P99), float64(a.P99)), Target: "—", Met: "—"})
	h.rep.add(Row{Figure: fig + ": mochi alone", Value: mbytes(rm), Reference: mbytes(ra), Ratio: ratio(float64(rm), float64(ra)), Target: "—", Met: "—"})
	return nil
}

// outbox adds the uplink's enqueue and drain figures from the Go
// benchmarks' output.
func (h *harness) outbox() error {
	f, err := os.Open(h.o.GoBench)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	g, err := parseGoBench(f)
	if err != nil {
		return fmt.Errorf("bench: %s: %w", h.o.GoBench, err)
	}
	type fig struct {
		figure, name, ref string
		target            float64
	}
	for _, x := range []fig{
		{"outbox: durable enqueues (group commit), nothing delivered: each spills an older one into Badger", "BenchmarkDurableEnqueue/journal", "BenchmarkRawBadgerBatch/explicit", 100000},
		{"the same, without the journal (every event into Badger)", "BenchmarkDurableEnqueue/badger", "BenchmarkRawBadgerBatch/explicit", 100000},
		{"the same, the journal alone: room for every event, nothing spills (nor is acknowledged)", "BenchmarkDurableEnqueue/hot", "BenchmarkRawBadgerBatch/explicit", 100000},
		{"outbox: 1 M backlog drained to mosquitto, window 20", "BenchmarkDrainBacklog/window=20/uplink", "BenchmarkDrainBacklog/window=20/paho_memory", 20000},
		{"outbox: 1 M backlog drained to mosquitto, window 256", "BenchmarkDrainBacklog/window=256/uplink", "BenchmarkDrainBacklog/window=256/paho_memory", 20000},
	} {
		v, ok := g.value(x.name, "events/s")
		if !ok {
			h.rep.note("%s: not in %s", x.name, h.o.GoBench)
			continue
		}
		ref, _ := g.value(x.ref, "events/s")
		h.rep.add(Row{Figure: x.figure, Value: rate(v), Reference: rate(ref), Ratio: ratio(v, ref), Target: "≥ " + rate(x.target), Met: met(v >= x.target)})
	}
	h.rep.note("Outbox references: raw Badger batches of the same bytes (enqueue) and paho publishing the same events from memory (drain), from the Go benchmarks of the same `make bench`.")
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
