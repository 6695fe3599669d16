package uplink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// Backlog benchmarks: a store filled while no broker is reachable, then
// reopened by a new Uplink pointed at a real mosquitto, as a gateway
// restarted after a long outage would be.

// defaultBacklog is the backlog of the design target (DESIGN.md): a million
// events. FLOWGATE_BENCH_BACKLOG changes it, for a quicker run.
const defaultBacklog = 1_000_000

// benchQueue is the QueueSize of the backlog benchmarks: room for any
// backlog, so that nothing is dropped to make room.
const benchQueue = 1 << 26

// fillers is how many goroutines enqueue a backlog. Filling is setup, not
// measured: many callers share each fsync, which makes it quicker.
const fillers = 256

// backlogSize is FLOWGATE_BENCH_BACKLOG if set, else def.
func backlogSize(b testing.TB, def int) int {
	s := os.Getenv("FLOWGATE_BENCH_BACKLOG")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("FLOWGATE_BENCH_BACKLOG=%q: want a positive number of events", s)
	}
	return n
}

// fillBacklog enqueues n events of ~300 bytes (makeEvents) into a new store
// in dir, in the default class, and closes it. Run is never called, so
// nothing is sent: the broker is unreachable as far as the store knows.
func fillBacklog(b testing.TB, dir string, n int) {
	b.Helper()
	u := newUplink(b, uplink.Options{URL: offline, StoreDir: dir, QueueSize: benchQueue})
	start := time.Now()
	const chunk = 1000
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range fillers {
		wg.Go(func() {
			for failed.Load() == nil {
				i := int(next.Add(chunk)) - chunk
				if i >= n {
					return
				}
				for _, ev := range makeEvents(min(chunk, n-i)) {
					if err := u.Enqueue(context.Background(), ev); err != nil {
						failed.Store(&err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("filling the backlog: %v", *err)
	}
	took := time.Since(start)
	if err := closeOK(b, u); !errors.Is(err, uplink.ErrUndelivered) {
		b.Fatalf("Close after filling: %v, want ErrUndelivered", err)
	}
	b.Logf("backlog of %d events filled in %v (%.0f events/s), %d MB on disk",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), dirBytes(b, dir)>>20)
}

// backlog is a store holding n events, filled the first time a copy is
// asked for and then copied for every run, so that each run drains the
// same store and the million events are enqueued once per benchmark.
type backlog struct {
	n      int
	dir    string
	filled bool
}

// newBacklog names a template store in b's temporary directory; b must
// outlive every benchmark that copies it.
func newBacklog(b *testing.B, n int) *backlog {
	return &backlog{n: n, dir: filepath.Join(b.TempDir(), "template")}
}

// copy fills the template if need be and returns a fresh copy of it, which
// the caller removes.
func (bl *backlog) copy(b *testing.B) string {
	b.Helper()
	if !bl.filled {
		fillBacklog(b, bl.dir, bl.n)
		bl.filled = true
	}
	dst, err := os.MkdirTemp(filepath.Dir(bl.dir), "run")
	if err != nil {
		b.Fatal(err)
	}
	entries, err := os.ReadDir(bl.dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			copyStoreFile(b, filepath.Join(bl.dir, e.Name()), filepath.Join(dst, e.Name()))
		}
	}
	return dst
}

func copyStoreFile(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

func dirBytes(b testing.TB, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	return total
}

// BenchmarkDrainBacklog measures a restart after an outage: a new Uplink
// opens a store holding a backlog (a million events by default) and
// forwards it to a real mosquitto on loopback; the clock runs from New to
// the moment Stats().Queued reaches 0, that is to the last PUBACK.
//
// What is honest here, and what is not:
//   - The backlog is enqueued once (about 25 s for a million) and copied
//     for every run, with the clock stopped: each run drains an identical
//     store. The copy was just written, so it is in the page cache: this is
//     a warm restart. After a power cut a Pi reads the store from its SD
//     card instead (about 100 MB for a million events: seconds more).
//   - Nobody subscribes: mosquitto acknowledges and discards. A subscriber
//     would make mosquitto do more work per event and measure mosquitto's
//     fan-out, not the uplink.
//   - window=20 is mosquitto's default Receive Maximum (max_inflight_messages
//     20), the in-flight window a stock broker allows; window=256 raises it
//     to the uplink's default MaxInflight, so that the window is not what
//     limits.
//   - paho_memory is the reference: paho itself publishing the same bytes
//     (4,096 of the same events, cycled) from memory, with the same window,
//     to the same mosquitto, over one connection. The gap is what the store,
//     the lanes and the acknowledgement bookkeeping cost.
//
// B/op and allocs/op are per drain of the whole backlog; B/event and
// allocs/event divide them by the backlog.
func BenchmarkDrainBacklog(b *testing.B) {
	n := backlogSize(b, defaultBacklog)
	bl := newBacklog(b, n)
	for _, w := range []struct {
		window int
		conf   []string
	}{
		{20, nil}, // mosquitto's default
		{256, []string{"max_inflight_messages 256"}},
	} {
		b.Run(fmt.Sprintf("window=%d", w.window), func(b *testing.B) {
			m := uplinktest.StartMosquitto(b, w.conf...)
			b.Run("uplink", func(b *testing.B) { benchDrain(b, m.URL(), bl, w.window) })
			b.Run("paho_memory", func(b *testing.B) { benchPahoMemory(b, m.URL(), n, w.window) })
		})
	}
}

// benchDrain drains a copy of bl to the broker at url in every iteration.
func benchDrain(b *testing.B, url string, bl *backlog, window int) {
	var opened time.Duration
	var mem memDelta
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dir := bl.copy(b)
		mem.start()
		b.StartTimer()

		start := time.Now()
		u := newUplink(b, uplink.Options{URL: url, StoreDir: dir, QueueSize: benchQueue})
		if err := u.Open(); err != nil {
			b.Fatal(err)
		}
		opened += time.Since(start)
		done := make(chan error, 1)
		go func() { done <- u.Run(context.Background()) }()
		waitDrained(b, u, bl.n)

		b.StopTimer()
		mem.stop()
		checkDrained(b, u, bl.n, window)
		if err := closeOK(b, u); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportDrain(b, bl.n, b.Elapsed())
	b.ReportMetric(float64(opened)/float64(time.Millisecond)/float64(b.N), "open_ms")
	mem.report(b, bl.n*b.N)
}

// waitDrained polls until u holds nothing, failing the benchmark if that
// takes longer than draining n events at 1,000 a second would.
func waitDrained(b *testing.B, u *uplink.Uplink, n int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute + time.Duration(n)*time.Millisecond)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for u.Stats().Queued > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("backlog not drained by the deadline: %+v", u.Stats())
		}
		<-tick.C
	}
}

// checkDrained checks that every event went exactly once, on one
// connection, with the expected window.
func checkDrained(b *testing.B, u *uplink.Uplink, n, window int) {
	b.Helper()
	s := u.Stats()
	if s.Forwarded != uint64(n) || s.Resent != 0 || s.Reconnects != 0 || sum(s.Dropped) != 0 {
		b.Fatalf("Stats = %+v, want %d forwarded, nothing resent or dropped, no reconnect", s, n)
	}
	if got := uplink.WindowSize(u); got != window {
		b.Fatalf("in-flight window %d, want %d", got, window)
	}
}

func sum(m map[string]uint64) uint64 {
	var t uint64
	for _, v := range m {
		t += v
	}
	return t
}

func reportDrain(b *testing.B, n int, took time.Duration) {
	b.ReportMetric(float64(n*b.N)/took.Seconds(), "events/s")
}

// memDelta counts what the process allocates between start and stop, for
// figures per event; b.ReportAllocs gives the same per drain.
type memDelta struct {
	bytes, allocs uint64
	ms            runtime.MemStats
}

func (m *memDelta) start() { runtime.ReadMemStats(&m.ms) }

func (m *memDelta) stop() {
	before := m.ms
	runtime.ReadMemStats(&m.ms)
	m.bytes += m.ms.TotalAlloc - before.TotalAlloc
	m.allocs += m.ms.Mallocs - before.Mallocs
}

func (m *memDelta) report(b *testing.B, events int) {
	b.ReportMetric(float64(m.bytes)/float64(events), "B/event")
	b.ReportMetric(float64(m.allocs)/float64(events), "allocs/event")
}

// benchPahoMemory is the reference for benchDrain: n publishes of the same
// bytes, from memory, by paho over one connection. paho's AsyncSend returns
// once a publish is written, blocking while the broker's Receive Maximum is
// used up, so one goroutine keeps the window full, as the uplink does. The
// last publish blocks until its PUBACK; mosquitto acknowledges one
// connection's publishes in order, so by then every one has been
// acknowledged.
func benchPahoMemory(b *testing.B, url string, n, window int) {
	pubs := memoryPublishes(b, 4096)
	var mem memDelta
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		mem.start()
		b.StartTimer()
		c := pahoConnect(b, url, window)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(n)*time.Millisecond)
		for i := range n - 1 {
			if _, err := c.PublishWithOptions(ctx, pubs[i%len(pubs)], paho.PublishOptions{Method: paho.PublishMethod_AsyncSend}); err != nil {
				b.Fatalf("publish %d: %v", i, err)
			}
		}
		if _, err := c.Publish(ctx, pubs[(n-1)%len(pubs)]); err != nil {
			b.Fatalf("last publish: %v", err)
		}
		cancel()
		b.StopTimer()
		mem.stop()
		_ = c.Disconnect(&paho.Disconnect{})
		b.StartTimer()
	}
	reportDrain(b, n, b.Elapsed())
	mem.report(b, n*b.N)
}

