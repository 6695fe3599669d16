package rules

import (
	"bytes"
	"encoding/json"
	"math"
	"time"

	"github.com/flowgate/flowgate/event"
)

// Report by exception: the building blocks that turn a stream of readings
// into events only when something changes.

// changeOp emits when a field's value changes: any change for text, or a
// change beyond the deadband for numbers, measured from the last value it
// reported (so a slow drift is reported once it adds up).
type changeOp struct {
	f           field
	deadband    float64
	deadbandPct float64
	last        map[string]*changeState
}

type changeState struct {
	raw []byte  // the last reported value as JSON
	num float64 // and as a number, when it is one
	isN bool
}

func (o *changeOp) fresh() operator {
	c := *o
	c.last = map[string]*changeState{}
	return &c
}

func (o *changeOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	raw, s, ok := o.f.raw(ev)
	if !ok {
		return
	}
	if raw == nil {
		raw, _ = json.Marshal(s)
	}
	num, isN := o.f.number(ev)
	st := o.last[string(key)]
	if st != nil && !o.changed(st, raw, num, isN) {
		return
	}
	out := map[string]any{"field": o.f.text, "value": json.RawMessage(bytes.Clone(raw))}
	if st == nil {
		st = &changeState{}
		o.last[string(key)] = st
	} else {
		out["previous"] = json.RawMessage(st.raw)
	}
	st.raw, st.num, st.isN = bytes.Clone(raw), num, isN
	r.produce(r.emit.typ, string(key), t, out, ev, []string{ev.ID})
}

func (o *changeOp) changed(st *changeState, raw []byte, num float64, isN bool) bool {
	if !isN || !st.isN {
		return !bytes.Equal(st.raw, raw)
	}
	d := math.Abs(num - st.num)
	switch {
	case o.deadband > 0:
		return d > o.deadband
	case o.deadbandPct > 0:
		return d > math.Abs(st.num)*o.deadbandPct/100
	default:
		return num != st.num
	}
}

func (o *changeOp) fire(*rule, string, int64) {}

// thresholdOp emits when a field crosses a limit, and (with clear_type)
// when it comes back past the clearing limit.
type thresholdOp struct {
	f              field
	above          bool    // the condition is value > limit; else value < limit
	limit, clearAt float64 // clearAt is limit when no hysteresis is given
	active         map[string]thresholdStart
}

// thresholdStart is the event that started a key's condition.
type thresholdStart struct {
	id string
	at time.Time
}

func (o *thresholdOp) fresh() operator {
	c := *o
	c.active = map[string]thresholdStart{}
	return &c
}

func (o *thresholdOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	v, ok := o.f.number(ev)
	if !ok {
		return
	}
	start, on := o.active[string(key)]
	var enter, leave bool
	if o.above {
		enter, leave = !on && v > o.limit, on && v < o.clearAt
	} else {
		enter, leave = !on && v < o.limit, on && v > o.clearAt
	}
	switch {
	case enter:
		o.active[string(key)] = thresholdStart{ev.ID, ev.Time}
		out := map[string]any{"field": o.f.text, "value": round(v), "limit": o.limit}
		r.produce(r.emit.typ, string(key), t, out, ev, []string{ev.ID})
	case leave:
		delete(o.active, string(key))
		if r.emit.clearType != "" {
			out := map[string]any{"field": o.f.text, "value": round(v), "limit": o.clearAt,
				"started": start.at.UTC().Format(time.RFC3339Nano)}
			r.produce(r.emit.clearType, string(key), t, out, ev, []string{start.id, ev.ID})
		}
	}
}

func (o *thresholdOp) fire(*rule, string, int64) {}

// rateOp emits when a field changes faster than a limit between
// consecutive events of a key, as change per `per` of event time.
type rateOp struct {
	f            field
	per          float64 // ns
	above, below *float64
	minGap       int64 // ns: readings closer than this to prev are skipped
	prev         map[string]*ratePrev
}

type ratePrev struct {
	v  float64
	t  int64
	id string
}

func (o *rateOp) fresh() operator {
	c := *o
	c.prev = map[string]*ratePrev{}
	return &c
}

func (o *rateOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	v, ok := o.f.number(ev)
	if !ok {
		return
	}
	p := o.prev[string(key)]
	if p == nil {
		o.prev[string(key)] = &ratePrev{v, t, ev.ID}
		return
	}
	dt := t - p.t
	if dt <= 0 || dt < o.minGap {
		return // the same instant, out of order, or too close to tell a rate from noise
	}
	rate := (v - p.v) / float64(dt) * o.per
	if (o.above != nil && rate > *o.above) || (o.below != nil && rate < *o.below) {
		out := map[string]any{"field": o.f.text, "value": round(v), "previous": round(p.v), "rate": round(rate),
			"per": time.Duration(o.per).String()}
		r.produce(r.emit.typ, string(key), t, out, ev, []string{p.id, ev.ID})
	}
	*p = ratePrev{v, t, ev.ID}
}

func (o *rateOp) fire(*rule, string, int64) {}
