package uplink_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

func enqueueClass(t testing.TB, u *uplink.Uplink, class string, evs []*event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, ev := range evs {
		if err := u.EnqueueClass(ctx, ev, class); err != nil {
			t.Fatalf("EnqueueClass %s %s: %v", class, ev.ID, err)
		}
	}
}

// startOffline starts u against m behind a closed gate and returns the gate.
func startOffline(t *testing.T, m *uplinktest.Mosquitto, opts uplink.Options) (*uplink.Uplink, *linkGate) {
	t.Helper()
	opts.URL = m.URL()
	u := newUplink(t, opts)
	gate := &linkGate{shut: true}
	uplink.SetDialer(u, gate.dial)
	run(t, u)
	return u, gate
}

func TestAlarmsOvertakeTelemetryBacklog(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u, gate := startOffline(t, m, uplink.Options{})
	evs := makeEvents(60)
	tele, alarms := evs[:50], evs[50:]
	enqueueClass(t, u, "telemetry", tele)
	enqueueClass(t, u, "alarm", alarms)
	gate.set(false)

	got := c.WaitN(t, len(evs), waitTimeout)
	checkDelivered(t, append(append([]*event.Event{}, alarms...), tele...), got)
	s := u.Stats()
	if s.Classes[0].Name != "alarm" || s.Classes[1].Name != "telemetry" {
		t.Errorf("classes %+v, want alarm then telemetry", s.Classes)
	}
}

func TestDropOldestWhenFull(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u, gate := startOffline(t, m, uplink.Options{QueueSize: 5})
	evs := makeEvents(12)
	enqueueClass(t, u, "alarm", evs[:2])
	enqueueClass(t, u, "telemetry", evs[2:10])
	// Full of alarms and telemetry: a new alarm pushes out the oldest
	// telemetry, never an alarm.
	enqueueClass(t, u, "alarm", evs[10:])

	s := u.Stats()
	if s.Queued != 5 || s.Dropped[uplink.DropFull] != 7 || s.Enqueued != 12 {
		t.Fatalf("Stats = %+v, want 5 queued, 7 dropped as full, 12 enqueued", s)
	}
	gate.set(false)
	got := c.WaitN(t, 5, waitTimeout)
	want := []*event.Event{evs[0], evs[1], evs[10], evs[11], evs[9]}
	checkDelivered(t, want, got)
	if len(got) != 5 {
		t.Errorf("%d messages arrived, want the 5 kept", len(got))
	}
}

func TestTelemetryDoesNotPushOutAlarms(t *testing.T) {
	u := newUplink(t, uplink.Options{URL: "mqtt://127.0.0.1:1", QueueSize: 2})
	evs := makeEvents(3)
	enqueueClass(t, u, "alarm", evs[:2])
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := u.EnqueueClass(ctx, evs[2], "telemetry"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("telemetry into a queue full of alarms: %v, want to wait for room", err)
	}
	if s := u.Stats(); s.Queued != 2 || len(s.Dropped) != 0 {
		t.Errorf("Stats = %+v, want the 2 alarms kept, nothing dropped", s)
	}
	if err := u.EnqueueClass(ctx, evs[2], "bulk"); !errors.Is(err, uplink.ErrUnknownClass) {
		t.Errorf("unknown class: %v, want ErrUnknownClass", err)
	}
}

func TestTTLExpiresUndeliveredEvents(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u, gate := startOffline(t, m, uplink.Options{Classes: []uplink.Class{
		{Name: "alarm"}, {Name: "telemetry", TTL: time.Second}}})
	evs := makeEvents(20)
	start := time.Now()
	enqueueClass(t, u, "telemetry", evs[:10])
	enqueueClass(t, u, "alarm", evs[10:])
	eventually(t, "telemetry to expire", func() bool { return u.Stats().Dropped[uplink.DropExpired] == 10 })
	if took := time.Since(start); took < time.Second {
		t.Errorf("expired after %v, before the TTL of 1s", took)
	}
	if s := u.Stats(); s.Queued != 10 || s.Classes[1].Queued != 0 {
		t.Errorf("Stats = %+v, want the 10 alarms (no TTL) left", s)
	}
	gate.set(false)
	got := c.WaitN(t, 10, waitTimeout)
	checkDelivered(t, evs[10:], got)
	eventually(t, "alarms acknowledged", func() bool { return u.Stats().Queued == 0 })
	if n := len(c.Messages()); n != 10 {
		t.Errorf("%d messages arrived, want only the 10 alarms", n)
	}
}

func TestReplayPacing(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	const rate, backlog = 100, 150
	u, gate := startOffline(t, m, uplink.Options{ReplayRate: rate})
	evs := makeEvents(backlog + 1)
	enqueueClass(t, u, "telemetry", evs[:backlog])
	start := time.Now()
	gate.set(false)
	eventually(t, "the replay to begin", func() bool { return len(c.Messages()) > 0 })
	// A live alarm goes ahead of the paced telemetry backlog.
	enqueueClass(t, u, "alarm", evs[backlog:])
	got := c.WaitN(t, backlog+1, waitTimeout)
	took := time.Since(start)
	pos := -1
	for i, id := range ids(got) {
		if id == evs[backlog].ID {
			pos = i
		}
	}
	if pos < 0 || pos > backlog/2 {
		t.Errorf("the live alarm arrived at position %d of %d, want in the first half", pos, len(got))
	}
	// The bucket holds a twentieth of a second's allowance, so the backlog
	// cannot drain in less than (backlog - rate/20) / rate seconds.
	if minimum := time.Duration(backlog-rate/20) * time.Second / rate; took < minimum {
		t.Errorf("a backlog of %d paced at %d/s drained in %v, under %v", backlog, rate, took, minimum)
	}
}

func TestEventAboveMaximumPacketSizeIsDropped(t *testing.T) {
	m := uplinktest.StartMosquitto(t, "max_packet_size 2000")
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL()})
	run(t, u)
	evs := makeEvents(3)
	evs[1].Data = json.RawMessage(`{"blob":"` + strings.Repeat("x", 3000) + `"}`)
	enqueueAll(t, u, evs)
	got := c.WaitN(t, 2, waitTimeout)
	checkDelivered(t, []*event.Event{evs[0], evs[2]}, got)
	eventually(t, "the big one dropped", func() bool { return u.Stats().Queued == 0 })
	if s := u.Stats(); s.Dropped[uplink.DropTooLarge] != 1 || s.Forwarded != 2 {
		t.Errorf("Stats = %+v, want 1 dropped as too large, 2 forwarded", s)
	}
}
