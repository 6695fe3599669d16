package uplink_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

func TestDeliversEventsInOrder(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL(), ClientID: "gw1"})
	evs := makeEvents(200)
	enqueueAll(t, u, evs[:100]) // queued before Run, sent once connected
	run(t, u)
	enqueueAll(t, u, evs[100:])

	got := c.WaitN(t, len(evs), waitTimeout)
	checkDelivered(t, evs, got)
	if len(got) != len(evs) {
		t.Errorf("got %d messages, want %d: nothing should be sent twice without an outage", len(got), len(evs))
	}
	eventually(t, "every event acknowledged", func() bool { return u.Stats().Queued == 0 })
	s := u.Stats()
	if !s.Connected || s.Enqueued != 200 || s.Forwarded != 200 || s.Resent != 0 || s.Inflight != 0 ||
		s.QueuedBytes != 0 || !s.Oldest.IsZero() || len(s.Dropped) != 0 || s.Quarantined != 0 {
		t.Errorf("Stats = %+v, want 200 enqueued and forwarded, nothing resent, held, dropped or quarantined", s)
	}
	if a := s.AckTimes; a.Count != 200 || a.Sum <= 0 || s.CommitTimes.Count != 0 {
		t.Errorf("AckTimes = %+v, CommitTimes = %+v; want 200 PUBACKs timed, no commit (no store)", a, s.CommitTimes)
	}
}

func TestOutageResendsInOrder(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	before := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL()})
	var gate linkGate
	uplink.SetDialer(u, gate.dial)
	run(t, u)
	evs := makeEvents(90)

	// Delivered before the outage.
	enqueueAll(t, u, evs[:30])
	before.WaitN(t, 30, waitTimeout)
	eventually(t, "their PUBACKs", func() bool { return u.Stats().Queued == 0 })

	// In flight at the drop: the broker is frozen, so these are written to
	// the connection but never acknowledged (nor delivered).
	m.Pause()
	enqueueAll(t, u, evs[30:60])
	window := uplink.WindowSize(u)
	eventually(t, "a full window in flight", func() bool { return u.Stats().Inflight == window })

	// The broker dies with them; more events arrive during the outage.
	gate.set(true)
	m.Stop()
	eventually(t, "the uplink to notice the outage", func() bool { return !u.Stats().Connected })
	enqueueAll(t, u, evs[60:])
	if s := u.Stats(); s.Queued != 60 || s.Inflight != 0 {
		t.Fatalf("during the outage: Stats = %+v, want 60 queued, none in flight", s)
	}

	// The broker comes back empty (no persistence); subscribe before the
	// uplink may reconnect, so that nothing it sends is missed.
	m.Start()
	after := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	gate.set(false)

	after.WaitN(t, 60, waitTimeout)
	checkDelivered(t, evs, append(before.Messages(), after.Messages()...))
	eventually(t, "every event acknowledged", func() bool { return u.Stats().Queued == 0 })
	if s := u.Stats(); s.Resent < uint64(window) || s.Forwarded != 90 {
		t.Errorf("Stats = %+v, want Resent >= %d (the window in flight at the drop) and Forwarded 90", s, window)
	}
}

func TestInflightWindow(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxInflight int
		want        int
	}{
		{"broker's receive maximum", 0, 12},
		{"max_inflight", 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := uplinktest.StartMosquitto(t, "max_inflight_messages 12") // Receive Maximum 12
			c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
			u := newUplink(t, uplink.Options{URL: m.URL(), MaxInflight: tc.maxInflight})
			run(t, u)
			eventually(t, "connection", func() bool { return u.Stats().Connected })

			m.Pause()
			evs := makeEvents(50)
			enqueueAll(t, u, evs)
			eventually(t, "the window to fill", func() bool { return u.Stats().Inflight == tc.want })
			m.Resume()

			checkDelivered(t, evs, c.WaitN(t, len(evs), waitTimeout))
			if got := uplink.PeakInflight(u); got != tc.want {
				t.Errorf("at most %d publishes were in flight, want %d", got, tc.want)
			}
		})
	}
}