// memoryPublishes returns k events as the uplink encodes them, decoded
// into paho publishes: the same topic, payload and properties on the wire.
func memoryPublishes(b *testing.B, k int) []*paho.Publish {
	u := newUplink(b, uplink.Options{URL: offline})
	pubs := make([]*paho.Publish, k)
	for i, ev := range makeEvents(k) {
		rec, err := uplink.Encode(u, ev)
		if err != nil {
			b.Fatal(err)
		}
		cp, err := packets.ReadPacket(bytes.NewReader(rec))
		if err != nil {
			b.Fatal(err)
		}
		pubs[i] = paho.PublishFromPacketPublish(cp.Content.(*packets.Publish))
	}
	return pubs
}

// dialBroker opens a TCP connection to the broker at url (mqtt://host:port).
func dialBroker(ctx context.Context, b *testing.B, url string) net.Conn {
	b.Helper()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(url, "mqtt://"))
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

// pahoConnect connects a plain paho client to url and checks the broker's
// Receive Maximum is window.
func pahoConnect(b *testing.B, url string, window int) *paho.Client {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn := dialBroker(ctx, b, url)
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: "bench-reference", CleanStart: true, KeepAlive: 30})
	if err != nil {
		b.Fatalf("connect to %s: %v", url, err)
	}
	got := 65535 // MQTT's default when the property is absent
	if ack.Properties != nil && ack.Properties.ReceiveMaximum != nil {
		got = int(*ack.Properties.ReceiveMaximum)
	}
	if got != window {
		b.Fatalf("broker's Receive Maximum %d, want %d", got, window)
	}
	return c
}
