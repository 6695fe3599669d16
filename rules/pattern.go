package rules

import (
	"slices"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/flowgate/flowgate/event"
)

// step is one event a pattern waits for: one of types, and a filter.
type step struct {
	types  []string
	filter *vm.Program
}

func (s *step) matches(r *rule, ev *event.Event) bool {
	if len(s.types) > 0 && !slices.Contains(s.types, ev.Type) {
		return false
	}
	return s.filter == nil || runBool(s.filter, r.e.env(ev))
}

// sequenceOp emits when a key's events match its steps in order, the last
// within `within` of the first. Events between the steps are ignored; a
// sequence that runs out of time starts again at the next first step.
type sequenceOp struct {
	steps  []step
	within int64
	state  map[string]*seqState
}

type seqState struct {
	next  int   // the step waited for
	start int64 // the first step's time
	ids   []string
}

func (o *sequenceOp) fresh() operator {
	c := *o
	c.state = map[string]*seqState{}
	return &c
}

func (o *sequenceOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	st := o.state[string(key)]
	if st != nil && t-st.start > o.within {
		delete(o.state, string(key))
		st = nil
	}
	if st == nil {
		if !o.steps[0].matches(r, ev) {
			return
		}
		st = &seqState{next: 1, start: t, ids: []string{ev.ID}}
		o.state[string(key)] = st
		r.e.schedule(r, string(key), t+o.within+1) // forget it when it runs out of time
	} else if o.steps[st.next].matches(r, ev) {
		st.next++
		st.ids = append(st.ids, ev.ID)
	} else {
		return
	}
	if st.next == len(o.steps) {
		delete(o.state, string(key))
		out := map[string]any{"steps": len(o.steps), "elapsed": float64(t-st.start) / 1e9}
		r.produce(r.emit.typ, string(key), t, out, ev, st.ids)
	}
}

func (o *sequenceOp) fire(r *rule, key string, at int64) {
	if st := o.state[key]; st != nil && at-st.start > o.within {
		delete(o.state, key)
	}
}

// absenceOp emits when a key's start event is not followed by an end event
// within `within`: "a shift started and did not end within 8 hours". It
// fires when the watermark passes the deadline, so an absence that fell
// due while events were held back, or while the gateway was down, fires
// as soon as time is known to have passed it.
type absenceOp struct {
	start, end step
	within     int64
	pending    map[string]*absState
}

type absState struct {
	deadline int64
	id       string
	trigger  *event.Event
}

func (o *absenceOp) fresh() operator {
	c := *o
	c.pending = map[string]*absState{}
	return &c
}

func (o *absenceOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	if st := o.pending[string(key)]; st != nil && o.end.matches(r, ev) {
		if t <= st.deadline {
			delete(o.pending, string(key))
		}
		return
	}
	if !o.start.matches(r, ev) {
		return
	}
	if _, waiting := o.pending[string(key)]; waiting {
		return // already waiting since an earlier start
	}
	st := &absState{deadline: t + o.within, id: ev.ID, trigger: ev}
	o.pending[string(key)] = st
	r.e.schedule(r, string(key), st.deadline)
}

func (o *absenceOp) fire(r *rule, key string, at int64) {
	st := o.pending[key]
	if st == nil || st.deadline != at {
		return
	}
	delete(o.pending, key)
	out := map[string]any{"started": st.trigger.Time.UTC(), "within": time.Duration(o.within).String()}
	r.produce(r.emit.typ, key, at, out, st.trigger, []string{st.id})
}

// transformOp emits one event per matching event: the emit fields computed
// from it. It renames, converts and enriches.
type transformOp struct{}

func (transformOp) fresh() operator { return transformOp{} }

func (transformOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	r.produce(r.emit.typ, string(key), t, map[string]any{}, ev, []string{ev.ID})
}

func (transformOp) fire(*rule, string, int64) {}
