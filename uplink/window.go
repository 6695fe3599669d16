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
	size   int                 // min(MaxInflight, Receive Maximum); 0 while disconnected
	cursor []uint64            // per lane: every record below is in flight, parked or deleted
	bySeq  map[uint64]struct{} // in flight: record ids
	byPID  map[uint16]flight   // in flight: packet id → record id and when it was sent
	pid    uint16              // the packet id given last

	// Replay pacing (pace.go): records accepted before the connection came
	// up, below liveFrom, are sent no faster than pace allows.
	pace     pacer
	liveFrom uint64
	held     bool // the last next found a record that pacing held back

	parked  []uint64 // rejected records, ascending, not to be sent before retryAt
	retryAt time.Time

	sentMax []uint64 // per lane: highest sequence number ever sent; sending one at or below it is a resend
	peak    int      // most records ever in flight at once
}

func newWindow(p pacer) window {
	return window{bySeq: make(map[uint64]struct{}), byPID: make(map[uint16]flight), pace: p}
}

// flight is a publish awaiting its PUBACK: its record, and when it was sent.
type flight struct {
	seq uint64
	at  time.Time
}

// open starts a connection that allows size records in flight; records
// with sequence numbers below liveFrom are a backlog, and paced.
func (w *window) open(size int, liveFrom uint64) {
	w.size, w.liveFrom = size, liveFrom
}

// close ends the connection. Whatever was in flight lost its packet id and
// will be sent again, oldest first. It returns how many records that is.
func (w *window) close() int {
	lost := len(w.bySeq)
	clear(w.bySeq)
	clear(w.byPID)
	w.size = 0
	clear(w.cursor)
	return lost
}

// inflight is the number of records awaiting a PUBACK.
func (w *window) inflight() int { return len(w.bySeq) }

// next returns the record of ob that should be sent now, if any: the
// connection must be up and the window not full. Lanes go in order of
// priority, and within a lane the oldest record neither in flight nor
// parked goes first; a backlog record waits while pacing holds it back, and
// lower lanes may go meanwhile. Parked records go only when no other is
// waiting, and not before retryAt.
func (w *window) next(ob *outbox, now time.Time) (uint64, []byte, bool) {
	if ob == nil || len(w.bySeq) >= w.size {
		return 0, nil, false
	}
	w.held = false
	for len(w.cursor) < len(ob.lanes) {
		w.cursor = append(w.cursor, 0)
		w.sentMax = append(w.sentMax, 0)
	}
	for li := range ob.lanes {
		if id, rec, ok := w.nextIn(ob, li, now); ok {
			return id, rec, true
		}
	}
	for len(w.parked) > 0 && !now.Before(w.retryAt) {
		id := w.parked[0]
		if got, rec, ok := ob.Next(idLane(id), idSeq(id)); ok && got == id {
			return id, rec, true
		}
		w.parked = w.parked[1:] // deleted meanwhile
	}
	return 0, nil, false
}

// nextIn returns the record of lane li to send now, if any.
func (w *window) nextIn(ob *outbox, li int, now time.Time) (uint64, []byte, bool) {
	for {
		id, rec, ok := ob.Next(li, w.cursor[li])
		if !ok {
			return 0, nil, false
		}
		if _, busy := w.bySeq[id]; !busy && !w.isParked(id) {
			if idSeq(id) < w.liveFrom && !w.pace.ready(len(rec), now) {
				w.held = true
				return 0, nil, false
			}
			return id, rec, true
		}
		w.cursor[li] = idSeq(id) + 1
	}
}

// busy reports whether record id is in flight.
func (w *window) busy(id uint64) bool {
	_, ok := w.bySeq[id]
	return ok
}

// freePID returns a packet id that is not in flight: the one after the id
// given last, skipping 0 (not a valid id) and those still awaiting a PUBACK.
// The window never holds all 65,535, as Receive Maximum is at most that.
func (w *window) freePID() uint16 {
	for {
		w.pid++
		if _, busy := w.byPID[w.pid]; w.pid != 0 && !busy {
			return w.pid
		}
	}
}

// sent records that record id, of size bytes, went out with packet id pid.
// It reports whether this was a resend.
func (w *window) sent(id uint64, pid uint16, size int, now time.Time) bool {
	w.bySeq[id] = struct{}{}
	w.byPID[pid] = flight{id, now}
	w.peak = max(w.peak, len(w.bySeq))
	if i, ok := slices.BinarySearch(w.parked, id); ok {
		w.parked = slices.Delete(w.parked, i, i+1)
	}
	if idSeq(id) < w.liveFrom {
		w.pace.take(size, now)
	}
	li, seq := idLane(id), idSeq(id)
	if seq > w.sentMax[li] {
		w.sentMax[li] = seq
		return false
	}
	return true
}

// acked ends the flight of packet id pid and returns its record's id and
// when it was sent; ok is false for an id not in flight on this connection.
func (w *window) acked(pid uint16) (seq uint64, sentAt time.Time, ok bool) {
	f, ok := w.byPID[pid]
	if ok {
		delete(w.byPID, pid)
		delete(w.bySeq, f.seq)
	}
	return f.seq, f.at, ok
}

// park sets seq, not in flight, aside until the given time, when it and
// every other parked record will be sent again.
func (w *window) park(seq uint64, until time.Time) {
	if i, found := slices.BinarySearch(w.parked, seq); !found {
		w.parked = slices.Insert(w.parked, i, seq)
	}
	w.retryAt = until
}

// wakeAt is when the window may next have something to send that it has
// not now: the end of a parked retry, or of a pacing wait. Zero if never.
func (w *window) wakeAt(now time.Time) time.Time {
	var t time.Time
	if len(w.parked) > 0 {
		t = w.retryAt
	}
	if p := w.pace.readyAt(now); !p.IsZero() && (t.IsZero() || p.Before(t)) {
		t = p
	}
	return t
}

func (w *window) isParked(seq uint64) bool {
	_, found := slices.BinarySearch(w.parked, seq)
	return found
}
