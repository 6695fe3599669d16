package uplink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// waitTimeout bounds every wait in these tests; they normally take
// milliseconds. It is long enough for a loaded 2-core machine under -race
// (10 s once fell short by 34 of 3,720 messages).
const waitTimeout = 30 * time.Second

const testTopic = "flowgate/gw1/events/{type}"

// newUplink returns an uplink to brokerURL with short delays and a logger
// whose output is shown if the test fails.
func newUplink(t testing.TB, opts uplink.Options) *uplink.Uplink {
	t.Helper()
	if opts.Topic == "" {
		opts.Topic = testTopic
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	u, err := uplink.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	uplink.SetTiming(u, 20*time.Millisecond, 20*time.Millisecond)
	return u
}

// run starts u.Run and, when the test ends, closes u and checks that Run
// returned nil.
func run(t testing.TB, u *uplink.Uplink) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- u.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = u.Close(ctx) // tests that care check Close themselves
		wait := time.NewTimer(waitTimeout)
		defer wait.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-wait.C:
			t.Errorf("Run did not return after Close")
		}
	})
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}

// makeEvents returns n events spread over three sources.
func makeEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range evs {
		dev := fmt.Sprintf("truck-%d", i%3)
		evs[i] = &event.Event{
			ID:              event.NewID(),
			Source:          "/gateways/gw1/devices/" + dev,
			Type:            []string{"env.reading", "gps.fix"}[i%2],
			Subject:         dev,
			Time:            base.Add(time.Duration(i) * time.Millisecond),
			DataContentType: "application/json",
			Data:            json.RawMessage(fmt.Sprintf(`{"seq":%d,"temp_c":21.5}`, i)),
		}
	}
	return evs
}

func enqueueAll(t testing.TB, u *uplink.Uplink, evs []*event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, ev := range evs {
		if err := u.Enqueue(ctx, ev); err != nil {
			t.Fatalf("Enqueue %s: %v", ev.ID, err)
		}
	}
}

// checkDelivered checks that every event in want arrived at least once,
// unchanged, and that their first arrivals are in the order of want.
func checkDelivered(t testing.TB, want []*event.Event, got []uplinktest.Message) {
	t.Helper()
	pos := make(map[string]int, len(want))
	for i, ev := range want {
		pos[ev.ID] = i
	}
	seen := make(map[string]bool, len(want))
	next := 0 // position in want of the next first arrival
	for _, m := range got {
		id := m.UserProperties["id"]
		i, ok := pos[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		if i != next {
			t.Fatalf("event %d (id %s) arrived first where event %d was due", i, id, next)
		}
		next++
		checkMessage(t, want[i], m)
	}
	if next != len(want) {
		t.Fatalf("%d of %d events arrived; first missing: %d (id %s)", next, len(want), next, want[next].ID)
	}
}

// checkMessage checks one PUBLISH against the event it should carry.
func checkMessage(t testing.TB, want *event.Event, m uplinktest.Message) {
	t.Helper()
	if m.ContentType != event.ContentType {
		t.Errorf("id %s: content type %q, want %q", want.ID, m.ContentType, event.ContentType)
	}
	if topic := "flowgate/gw1/events/" + want.Type; m.Topic != topic {
		t.Errorf("id %s: topic %q, want %q", want.ID, m.Topic, topic)
	}
	var got event.Event
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatalf("id %s: payload %s: %v", want.ID, m.Payload, err)
	}
	if got.ID != want.ID || got.Source != want.Source || got.Type != want.Type ||
		got.Subject != want.Subject || !got.Time.Equal(want.Time) ||
		got.DataContentType != want.DataContentType || !bytes.Equal(got.Data, want.Data) {
		t.Errorf("payload decodes to\n%+v\nwant\n%+v", got, *want)
	}
}

// ids returns the event ids of messages, in arrival order.
func ids(msgs []uplinktest.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UserProperties["id"]
	}
	return out
}

// linkGate is a dialer a test can hold shut, to keep the uplink offline.
type linkGate struct {
	mu   sync.Mutex
	shut bool
}

func (g *linkGate) set(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.mu.Unlock()
}

func (g *linkGate) dial(ctx context.Context, addr string) (net.Conn, error) {
	g.mu.Lock()
	shut := g.shut
	g.mu.Unlock()
	if shut {
		return nil, errors.New("test: link held down")
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// testLogger logs into a buffer that is printed if the test fails.
func testLogger(t testing.TB) *slog.Logger {
	var buf uplinktest.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uplink log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
