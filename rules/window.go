package rules

import (
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/flowgate/flowgate/event"
)

// Window kinds.
const (
	Tumbling = "tumbling" // fixed, back to back: [0,10s) [10s,20s) …
	Hopping  = "hopping"  // fixed size, starting every hop, overlapping
	Sliding  = "sliding"  // the last size of event time, evaluated at every event
	Session  = "session"  // events of a key closer together than gap
	Count    = "count"    // every count events of a key
)

// windowOp aggregates each key's events over windows of event time and
// emits one event per window when the watermark passes its end (or, for
// sliding and count windows, when an event completes it).
type windowOp struct {
	kind           string
	size, hop, gap int64
	count          int
	aggs           []aggSpec
	having         *vm.Program // over the aggregates; nil: always
	keys           map[string]*winKey
}

// winKey is one key's open windows.
type winKey struct {
	open []*win
	pool []*win
	last *event.Event // the latest input, for the emit fields
	// sliding: the events inside the window, oldest first, and whether
	// the condition held at the previous event.
	recent []*event.Event
	held   bool
}

// win is one open window.
type win struct {
	start, end int64 // session: end is the last event's time plus the gap
	accs       []acc
	firstID    string
	lastID     string
	n          int
}

func (o *windowOp) fresh() operator {
	c := *o
	c.keys = map[string]*winKey{}
	return &c
}

func (o *windowOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	k := o.keys[string(key)]
	if k == nil {
		k = &winKey{}
		o.keys[string(key)] = k
	}
	k.last = ev
	switch o.kind {
	case Tumbling, Hopping:
		o.fixed(r, k, key, ev, t)
	case Session:
		o.session(r, k, key, ev, t)
	case Count:
		w := o.window(k, 0, 0, key, r, false)
		o.add(r, w, ev, t)
		if w.n >= o.count {
			o.close(r, string(key), k, 0, t)
		}
	case Sliding:
		o.slide(r, k, string(key), ev, t)
	}
}

// fixed adds an event to every tumbling or hopping window it falls in.
func (o *windowOp) fixed(r *rule, k *winKey, key []byte, ev *event.Event, t int64) {
	hop := o.hop
	if o.kind == Tumbling {
		hop = o.size
	}
	first := floorDiv(t-o.size, hop)*hop + hop // the earliest window start that still covers t
	late := false
	for start := first; start <= t; start += hop {
		end := start + o.size
		if end <= r.e.wm {
			late = true // this window already closed
			continue
		}
		o.add(r, o.window(k, start, end, key, r, true), ev, t)
	}
	if late {
		r.e.lateEvent(ev, r)
	}
}

// session adds an event to its key's session, closing the previous one
// when the gap has passed.
func (o *windowOp) session(r *rule, k *winKey, key []byte, ev *event.Event, t int64) {
	if len(k.open) > 0 {
		w := k.open[0]
		if t > w.end || t < w.start-o.gap { // too far from the session: it ends
			o.close(r, string(key), k, 0, w.end)
		}
	}
	if len(k.open) == 0 && t+o.gap <= r.e.wm {
		r.e.lateEvent(ev, r) // a session that would already have closed
		return
	}
	w := o.window(k, t, t+o.gap, key, r, false)
	w.start = min(w.start, t)
	if t+o.gap > w.end || w.n == 0 {
		w.end = t + o.gap
	}
	o.add(r, w, ev, t)
	r.e.schedule(r, string(key), w.end)
}

// window returns the key's window starting at start, opening it if needed.
func (o *windowOp) window(k *winKey, start, end int64, key []byte, r *rule, timed bool) *win {
	for _, w := range k.open {
		if w.start == start || o.kind == Session || o.kind == Count {
			return w
		}
	}
	var w *win
	if n := len(k.pool); n > 0 {
		w, k.pool = k.pool[n-1], k.pool[:n-1]
	} else {
		w = &win{accs: make([]acc, len(o.aggs))}
	}
	w.start, w.end = start, end
	k.open = append(k.open, w)
	if timed {
		r.e.schedule(r, string(key), end)
	}
	return w
}

func (o *windowOp) add(r *rule, w *win, ev *event.Event, t int64) {
	for i := range o.aggs {
		w.accs[i].add(&o.aggs[i], ev, t, &r.scratch)
	}
	if w.n == 0 {
		w.firstID = ev.ID
	}
	w.lastID = ev.ID
	w.n++
}

func (o *windowOp) fire(r *rule, key string, at int64) {
	k := o.keys[key]
	if k == nil {
		return
	}
	for i := 0; i < len(k.open); {
		w := k.open[i]
		if w.end > at || (o.kind == Session && w.end != at) {
			i++
			continue
		}
		o.close(r, key, k, i, w.end)
	}
	if len(k.open) == 0 && o.kind != Sliding {
		delete(o.keys, key) // a quiet key costs nothing
	}
}

// close emits window i of key k at time at and recycles it.
func (o *windowOp) close(r *rule, key string, k *winKey, i int, at int64) {
	w := k.open[i]
	k.open = append(k.open[:i], k.open[i+1:]...)
	out := make(map[string]any, len(o.aggs)+2)
	results(o.aggs, w.accs, out)
	out["count"] = w.n
	if o.kind != Count {
		out["window"] = map[string]string{
			"start": time.Unix(0, w.start).UTC().Format(time.RFC3339Nano),
			"end":   time.Unix(0, w.end).UTC().Format(time.RFC3339Nano)}
	}
	if o.having == nil || runBool(o.having, out) {
		r.produce(r.emit.typ, key, at, out, k.last, causes(w.firstID, w.lastID))
	}
	for j := range w.accs {
		w.accs[j].reset()
	}
	w.n, w.firstID, w.lastID = 0, "", ""
	k.pool = append(k.pool, w)
}

// slide evaluates the window of the last size of event time ending at this
// event, and emits when its condition becomes true.
func (o *windowOp) slide(r *rule, k *winKey, key string, ev *event.Event, t int64) {
	k.recent = append(k.recent, ev)
	for i := len(k.recent) - 1; i > 0 && k.recent[i].Time.Before(k.recent[i-1].Time); i-- {
		k.recent[i], k.recent[i-1] = k.recent[i-1], k.recent[i]
	}
	drop := 0
	for drop < len(k.recent) && k.recent[drop].Time.UnixNano() <= t-o.size {
		drop++
	}
	k.recent = append(k.recent[:0], k.recent[drop:]...)
	accs := make([]acc, len(o.aggs))
	for _, in := range k.recent {
		for i := range o.aggs {
			accs[i].add(&o.aggs[i], in, in.Time.UnixNano(), &r.scratch)
		}
	}
	out := make(map[string]any, len(o.aggs)+1)
	results(o.aggs, accs, out)
	out["count"] = len(k.recent)
	holds := o.having == nil || runBool(o.having, out)
	if holds && (!k.held || o.having == nil) {
		r.produce(r.emit.typ, key, t, out, ev, causes(k.recent[0].ID, ev.ID))
	}
	k.held = holds
}

func causes(first, last string) []string {
	if first == last {
		return []string{first}
	}
	return []string{first, last}
}

// floorDiv is a/b rounded towards minus infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
