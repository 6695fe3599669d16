package uplink

import (
	"slices"
	"time"
)

// window tracks which outbox records are in flight on the current
// connection: sent, and awaiting their PUBACK. It decides what to send next,
// so that records go out oldest first, never more than size at once, and
// everything unacknowledged goes out again, in order, after a reconnect.
//
// A record the broker rejected is parked rather than blocking the records
// behind it: a broker may keep rejecting one event (Mosquitto 2.0 even drops
// the connection right after refusing a publish, discarding whatever was
// sent behind it), and the rest of the stream must not wait for it. Parked
// records are retried after retryAt, when nothing else is waiting to be sent.
//
// The Uplink's mutex guards it.
type window struct {
	size   int               // min(MaxInflight, Receive Maximum); 0 while disconnected
	cursor uint64            // every record below cursor is in flight, parked or deleted
	bySeq  map[uint64]uint16 // in flight: sequence number → packet id
	byPID  map[uint16]uint64 // in flight: packet id → sequence number

	parked  []uint64 // rejected records, ascending, not to be sent before retryAt
	retryAt time.Time

	sentMax uint64 // highest sequence number ever sent; sending one at or below it is a resend
	peak    int    // most records ever in flight at once
}

func newWindow() window {
	return window{bySeq: make(map[uint64]uint16), byPID: make(map[uint16]uint64)}
}

// open starts a connection that allows size records in flight.
func (w *window) open(size int) {
	w.size = size
}

// close ends the connection. Whatever was in flight lost its packet id and
// will be sent again, oldest first. It returns how many records that is.
func (w *window) close() int {
	lost := len(w.bySeq)
	clear(w.bySeq)
	clear(w.byPID)
	w.size = 0
	w.cursor = 0
	return lost
}

// inflight is the number of records awaiting a PUBACK.
func (w *window) inflight() int { return len(w.bySeq) }

// next returns the record of ob that should be sent now, if any: the
// connection must be up and the window not full. The oldest record neither
// in flight nor parked goes first; parked records go only when no other is
// waiting, and not before retryAt.
func (w *window) next(ob outbox, now time.Time) (uint64, []byte, bool) {
	if len(w.bySeq) >= w.size {
		return 0, nil, false
	}
	for {
		seq, rec, ok := ob.Next(w.cursor)
		if !ok {
			break
		}
		if _, busy := w.bySeq[seq]; !busy && !w.isParked(seq) {
			return seq, rec, true
		}
		w.cursor = seq + 1
	}
	for len(w.parked) > 0 && !now.Before(w.retryAt) {
		seq := w.parked[0]
		if s, rec, ok := ob.Next(seq); ok && s == seq {
			return seq, rec, true
		}
		w.parked = w.parked[1:] // deleted meanwhile
	}
	return 0, nil, false
}

// sent records that seq went out with packet id pid. It reports whether
// this was a resend.
func (w *window) sent(seq uint64, pid uint16) bool {
	w.bySeq[seq] = pid
	w.byPID[pid] = seq
	w.peak = max(w.peak, len(w.bySeq))
	if i, ok := slices.BinarySearch(w.parked, seq); ok {
		w.parked = slices.Delete(w.parked, i, i+1)
	}
	if seq > w.sentMax {
		w.sentMax = seq
		return false
	}
	return true
}

// acked ends the flight of packet id pid and returns its sequence number;
// ok is false for an id not in flight on this connection.
func (w *window) acked(pid uint16) (seq uint64, ok bool) {
	seq, ok = w.byPID[pid]
	if ok {
		delete(w.byPID, pid)
		delete(w.bySeq, seq)
	}
	return seq, ok
}

// park sets seq, not in flight, aside until the given time, when it and
// every other parked record will be sent again.
func (w *window) park(seq uint64, until time.Time) {
	if i, found := slices.BinarySearch(w.parked, seq); !found {
		w.parked = slices.Insert(w.parked, i, seq)
	}
	w.retryAt = until
}

func (w *window) isParked(seq uint64) bool {
	_, found := slices.BinarySearch(w.parked, seq)
	return found
}
