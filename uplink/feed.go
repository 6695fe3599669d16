package uplink

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/eclipse/paho.golang/autopaho/queue"
)

// How the in-flight window works, and why it is built this way.
//
// paho v0.23 offers two ways to publish at QoS 1. Client.Publish blocks
// until the PUBACK, so a window of N needs N goroutines, whose publishes then
// race each other onto the wire in no particular order. PublishWithOptions
// with PublishMethod_AsyncSend returns as soon as the packet is written: one
// goroutine calling it in a loop keeps order and fills the window, and the
// session state blocks it while the broker's Receive Maximum is used up. But
// AsyncSend reports nothing back: the PUBACK goes to a channel nobody reads.
// autopaho's ConnectionManager exposes AsyncSend only through its publish
// queue, which deletes a message as soon as it is written (send-then-delete),
// and its in-memory session forgets unacknowledged publishes when a
// connection with session expiry 0 drops.
//
// So the uplink plugs into the two extension points paho has:
//
//   - feed, below, is the autopaho queue. autopaho's single publish goroutine
//     takes records from it in order and sends each with AsyncSend. No
//     goroutine per message, and the order on the wire is the queue's order.
//     Peek reports the queue empty while the window is full, so at most
//     min(MaxInflight, Receive Maximum) publishes are outstanding.
//   - sessionHooks (session.go) wraps paho's session state. It learns which
//     packet id each record was given, which PUBACK came back with which
//     reason code, and when connections come and go.
//
// The outbox, not paho, is the record of what is undelivered: a record is
// deleted only on a successful PUBACK, and when a connection drops the window
// forgets what was in flight so that it is all sent again, oldest first. A
// PUBACK with an error reason code parks its record for a retry after a
// backoff (window.go), so one event the broker refuses cannot hold up the
// rest.

// closedChan is returned by feed.Wait when something can be sent right away.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// feed adapts the Uplink to autopaho's queue.Queue.
type feed struct{ u *Uplink }

// Wait returns a closed channel if a record can be sent now, else one that
// is closed when that may have changed.
func (f feed) Wait() chan struct{} {
	u := f.u
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, _, ok := u.nextToSend(time.Now()); ok {
		return closedChan
	}
	if u.win.held {
		u.wakeLater() // pacing: Run wakes the sender when the bucket refills
	}
	return u.work.wait()
}

// Peek returns the next record to send, or queue.ErrEmpty when there is none
// or the window is full.
func (f feed) Peek() (queue.Entry, error) {
	u := f.u
	u.mu.Lock()
	defer u.mu.Unlock()
	seq, rec, ok := u.nextToSend(time.Now())
	if !ok {
		return nil, queue.ErrEmpty
	}
	u.peek.seq, u.peek.sent = seq, false
	u.peek.r.Reset(rec)
	return &u.peek, nil
}

// errFeedEnqueue: events enter through Uplink.Enqueue, never autopaho's
// PublishViaQueue.
var errFeedEnqueue = errors.New("uplink: autopaho queue is read-only")

func (f feed) Enqueue(io.Reader) error { return errFeedEnqueue }

// entry is the record autopaho is publishing. There is one, reused: autopaho
// peeks again only after it has finished with the last entry.
type entry struct {
	u    *Uplink
	seq  uint64
	sent bool // the session gave it a packet id on the current connection
	r    bytes.Reader
}

func (e *entry) Reader() (io.Reader, error) { return &e.r, nil }

// Leave: autopaho could not publish (the connection is down, or its context
// ended). The record stays first in line; nothing to do.
func (e *entry) Leave() error { return nil }

// Remove: autopaho is done with the entry. If the session took it, it is in
// flight and stays queued until its PUBACK. If not, paho refused it.
func (e *entry) Remove() error {
	e.u.refused(e)
	return nil
}

// Quarantine: autopaho could not parse the record, which only a bug or a
// damaged store explains.
func (e *entry) Quarantine() error {
	e.u.quarantine(e.seq)
	return nil
}

// nextToSend is the window's next record, after dropping those larger than
// the broker's Maximum Packet Size: the broker would close the connection
// on them, on every attempt, holding up everything behind them.
func (u *Uplink) nextToSend(now time.Time) (uint64, []byte, bool) {
	for {
		id, rec, ok := u.win.next(u.ob, now)
		if !ok || u.maxPacket == 0 || len(rec) <= u.maxPacket {
			return id, rec, ok
		}
		u.log.Error("event larger than the broker accepts; dropped", "id", recordID(rec),
			"bytes", len(rec), "maximum_packet_size", u.maxPacket)
		u.drop(id, DropTooLarge)
	}
}