func TestRejectedEventIsRetried(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	writeACL(t, acl, "topic write flowgate/ok/#\ntopic read #\n")
	m := uplinktest.StartMosquitto(t, "acl_file "+acl)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL(), Topic: "flowgate/{subject}/{type}"})
	run(t, u)

	evs := makeEvents(3)
	evs[0].Subject, evs[1].Subject, evs[2].Subject = "ok", "denied", "ok"
	enqueueAll(t, u, evs)
	eventually(t, "the others forwarded and the rejected one retried", func() bool {
		s := u.Stats()
		return s.Forwarded == 2 && s.Resent >= 3
	})
	if s := u.Stats(); s.Queued != 1 {
		t.Fatalf("while rejected: Stats = %+v, want the rejected event still queued", s)
	}

	writeACL(t, acl, "topic write flowgate/#\ntopic read #\n")
	m.Reload()
	eventually(t, "the rejected event delivered", func() bool {
		return slices.Contains(ids(c.Messages()), evs[1].ID)
	})
	// The rejected event was parked, so the one behind it went first.
	checkFirstArrivals(t, c.Messages(), evs[0].ID, evs[2].ID, evs[1].ID)
}

// checkFirstArrivals checks the order in which ids first arrived.
func checkFirstArrivals(t *testing.T, msgs []uplinktest.Message, want ...string) {
	t.Helper()
	var got []string
	for _, id := range ids(msgs) {
		if !slices.Contains(got, id) {
			got = append(got, id)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("first arrivals %v, want %v", got, want)
	}
}

func writeACL(t *testing.T, path, rules string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCloseDrains(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL()})
	done := make(chan error, 1)
	go func() { done <- u.Run(context.Background()) }()
	eventually(t, "connection", func() bool { return u.Stats().Connected }) // Close must not overtake Run
	evs := makeEvents(500)
	enqueueAll(t, u, evs)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := u.Stats(); s.Forwarded != 500 || s.Queued != 0 {
		t.Errorf("after Close: Stats = %+v, want all 500 forwarded", s)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after Close")
	}
	checkDelivered(t, evs, c.WaitN(t, len(evs), waitTimeout))

	if err := u.Enqueue(ctx, makeEvents(1)[0]); !errors.Is(err, uplink.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
	if err := u.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := u.Run(ctx); !errors.Is(err, uplink.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	empty := newUplink(t, uplink.Options{URL: "mqtt://127.0.0.1:1"})
	if err := empty.Close(ctx); err != nil {
		t.Errorf("Close of an empty uplink: %v", err)
	}

	u := newUplink(t, uplink.Options{URL: "mqtt://127.0.0.1:1"})
	enqueueAll(t, u, makeEvents(3))
	err := u.Close(ctx)
	if !errors.Is(err, uplink.ErrUndelivered) || !strings.Contains(err.Error(), "3 ") {
		t.Errorf("Close with 3 queued events and no Run: %v, want ErrUndelivered saying 3", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Close waited for its deadline with nothing to deliver the events")
	}
	if err2 := u.Close(ctx); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Close: %v, want %v", err2, err)
	}
}

func TestCloseReportsUndeliveredAtDeadline(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	u := newUplink(t, uplink.Options{URL: m.URL()})
	run(t, u)
	eventually(t, "connection", func() bool { return u.Stats().Connected })
	m.Pause() // nothing will be acknowledged
	enqueueAll(t, u, makeEvents(7))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := u.Close(ctx)
	if !errors.Is(err, uplink.ErrUndelivered) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "7 ") {
		t.Errorf("Close: %v, want ErrUndelivered saying 7, and the deadline", err)
	}
	m.Stop() // a frozen broker would hold Run's DISCONNECT until its timeout
}

func TestEnqueueBlocksWhileFull(t *testing.T) {
	u := newUplink(t, uplink.Options{URL: "mqtt://127.0.0.1:1", QueueSize: 2, WhenFull: uplink.Reject})
	evs := makeEvents(3)
	enqueueAll(t, u, evs[:2])

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := u.Enqueue(ctx, evs[2]); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Enqueue into a full queue: %v, want the context's deadline", err)
	}
	if s := u.Stats(); s.Enqueued != 2 || s.Queued != 2 {
		t.Errorf("Stats = %+v, want 2 enqueued and queued", s)
	}
}

