// Package rules decides what happens to each canonical event: which events
// matter, and where they go.
//
// Today it holds the first stage, the Router: per-route filter expressions
// (github.com/expr-lang/expr, compiled once at load) that send matching
// events to the uplink and/or to local broker topics. The windowed rules
// engine (windows, aggregates, patterns, absence) will be another Stage:
// anything that takes an event and emits zero or more routed outputs. What
// it adds beyond Process (output driven by time, when a window closes or an
// expected event does not come, and a flush when the gateway drains) will
// be its own small interface, owned by the gateway like every goroutine.
package rules

import "github.com/flowgate/flowgate/event"

// Output is one routed event: the event and where it should go.
type Output struct {
	Event  *event.Event
	Route  string // the route (or rule) that produced it
	Uplink bool   // forward to the cloud
	Class  string // with Uplink: the uplink class (priority lane); "" for the default
	Topic  string // publish on this local broker topic, if not empty
}

// Stage is one step of event processing. Process is called synchronously for
// each event, from many goroutines at once, and calls emit for every output;
// it must not keep ev or emit after it returns unless it copies them.
type Stage interface {
	Process(ev *event.Event, emit func(Output))
}
