package rules

import (
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/event"
)

// Options configure an Engine.
type Options struct {
	// Source prefixes the source of every derived event:
	// {Source}/rules/{rule name}.
	Source string
	// AllowedLateness is how far out of order a source's events may arrive.
	// The engine holds each source's events back this long (in event time)
	// and hands them to the rules in time order; an event older than that
	// is late. 0 hands events on as they come, and any event older than its
	// source's newest is late.
	AllowedLateness time.Duration
	// IdleTimeout is how long (in processing time) a source may be quiet
	// before it stops holding back the watermark, so that one silent device
	// does not freeze everyone's windows. Default 30s.
	IdleTimeout time.Duration
	// Now is processing time; time.Now if nil. The test runner gives a
	// virtual clock.
	Now    func() time.Time
	Logger *slog.Logger
}

// Derived is what the engine hands on: a notable event a rule produced,
// or (Late) an input event that came too late to be processed.
type Derived struct {
	Event *event.Event
	Rule  string // the rule that produced it; for a late event, the rule that refused it, or "" when the engine did
	Route string // the route the rule names; "" lets every route matching the type have it
	Late  bool
}

// Stats counts what the engine did.
type Stats struct {
	Processed uint64 // input events handed to the rules
	Derived   uint64 // notable events produced
	Late      uint64 // events that came too late
}

// maxDepth bounds how deep derived events feed further rules, so rules
// that feed each other in a cycle stop.
const maxDepth = 8

// Engine runs rules over events in event time. It is safe for concurrent
// use: Process is called from every publishing device's goroutine, Advance
// from the gateway's clock. Outputs are handed on after the engine's lock
// is released, so a slow consumer (the uplink's fsync) does not hold up
// other devices' events.
type Engine struct {
	opts    Options
	rules   []*rule
	byType  map[string][]*rule
	anyType []*rule

	mu       sync.Mutex
	sources  map[string]*sourceClock
	wm       int64 // the watermark, unix ns: every timer at or before it has fired
	timers   minHeap[timer]
	seq      uint64       // timer tie-breaker, so equal times fire in the order set
	version  uint64       // counts changes to the state (checkpoint.go)
	snapSize int          // the last snapshot's size, to allocate the next at once
	envOf    *event.Event // the event whose filter environment envIs is
	envIs    *Env
	out      []Derived
	depth    int

	processed, derived, late atomic.Uint64
	nrules                   atomic.Int64 // len(rules), read without the lock
}

// sourceClock is what the engine knows of one source's time.
type sourceClock struct {
	max  int64                 // the newest event time seen
	seen int64                 // processing time it was last heard from
	held minHeap[*event.Event] // with AllowedLateness: events waiting for their turn
}

func newSourceClock() *sourceClock {
	sc := &sourceClock{max: math.MinInt64}
	sc.held.less = func(a, b *event.Event) bool { return a.Time.Before(b.Time) }
	return sc
}

// timer fires a rule's key at an event time.
type timer struct {
	at  int64
	seq uint64
	r   *rule
	key string
}

// timerBefore orders timers by time, then by rule and key, so that what
// falls due at one instant comes out in the same order however the inputs
// arrived; then in the order they were set.
func timerBefore(a, b timer) bool {
	switch {
	case a.at != b.at:
		return a.at < b.at
	case a.r.idx != b.r.idx:
		return a.r.idx < b.r.idx
	case a.key != b.key:
		return a.key < b.key
	}
	return a.seq < b.seq
}

// NewEngine builds an engine over compiled rules. No other engine may run
// on set at the same time (see RuleSet).
func NewEngine(set *RuleSet, opts Options) *Engine {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{opts: opts, byType: map[string][]*rule{}, sources: map[string]*sourceClock{}, wm: math.MinInt64}
	e.timers.less = timerBefore
	for i, r := range set.rules {
		e.bind(r, i)
	}
	e.nrules.Store(int64(len(e.rules)))
	return e
}

// bind adds a stateless copy of compiled rule r to the engine as its i-th
// rule, indexed by the types it matches.
func (e *Engine) bind(r *rule, i int) *rule {
	r = r.fresh()
	r.idx = i
	r.e = e
	r.emit.source = e.opts.Source + "/rules/" + r.name
	e.rules = append(e.rules, r)
	if len(r.types) == 0 {
		e.anyType = append(e.anyType, r)
	}
	for _, t := range r.types {
		e.byType[t] = append(e.byType[t], r)
	}
	return r
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{Processed: e.processed.Load(), Derived: e.derived.Load(), Late: e.late.Load()}
}

// Watermark is the event time up to which every window has closed and
// every timer has fired.
func (e *Engine) Watermark() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wm == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, e.wm)
}

