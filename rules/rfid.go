package rules

import (
	"strings"
	"time"

	"github.com/flowgate/flowgate/event"
)

// rfidOp collapses a tag's repeated reads at a reader into one stay:
// arrived at the first read, departed once the tag has gone unread for
// quiet or has been read at another reader (a transition).
type rfidOp struct {
	reader         field
	quiet          int64
	transitionType string // emit.transition_type; "": no transition events
	tags           map[string]*rfidStay
	scratch        []byte
}

// rfidStay is one tag at one reader. A tag has at most one timer: when it
// falls due, it either departs the tag or is set again for the last read
// plus quiet, so a tag read many times a second costs one timer, not one
// per read.
type rfidStay struct {
	reader      string
	first, last int64
	firstID     string
	lastEv      *event.Event // the latest read, for the departure's emit fields
	reads       int
	timer       keyTimer
}

func (o *rfidOp) fresh() operator {
	c := *o
	c.tags = map[string]*rfidStay{}
	c.scratch = nil
	return &c
}

func (o *rfidOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	rd, ok := o.reader.key(ev, &o.scratch)
	if !ok || len(rd) == 0 {
		return
	}
	k := string(key)
	st := o.tags[k]
	switch {
	case st == nil:
		st = &rfidStay{}
		o.tags[k] = st
	case string(rd) == st.reader:
		st.reads++
		if t > st.last {
			st.last, st.lastEv = t, ev
		}
		return
	case t < st.last:
		return // an older read at another reader: the tag has moved on since
	default:
		from := st.reader
		o.depart(r, k, st, t, "moved")
		if o.transitionType != "" {
			out := map[string]any{"from": from, "to": string(rd), "left": time.Unix(0, st.last).UTC()}
			r.produce(o.transitionType, k, t, out, ev, []string{st.lastEv.ID, ev.ID})
		}
	}
	st.reader, st.first, st.last, st.firstID, st.lastEv, st.reads = string(rd), t, t, ev.ID, ev, 1
	r.produce(r.emit.typ, k, t, map[string]any{"reader": st.reader}, ev, []string{ev.ID})
	if !st.timer.set {
		st.timer.arm(r, k, t+o.quiet)
	}
}

// depart emits the end of a stay at time at.
func (o *rfidOp) depart(r *rule, key string, st *rfidStay, at int64, reason string) {
	if r.emit.clearType == "" {
		return
	}
	out := map[string]any{"reader": st.reader, "arrived": time.Unix(0, st.first).UTC(),
		"last_read": time.Unix(0, st.last).UTC(), "reads": st.reads, "reason": reason}
	causes := []string{st.firstID}
	if st.lastEv.ID != st.firstID {
		causes = append(causes, st.lastEv.ID)
	}
	r.produce(r.emit.clearType, key, at, out, st.lastEv, causes)
}

func (o *rfidOp) fire(r *rule, key string, at int64) {
	st := o.tags[key]
	if st == nil || !st.timer.due(at) {
		return
	}
	if due := st.last + o.quiet; due > at {
		st.timer.arm(r, key, due) // read again since the timer was set
		return
	}
	delete(o.tags, key)
	o.depart(r, key, st, at, "quiet")
}

func (c *compiler) rfid(s *Spec) operator {
	rs := s.RFID
	o := &rfidOp{quiet: int64(rs.Quiet), transitionType: s.Emit.TransitionType}
	reader := rs.Reader
	if reader == "" {
		reader = "data.reader"
	}
	o.reader = c.field("rfid.reader", reader)
	if rs.Quiet <= 0 {
		c.errorf("rfid.quiet", "must be positive: how long a tag goes unread before it has departed")
	}
	switch {
	case s.By == "":
		c.errorf("by", "an rfid rule is keyed by the tag: give the field that names it (by: data.tag)")
	case strings.TrimSpace(s.By) == strings.TrimSpace(reader):
		c.errorf("by", "the key is the tag, not the reader (%s)", reader)
	}
	return o
}
