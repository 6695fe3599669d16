package rules

import "github.com/flowgate/flowgate/event"

// Flow is the whole rules stage as the gateway runs it: every event goes
// through the routes, and through the engine, whose notable events go
// through the routes in turn (only through the route a rule names, if it
// names one). Events too late for the engine are published on LateTopic.
type Flow struct {
	Router    *Router
	Engine    *Engine // nil: routes only
	LateTopic string
}

// Process implements Stage.
func (f *Flow) Process(ev *event.Event, emit func(Output)) {
	f.Router.Process(ev, emit)
	if f.Engine != nil {
		f.Engine.Process(ev, func(d Derived) { f.route(d, emit) })
	}
}

// Advance moves the engine's clock on (see Engine.Advance) and routes what
// falls due: closed windows, absences.
func (f *Flow) Advance(emit func(Output)) {
	if f.Engine != nil {
		f.Engine.Advance(func(d Derived) { f.route(d, emit) })
	}
}

func (f *Flow) route(d Derived, emit func(Output)) {
	switch {
	case d.Late:
		emit(Output{Event: d.Event, Route: "late", Topic: f.LateTopic})
	case d.Route != "":
		f.Router.ProcessRoute(d.Route, d.Event, emit)
	default:
		f.Router.Process(d.Event, emit)
	}
}
