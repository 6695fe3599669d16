package rules

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/flowgate/flowgate/event"
)

// distinctOp emits when at least atLeast distinct values of a field have
// been seen for a key within a sliding period of event time. The period
// may be weeks long, so it keeps no events, only each value's last-seen
// time, and forgets values once they fall out of the period.
type distinctOp struct {
	f       field
	atLeast int
	within  int64
	keys    map[string]*distinctKey
	scratch []byte
}

// distinctKey is what one key has seen. A key has at most one timer, set
// for when its oldest value falls out of the period.
type distinctKey struct {
	seen   map[string]seenAt
	active bool // the count has reached atLeast and that was emitted
	timer  keyTimer
}

// seenAt is a value's latest event.
type seenAt struct {
	t  int64
	id string
}

func (o *distinctOp) fresh() operator {
	c := *o
	c.keys = map[string]*distinctKey{}
	c.scratch = nil
	return &c
}

func (o *distinctOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	v, ok := o.f.key(ev, &o.scratch)
	if !ok {
		return
	}
	k := o.keys[string(key)]
	if k == nil {
		k = &distinctKey{seen: map[string]seenAt{}}
		o.keys[string(key)] = k
	}
	old, had := k.seen[string(v)]
	if !had || t >= old.t {
		k.seen[string(v)] = seenAt{t, ev.ID}
	}
	if !k.timer.set {
		k.timer.arm(r, string(key), t+o.within+1)
	}
	if had && t-old.t <= o.within {
		return // a value already counted: the count has not grown
	}
	n := 0
	for _, s := range k.seen {
		if t-s.t <= o.within {
			n++
		}
	}
	switch {
	case n < o.atLeast:
		k.active = false
	case !k.active:
		k.active = true
		o.emit(r, string(key), k, ev, t)
	}
}

// emit reports the values a key has seen within the period up to t.
func (o *distinctOp) emit(r *rule, key string, k *distinctKey, ev *event.Event, t int64) {
	type value struct {
		v string
		seenAt
	}
	var vals []value
	for v, s := range k.seen {
		if t-s.t <= o.within {
			vals = append(vals, value{v, s})
		}
	}
	slices.SortFunc(vals, func(a, b value) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.v, b.v)) })
	names := make([]string, len(vals))
	causes := make([]string, len(vals))
	for i, v := range vals {
		names[i], causes[i] = v.v, v.id
	}
	slices.Sort(names)
	out := map[string]any{"field": o.f.text, "count": len(vals), "at_least": o.atLeast,
		"within": time.Duration(o.within).String(), "values": names}
	r.produce(r.emit.typ, key, t, out, ev, causes)
}

// fire forgets the values that have fallen out of the period, and the key
// when none are left.
func (o *distinctOp) fire(r *rule, key string, at int64) {
	k := o.keys[key]
	if k == nil || !k.timer.due(at) {
		return
	}
	oldest := int64(math.MaxInt64)
	for v, s := range k.seen {
		if at-s.t > o.within {
			delete(k.seen, v)
			continue
		}
		oldest = min(oldest, s.t)
	}
	if len(k.seen) < o.atLeast {
		k.active = false
	}
	if len(k.seen) == 0 {
		delete(o.keys, key)
		return
	}
	k.timer.arm(r, key, oldest+o.within+1)
}

func (c *compiler) distinct(s *DistinctSpec) operator {
	o := &distinctOp{atLeast: s.AtLeast, within: int64(s.Within)}
	if s.Field == "" {
		c.errorf("distinct.field", "give the field whose distinct values are counted (source, data.reader)")
	} else {
		o.f = c.field("distinct.field", s.Field)
	}
	if s.AtLeast < 1 {
		c.errorf("distinct.at_least", "must be 1 or more: how many distinct values are notable")
	}
	if s.Within <= 0 {
		c.errorf("distinct.within", "must be positive: the period the values are counted over (14d)")
	}
	return o
}
