package rules

import (
	"time"

	"github.com/flowgate/flowgate/event"
)

// dwellOp emits when a key has stayed in one zone (the value of a field)
// longer than a time: once, when the watermark passes its entry plus that
// time while it is still there; and (with clear_type) when it then leaves.
type dwellOp struct {
	zone    field
	longer  int64
	keys    map[string]*dwellStay
	scratch []byte
}

// dwellStay is a key in one zone since an event.
type dwellStay struct {
	zone    string
	since   int64
	last    int64        // the key's latest event
	trigger *event.Event // the entry
	over    bool         // it has stayed too long, and that was emitted
}

func (o *dwellOp) fresh() operator {
	c := *o
	c.keys = map[string]*dwellStay{}
	c.scratch = nil
	return &c
}

func (o *dwellOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	raw, _, ok := o.zone.raw(ev)
	if !ok {
		return // says nothing about where the key is
	}
	z, _ := o.zone.key(ev, &o.scratch)
	nowhere := len(z) == 0 || string(raw) == "null"
	st := o.keys[string(key)]
	if st != nil {
		if t < st.last {
			return // older than what the key has done since
		}
		if !nowhere && string(z) == st.zone {
			st.last = t
			return
		}
		o.leave(r, string(key), st, ev, t)
	}
	if nowhere {
		return
	}
	k := string(key)
	st = &dwellStay{zone: string(z), since: t, last: t, trigger: ev}
	o.keys[k] = st
	r.e.schedule(r, k, t+o.longer)
}

// leave ends a key's stay at the time of event ev.
func (o *dwellOp) leave(r *rule, key string, st *dwellStay, ev *event.Event, t int64) {
	delete(o.keys, key)
	if !st.over || r.emit.clearType == "" {
		return
	}
	out := map[string]any{"zone": st.zone, "entered": time.Unix(0, st.since).UTC(),
		"seconds": round(float64(t-st.since) / 1e9)}
	r.produce(r.emit.clearType, key, t, out, ev, []string{st.trigger.ID, ev.ID})
}

func (o *dwellOp) fire(r *rule, key string, at int64) {
	st := o.keys[key]
	if st == nil || st.over || st.since+o.longer != at {
		return // it left, or this timer is of an earlier stay
	}
	st.over = true
	out := map[string]any{"zone": st.zone, "entered": time.Unix(0, st.since).UTC(),
		"longer_than": time.Duration(o.longer).String()}
	r.produce(r.emit.typ, key, at, out, st.trigger, []string{st.trigger.ID})
}

func (c *compiler) dwell(s *DwellSpec) operator {
	o := &dwellOp{longer: int64(s.LongerThan)}
	if s.Zone == "" {
		c.errorf("dwell.zone", "give the field that names where the key is (data.zone, data.reader)")
	} else {
		o.zone = c.field("dwell.zone", s.Zone)
	}
	if s.LongerThan <= 0 {
		c.errorf("dwell.longer_than", "must be positive: how long a key may stay in a zone")
	}
	return o
}