func TestCloseWakesBlockedEnqueue(t *testing.T) {
	u := newUplink(t, uplink.Options{URL: "mqtt://127.0.0.1:1", QueueSize: 1, WhenFull: uplink.Reject})
	evs := makeEvents(2)
	enqueueAll(t, u, evs[:1])

	blocked := make(chan error, 1)
	go func() { blocked <- u.Enqueue(context.Background(), evs[1]) }()
	eventually(t, "Enqueue to block", func() bool { return uplink.WaitingForSpace(u) })
	_ = u.Close(context.Background())
	if err := <-blocked; !errors.Is(err, uplink.ErrClosed) {
		t.Errorf("blocked Enqueue after Close: %v, want ErrClosed", err)
	}
}

func TestEnqueueRejectsInvalidEvents(t *testing.T) {
	u := newUplink(t, uplink.Options{URL: "mqtt://127.0.0.1:1", Topic: "{subject}"})
	ctx := context.Background()
	for name, ev := range map[string]*event.Event{
		"nil":              nil,
		"no id":            {Source: "/s", Type: "t", Subject: "a"},
		"empty topic":      {ID: "1", Source: "/s", Type: "t"},
		"wildcard subject": {ID: "1", Source: "/s", Type: "t", Subject: "a/+"},
		"reserved topic":   {ID: "1", Source: "/s", Type: "t", Subject: "$SYS"},
		// Brokers drop the connection on these, at every resend.
		"control character in the topic": {ID: "1", Source: "/s", Type: "t", Subject: "truck\x01"},
		"non-character in the topic":     {ID: "1", Source: "/s", Type: "t", Subject: "a\uffff"},
		"control character in the id":    {ID: "1\x1f", Source: "/s", Type: "t", Subject: "a"},
	} {
		if err := u.Enqueue(ctx, ev); !errors.Is(err, uplink.ErrInvalidEvent) {
			t.Errorf("%s: Enqueue = %v, want ErrInvalidEvent", name, err)
		}
	}
	if s := u.Stats(); s.Enqueued != 0 {
		t.Errorf("Stats = %+v, want nothing enqueued", s)
	}
}

func TestRunTwice(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	u := newUplink(t, uplink.Options{URL: m.URL()})
	run(t, u)
	eventually(t, "connection", func() bool { return u.Stats().Connected })
	if err := u.Run(context.Background()); !errors.Is(err, uplink.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	u := newUplink(t, uplink.Options{URL: m.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	eventually(t, "connection", func() bool { return u.Stats().Connected })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	if u.Stats().Connected {
		t.Errorf("still connected after Run returned")
	}
}

// TestBrokerWithMaximumQoS0: a broker that takes only QoS 0 is sent
// nothing. The window stays shut and the events stay queued, instead of each
// QoS 1 publish making the broker drop the connection, at every reconnect.
func TestBrokerWithMaximumQoS0(t *testing.T) {
	m := uplinktest.StartMosquitto(t, "max_qos 0")
	u := newUplink(t, uplink.Options{URL: m.URL()})
	enqueueAll(t, u, makeEvents(5))
	run(t, u)
	eventually(t, "connection", func() bool { return u.Stats().Connected })
	if w, s := uplink.WindowSize(u), u.Stats(); w != 0 || s.Queued != 5 || s.Inflight != 0 || u.Reconnects() != 0 {
		t.Errorf("window %d, %d queued, %d in flight, %d reconnects; want 0, 5, 0, 0", w, s.Queued, s.Inflight, u.Reconnects())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := u.Close(ctx); !errors.Is(err, uplink.ErrUndelivered) {
		t.Errorf("Close: %v, want the 5 events undelivered", err)
	}
}
