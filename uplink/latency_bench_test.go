package uplink_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// Live traffic whose latency is measured: liveRate events a second for
// liveFor, of type liveType, so that they alone are published on the topic
// the cloud subscriber listens to.
const (
	liveRate = 2000
	liveFor  = 3 * time.Second
	liveType = "live"
	// latencyBacklog is the backlog draining meanwhile in the backlog cases.
	latencyBacklog = 200_000
)

// BenchmarkLiveLatency measures the latency of live events, from the moment
// a device's event is due to be enqueued to its arrival at a subscriber of a
// real mosquitto on loopback (the default window of 20), with a durable
// store (each Enqueue waits for its fsync).
//
//   - online: nothing else queued.
//   - backlog/class=alarm: a backlog of 200,000 telemetry events drains
//     meanwhile, and the live events go into the alarm lane, which goes
//     first.
//   - backlog/class=telemetry: the same, with live events in the telemetry
//     lane, behind the backlog (a class is sent in the order accepted).
//
// p50_ms, p99_ms and max_ms are to the arrival; enq_p50_ms and so on to
// the return of Enqueue, once the event is synced to disk, which is the
// share of the store's group commit.
//
// Events are enqueued on a fixed schedule, each from its own goroutine, and
// latency is counted from the scheduled time, not from when a busy enqueuer
// got round to it, so a stall shows in full. The subscriber listens only to
// the live events' topic: the backlog is acknowledged and discarded by
// mosquitto, as in BenchmarkDrainBacklog.
func BenchmarkLiveLatency(b *testing.B) {
	m := uplinktest.StartMosquitto(b)
	b.Run("online", func(b *testing.B) {
		benchLatency(b, m, "telemetry", func(b *testing.B) string { return b.TempDir() })
	})
	bl := newBacklog(b, latencyBacklog)
	for _, class := range []string{"alarm", "telemetry"} {
		b.Run("backlog/class="+class, func(b *testing.B) { benchLatency(b, m, class, bl.copy) })
	}
}

// benchLatency runs the live traffic in every iteration, on an Uplink with
// the store that dir returns, and reports percentiles over every event.
func benchLatency(b *testing.B, m *uplinktest.Mosquitto, class string, dir func(*testing.B) string) {
	var total, durable []time.Duration
	// The clock runs throughout, setup included: b.Loop decides how many
	// runs to do from it, and one run, over liveFor, is enough.
	for b.Loop() {
		t, d := liveLatencies(b, m, class, dir(b))
		total, durable = append(total, t...), append(durable, d...)
	}
	report(b, total, "")
	report(b, durable, "enq_")
}

// report reports the median, 99th percentile and maximum of lat, in
// milliseconds, as prefix+"p50_ms" and so on.
func report(b *testing.B, lat []time.Duration, prefix string) {
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), prefix+"p50_ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), prefix+"p99_ms")
	b.ReportMetric(ms(lat[len(lat)-1]), prefix+"max_ms")
}

