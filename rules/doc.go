// Package rules decides what happens to each canonical event: which events
// matter, and where they go.
//
// Two parts work together, composed by Flow:
//
//   - The Router: per-route filter expressions (github.com/expr-lang/expr,
//     compiled once at load), indexed by event type, that send events to the
//     uplink (in a priority class) and/or to local broker topics.
//   - The Engine: rules written in YAML (see File and configs/rules/), each
//     a match, a filter, a key and one building block (windows with
//     aggregates, change and deadband, threshold with hysteresis, rate,
//     sequence, absence, geofence, movement, RFID presence, dwell, distinct
//     values), that turn readings into notable events in event time. Each
//     source's events are ordered within an allowed lateness; a watermark
//     (the slowest active source) closes windows and fires timers, and a
//     source that goes quiet stops holding it back after an idle timeout.
//     Late events are handed on, never dropped.
//
// Replay runs rules over recorded readings on a virtual clock; it backs
// `flowgate rules test` and the golden cases in testdata/.
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