// Process takes one input event and calls emit for what it causes now.
func (e *Engine) Process(ev *event.Event, emit func(Derived)) {
	if e.nrules.Load() == 0 {
		return // no rules: nothing to keep time for, and nothing is late
	}
	t := ev.Time.UnixNano()
	e.mu.Lock()
	e.version++
	sc := e.sources[ev.Source]
	if sc == nil {
		sc = newSourceClock()
		e.sources[ev.Source] = sc
	}
	sc.seen = e.opts.Now().UnixNano()
	lateness := int64(e.opts.AllowedLateness)
	switch {
	case sc.max != math.MinInt64 && t < sc.max-lateness:
		e.lateEvent(ev, nil)
	case lateness == 0:
		sc.max = t
		e.dispatch(ev)
	default:
		sc.held.Push(ev)
		sc.max = max(sc.max, t)
		e.release(sc, sc.max-lateness)
	}
	e.flush(emit)
}

// release hands on a source's held events up to time upTo, oldest first.
func (e *Engine) release(sc *sourceClock, upTo int64) {
	for sc.held.Len() > 0 && sc.held.Peek().Time.UnixNano() <= upTo {
		e.version++
		e.dispatch(sc.held.Pop())
	}
}

// Advance moves the watermark on to what the sources' clocks allow at
// processing time now, fires the timers it passes (closing windows,
// raising absences) and calls emit for what they produce.
func (e *Engine) Advance(emit func(Derived)) {
	e.mu.Lock()
	now := e.opts.Now().UnixNano()
	lateness := int64(e.opts.AllowedLateness)
	wm := int64(math.MaxInt64)
	active := false
	for _, sc := range e.sources {
		if now-sc.seen > int64(e.opts.IdleTimeout) {
			e.release(sc, math.MaxInt64) // a quiet source's stragglers go now
			continue
		}
		active = true
		wm = min(wm, sc.max-lateness)
	}
	if !active {
		wm = now - lateness
	}
	e.advanceTo(wm)
	e.flush(emit)
}

// AdvanceTo moves the watermark to t, whatever the sources say: the test
// runner uses it to end a run.
func (e *Engine) AdvanceTo(t time.Time, emit func(Derived)) {
	e.mu.Lock()
	for _, sc := range e.sources {
		e.release(sc, t.UnixNano())
	}
	e.advanceTo(t.UnixNano())
	e.flush(emit)
}

func (e *Engine) advanceTo(wm int64) {
	if wm <= e.wm {
		return
	}
	e.wm = wm
	for e.timers.Len() > 0 && e.timers.Peek().at <= wm {
		tm := e.timers.Pop()
		e.version++
		tm.r.op.fire(tm.r, tm.key, tm.at)
	}
}

// flush releases the lock and hands on the outputs collected under it.
func (e *Engine) flush(emit func(Derived)) {
	out := e.out
	e.out = nil
	e.mu.Unlock()
	for _, d := range out {
		emit(d)
	}
}

// env is the event as filters see it, decoded once however many rules'
// filters look at it: the last event's is kept (under the engine's lock).
func (e *Engine) env(ev *event.Event) *Env {
	if e.envOf != ev {
		e.envOf, e.envIs = ev, newEnv(ev)
	}
	return e.envIs
}

// dispatch hands an event to every rule that may match it. A rule sees a
// derived event only if its match names the event's type, and never its
// own.
func (e *Engine) dispatch(ev *event.Event) {
	if e.depth == 0 {
		e.processed.Add(1)
	}
	for _, r := range e.byType[ev.Type] {
		r.offer(ev)
	}
	if e.depth > 0 {
		return // a derived event goes only to rules that name its type
	}
	for _, r := range e.anyType {
		r.offer(ev)
	}
}

// keyTimer is the one timer an operator keeps pending for a key, so that a
// key read every second holds one entry in the timer heap, not one per
// event: the operator arms it once, and when it fires either acts or arms
// it again for the time now due.
type keyTimer struct {
	at  int64
	set bool
}

// arm sets the key's timer for at.
func (k *keyTimer) arm(r *rule, key string, at int64) {
	k.at, k.set = at, true
	r.e.schedule(r, key, at)
}

// due reports whether a timer firing at at is this one, and disarms it.
func (k *keyTimer) due(at int64) bool {
	if !k.set || k.at != at {
		return false
	}
	k.set = false
	return true
}

// schedule sets a timer for a rule's key.
func (e *Engine) schedule(r *rule, key string, at int64) {
	e.seq++
	e.timers.Push(timer{at: at, seq: e.seq, r: r, key: key})
}

// produce hands on a derived event and lets the rules downstream see it.
func (e *Engine) produce(r *rule, ev *event.Event) {
	e.derived.Add(1)
	e.out = append(e.out, Derived{Event: ev, Rule: r.name, Route: r.emit.route})
	if e.depth < maxDepth {
		e.depth++
		e.dispatch(ev)
		e.depth--
	} else {
		e.opts.Logger.Warn("derived events nested too deep; not fed to further rules", "rule", r.name, "type", ev.Type)
	}
}

// lateEvent hands on an input that came too late for rule r (nil: for the
// engine).
func (e *Engine) lateEvent(ev *event.Event, r *rule) {
	e.late.Add(1)
	d := Derived{Event: ev, Late: true}
	if r != nil {
		d.Rule = r.name
	}
	e.out = append(e.out, d)
}