// liveLatencies opens an Uplink on the store in dir, connects it to m, runs
// the live traffic into class and returns each event's latency: to its
// arrival (total), and to the return of its Enqueue, once it is synced to
// disk (durable). It stops the Uplink, leaving whatever backlog is left,
// and removes dir.
func liveLatencies(b *testing.B, m *uplinktest.Mosquitto, class, dir string) (total, durable []time.Duration) {
	defer os.RemoveAll(dir)
	u := newUplink(b, uplink.Options{URL: m.URL(), StoreDir: dir, QueueSize: benchQueue})
	if err := u.Open(); err != nil {
		b.Fatal(err)
	}
	backlog := u.Stats().Queued
	evs := liveEvents(liveRate * int(liveFor/time.Second))
	sub := subscribeLive(b, m.URL(), evs)
	defer sub.close()
	done := make(chan error, 1)
	go func() { done <- u.Run(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = u.Close(ctx) // ErrUndelivered if the backlog is not drained yet: it need not be
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	eventually(b, "connection", func() bool { return u.Stats().Connected })

	due, enqueued := enqueueOnSchedule(b, u, class, evs)
	if left := u.Stats().Queued; backlog > 0 && left == 0 {
		b.Fatalf("the backlog of %d drained before the live traffic ended, so this was not measured during a drain", backlog)
	}
	durable = make([]time.Duration, len(due))
	for i := range due {
		durable[i] = enqueued[i].Sub(due[i])
	}
	return sub.wait(b, due, time.Minute+time.Duration(backlog)*time.Millisecond), durable
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// liveEvents returns n events like makeEvents' (~300 bytes), of liveType.
func liveEvents(n int) []*event.Event {
	evs := makeEvents(n)
	for _, ev := range evs {
		ev.Type = liveType
	}
	return evs
}

// enqueueOnSchedule enqueues evs into class at liveRate a second, event i
// due at start + i/liveRate, each from a goroutine of its own so that a slow
// Enqueue delays no other. It returns when each was due, and when its
// Enqueue returned.
func enqueueOnSchedule(b *testing.B, u *uplink.Uplink, class string, evs []*event.Event) (due, enqueued []time.Time) {
	due, enqueued = make([]time.Time, len(evs)), make([]time.Time, len(evs))
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / liveRate)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < len(evs); <-tick.C {
		// Every event due by now goes, even if ticks were missed.
		for now := min(len(evs), int(time.Since(start)*liveRate/time.Second)+1); sent < now; sent++ {
			due[sent] = start.Add(time.Duration(sent) * time.Second / liveRate)
			i := sent
			wg.Go(func() {
				if err := u.EnqueueClass(context.Background(), evs[i], class); err != nil {
					failed.Store(&err)
				}
				enqueued[i] = time.Now()
			})
		}
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("enqueue: %v", *err)
	}
	return due, enqueued
}

// liveSubscriber is a QoS 1 subscriber to the live events' topic that
// notes when each event first arrives.
type liveSubscriber struct {
	index map[string]int // event id → position

	mu      sync.Mutex
	arrived []time.Time
	missing int
	all     chan struct{} // closed once every event arrived

	close func() // disconnects
}

func subscribeLive(b *testing.B, url string, evs []*event.Event) *liveSubscriber {
	b.Helper()
	s := &liveSubscriber{index: make(map[string]int, len(evs)), arrived: make([]time.Time, len(evs)),
		missing: len(evs), all: make(chan struct{})}
	for i, ev := range evs {
		s.index[ev.ID] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn := dialBroker(ctx, b, url)
	c := paho.NewClient(paho.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){s.receive}})
	s.close = func() { _ = c.Disconnect(&paho.Disconnect{}) }
	recvMax := uint16(65535)
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: fmt.Sprintf("bench-live-%d", time.Now().UnixNano()),
		CleanStart: true, KeepAlive: 30, Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax}}); err != nil {
		b.Fatal(err)
	}
	topic := strings.ReplaceAll(testTopic, "{type}", liveType)
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		b.Fatal(err)
	}
	return s
}

func (s *liveSubscriber) receive(pr paho.PublishReceived) (bool, error) {
	now := time.Now()
	var id string
	if p := pr.Packet.Properties; p != nil {
		for _, u := range p.User {
			if u.Key == "id" {
				id = u.Value
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[id]; ok && s.arrived[i].IsZero() {
		s.arrived[i] = now
		if s.missing--; s.missing == 0 {
			close(s.all)
		}
	}
	return true, nil
}

// wait waits for every event and returns each one's latency from due.
func (s *liveSubscriber) wait(b *testing.B, due []time.Time, timeout time.Duration) []time.Duration {
	b.Helper()
	select {
	case <-s.all:
	case <-time.After(timeout):
		s.mu.Lock()
		defer s.mu.Unlock()
		b.Fatalf("%d of %d live events not arrived after %v", s.missing, len(due), timeout)
	}
	lat := make([]time.Duration, len(due))
	for i, t := range due {
		lat[i] = s.arrived[i].Sub(t)
	}
	return lat
}
