package uplink

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The watchdog catches a connection that is up but not forwarding: the TCP
// connection is open, publishes are in flight, yet no PUBACK comes back. A
// broker that hangs (deadlocked, swapping, or frozen as the tests freeze it
// with SIGSTOP), or a middlebox that silently eats packets, looks like this.
// MQTT's keep alive catches some of it, but only after 1.5 keep alive
// periods, and not at all if PINGRESP still flows while publishes do not.
//
// Run's serve loop samples the uplink every StallTimeout/4. When, over at
// least StallTimeout, the connection stayed the same, something stayed in
// flight and Stats.Forwarded did not move, no PUBACK arrived for that long:
// the watchdog logs a warning, counts a stall and closes the network
// connection under paho. autopaho then reconnects as after any drop, and the
// window resends everything that was in flight.

// link is the network connection the uplink dialed last, and the counts
// that outlive connections. Its methods are safe for concurrent use.
type link struct {
	mu   sync.Mutex
	conn net.Conn // the raw connection (below TLS) of the latest attempt

	ups    atomic.Uint64 // connections established
	stalls atomic.Uint64 // connections dropped by the watchdog
}

// attached records conn as the connection of the latest attempt.
func (l *link) attached(conn net.Conn) {
	l.mu.Lock()
	l.conn = conn
	l.mu.Unlock()
}

// drop closes the connection of the latest attempt. A TCP connection is
// reset (linger 0) rather than closed in order: what is still unsent in our
// buffer is discarded instead of trickling out to a broker that was not
// reading, and a broker that wakes up finds the connection reset, so it
// reads fewer of the publishes that will be resent anyway. Fewer, not none:
// what reached the broker's socket before the reset may still be read and
// delivered, and then arrives twice, with the same id. That is the
// at-least-once promise; the cloud deduplicates.
func (l *link) drop() {
	l.mu.Lock()
	conn := l.conn
	l.mu.Unlock()
	if conn == nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // on failure Close still ends the connection
	}
	_ = conn.Close() // paho sees the error and autopaho reconnects
}

// Stalls is the number of times the watchdog found the connection up, with
// publishes in flight, but no PUBACK for Options.StallTimeout, and dropped
// it to reconnect.
func (u *Uplink) Stalls() uint64 { return u.link.stalls.Load() }

// Reconnects is the number of connections established after the first.
func (u *Uplink) Reconnects() uint64 {
	return max(u.link.ups.Load(), 1) - 1
}

// progress is what the watchdog samples each tick.
type progress struct {
	epoch     uint64 // the connection; changes when one comes up or goes down
	forwarded uint64 // Stats.Forwarded: grows with every successful PUBACK
	waiting   bool   // connected, with publishes in flight
	inflight  int
}

// watchdog is the state of the stall check between ticks.
type watchdog struct {
	timeout time.Duration
	last    progress
	since   time.Time // when last was first seen; zero: not waiting
}

// stalled takes a sample and reports whether the connection has been
// waiting without progress for the timeout. It then starts afresh, so that
// one stall is reported once.
func (w *watchdog) stalled(p progress, now time.Time) bool {
	same := p.waiting && w.last.waiting && p.epoch == w.last.epoch && p.forwarded == w.last.forwarded
	switch {
	case !p.waiting:
		w.since = time.Time{}
	case !same:
		w.since = now
	case now.Sub(w.since) >= w.timeout:
		w.since = now
		w.last = p
		return true
	}
	w.last = p
	return false
}

// sample reads the uplink's progress.
func (u *Uplink) sample() progress {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := u.win.inflight()
	return progress{epoch: u.epoch, forwarded: u.stats.Forwarded, waiting: u.connected && n > 0, inflight: n}
}

// checkStall is the watchdog's tick: if the connection stalled, it is
// counted, logged and dropped.
func (u *Uplink) checkStall(w *watchdog, now time.Time) {
	p := u.sample()
	if !w.stalled(p, now) {
		return
	}
	u.link.stalls.Add(1)
	u.log.Warn("connection stalled: connected with publishes in flight but no PUBACK; reconnecting",
		"url", u.broker.Redacted(), "stall_timeout", w.timeout, "inflight", p.inflight)
	u.link.drop()
}
