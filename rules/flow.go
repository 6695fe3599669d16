package rules

import (
	"sync/atomic"

	"github.com/flowgate/flowgate/event"
)

// Flow is the whole rules stage as the gateway runs it: every event goes
// through the routes, and through the engine, whose notable events go
// through the routes in turn (only through the route a rule names, if it
// names one). Events too late for the engine are published on the late
// topic. Routes and rules can be replaced while events flow (Replace).
type Flow struct {
	router    atomic.Pointer[Router]
	engine    *Engine
	lateTopic string
}

// NewFlow builds the rules stage. engine may have no rules; it gets them
// on Replace.
func NewFlow(router *Router, engine *Engine, lateTopic string) *Flow {
	f := &Flow{engine: engine, lateTopic: lateTopic}
	f.router.Store(router)
	return f
}

// Engine is the flow's rules engine.
func (f *Flow) Engine() *Engine { return f.engine }

// Replace makes router and the rules of set the flow's (see
// Engine.Replace) and returns how many rules kept their state. An event
// being processed meanwhile goes through the old routes or the new ones,
// each whole.
func (f *Flow) Replace(router *Router, set *RuleSet) (kept int) {
	f.router.Store(router)
	return f.engine.Replace(set)
}

// Process implements Stage.
func (f *Flow) Process(ev *event.Event, emit func(Output)) {
	rt := f.router.Load()
	rt.Process(ev, emit)
	f.engine.Process(ev, func(d Derived) { f.route(rt, d, emit) })
}

// Advance moves the engine's clock on (see Engine.Advance) and routes what
// falls due: closed windows, absences.
func (f *Flow) Advance(emit func(Output)) {
	rt := f.router.Load()
	f.engine.Advance(func(d Derived) { f.route(rt, d, emit) })
}

func (f *Flow) route(rt *Router, d Derived, emit func(Output)) {
	switch {
	case d.Late:
		emit(Output{Event: d.Event, Route: "late", Topic: f.lateTopic})
	case d.Route != "":
		if !rt.ProcessRoute(d.Route, d.Event, emit) {
			// Only during a reload, which swaps the routes and the rules
			// one after the other, can a rule name a route the routes in
			// hand lack: its event then goes where its type goes, rather
			// than nowhere.
			rt.Process(d.Event, emit)
		}
	default:
		rt.Process(d.Event, emit)
	}
}
