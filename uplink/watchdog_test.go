package uplink_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestWatchdogDecision runs the stall check over sampled ticks: it fires
// only when the same connection has had publishes in flight and no PUBACK
// for the whole timeout, and once per stall.
func TestWatchdogDecision(t *testing.T) {
	const s = time.Second
	type S = uplink.Sample
	for _, tc := range []struct {
		name    string
		samples []S
		want    []int // indices of the samples that declare a stall
	}{
		{"idle", []S{{0, 1, 0, false}, {5 * s, 1, 0, false}, {20 * s, 1, 0, false}}, nil},
		{"acks flowing", []S{{0, 1, 0, true}, {5 * s, 1, 3, true}, {10 * s, 1, 9, true}, {15 * s, 1, 12, true}}, nil},
		{"stalled", []S{{0, 1, 5, true}, {9 * s, 1, 5, true}, {10 * s, 1, 5, true}, {11 * s, 1, 5, true}}, []int{2}},
		{"stalled again", []S{{0, 1, 5, true}, {10 * s, 1, 5, true}, {15 * s, 1, 5, true}, {20 * s, 1, 5, true}}, []int{1, 3}},
		{"waiting starts late", []S{{0, 1, 5, false}, {4 * s, 1, 5, true}, {10 * s, 1, 5, true}, {14 * s, 1, 5, true}}, []int{3}},
		{"ack resets", []S{{0, 1, 5, true}, {8 * s, 1, 6, true}, {12 * s, 1, 6, true}, {18 * s, 1, 6, true}}, []int{3}},
		{"new connection resets", []S{{0, 1, 5, true}, {8 * s, 3, 5, true}, {12 * s, 3, 5, true}, {18 * s, 3, 5, true}}, []int{3}},
		{"gap in waiting resets", []S{{0, 1, 5, true}, {6 * s, 1, 5, false}, {8 * s, 1, 5, true}, {12 * s, 1, 5, true}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for i, stalled := range uplink.Stalled(10*s, tc.samples) {
				if stalled {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("stalls at samples %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWatchdogReconnectsStalledBroker freezes a real broker while publishes
// are in flight: the TCP connection stays open, but nothing is acknowledged.
// The watchdog must notice, drop the connection and count a stall; once the
// broker runs again, the uplink reconnects and every event arrives, in
// order. Only an event in flight at the stall may arrive twice: a PUBLISH
// that reached the broker's socket before the drop can still be read when
// the broker wakes, and it is resent because its PUBACK never came.
func TestWatchdogReconnectsStalledBroker(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL(), StallTimeout: time.Second})
	run(t, u)
	evs := makeEvents(60)

	enqueueAll(t, u, evs[:20])
	c.WaitN(t, 20, waitTimeout)
	eventually(t, "their PUBACKs", func() bool { return u.Stats().Queued == 0 })
	if n := u.Stalls(); n != 0 {
		t.Fatalf("Stalls = %d while PUBACKs flow, want 0", n)
	}

	m.Pause()
	resumed := false
	defer func() {
		if !resumed {
			m.Resume() // let Cleanup stop a broker that is not frozen
		}
	}()
	enqueueAll(t, u, evs[20:40])
	eventually(t, "publishes in flight", func() bool { return u.Stats().Inflight > 0 })
	eventually(t, "the watchdog to fire", func() bool { return u.Stalls() >= 1 })
	m.Resume()
	resumed = true
	enqueueAll(t, u, evs[40:])

	eventually(t, "every event acknowledged", func() bool { return u.Stats().Queued == 0 })
	// Counting messages is not enough: the duplicates count too, and could
	// make up the number before the last event arrives.
	eventually(t, "every event at the subscriber", func() bool {
		distinct := map[string]bool{}
		for _, id := range ids(c.Messages()) {
			distinct[id] = true
		}
		return len(distinct) == len(evs)
	})
	got := c.Messages()
	checkDelivered(t, evs, got)
	checkDuplicates(t, got, evs[20:40])
	if n := u.Reconnects(); n < 1 {
		t.Errorf("Reconnects = %d, want at least 1", n)
	}
	if s := u.Stats(); s.Forwarded != uint64(len(evs)) || s.Resent == 0 {
		t.Errorf("Stats = %+v, want Forwarded %d and the stalled publishes resent", s, len(evs))
	}
}

// checkDuplicates checks that no event arrived more than twice, and only
// those in mayRepeat (the ones in flight when the connection was dropped)
// more than once.
func checkDuplicates(t *testing.T, msgs []uplinktest.Message, mayRepeat []*event.Event) {
	t.Helper()
	repeatable := make(map[string]bool, len(mayRepeat))
	for _, ev := range mayRepeat {
		repeatable[ev.ID] = true
	}
	seen := make(map[string]int, len(msgs))
	for _, id := range ids(msgs) {
		seen[id]++
	}
	dups := 0
	for id, n := range seen {
		switch {
		case n > 2, n == 2 && !repeatable[id]:
			t.Errorf("event %s arrived %d times", id, n)
		case n == 2:
			dups++
		}
	}
	t.Logf("%d of the %d events in flight at the stall arrived twice", dups, len(mayRepeat))
}

// slowConn sends about rate bytes a second, as a slow cellular link does.
type slowConn struct {
	net.Conn
	rate int
}

func (s slowConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 100)
		time.Sleep(time.Duration(k) * time.Second / time.Duration(s.rate)) // the link's pace, not a wait for an event
		w, err := s.Conn.Write(p[:k])
		n += w
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// A link that is slow but working stays up: the publishes going out and
// the PUBACKs coming back keep the connection alive, and no PINGREQ waits
// behind a window of publishes for longer than the keep alive.
func TestSlowLinkKeepsConnection(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	u := newUplink(t, uplink.Options{URL: m.URL(), KeepAlive: time.Second, StallTimeout: time.Minute})
	uplink.SetDialer(u, func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return slowConn{conn, 3000}, nil
	})
	run(t, u)
	enqueueAll(t, u, makeEvents(30)) // about 12 kB: 4 s at 3 kB/s, four keep alives
	eventually(t, "everything acknowledged", func() bool { s := u.Stats(); return s.Queued == 0 && s.Inflight == 0 })
	if n := u.Reconnects(); n != 0 {
		t.Errorf("%d reconnects on a slow but working link; want none", n)
	}
}
