package rules

import (
	"bytes"
	"fmt"
)

// Checkpoints. An engine's state (each source's clock and held events, the
// watermark, every rule's open windows, pending absences and other per-key
// state, and the timers) is written with Snapshot and read back into a new
// engine with Restore, so that a restart carries on where the last
// checkpoint left off. A rule's state is restored only into a rule of the
// same name and definition (see replace.go): a rule edited while the
// gateway was down starts empty. A timer that fell due while the gateway
// was down fires at the first Advance whose watermark passes it: once the
// sources send again, or go quiet for the idle timeout.

// stateMagic starts every checkpoint; the digit is the format's version.
const stateMagic = "FGRULES1"

// Version counts the changes to the engine's state. A checkpoint taken at
// the same version as the last one would be the same.
func (e *Engine) Version() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.version
}

// Snapshot returns the engine's state and its version.
func (e *Engine) Snapshot() ([]byte, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := &enc{b: append(make([]byte, 0, max(4096, e.snapSize+e.snapSize/4)), stateMagic...)}
	w.i(e.wm)
	w.u(e.seq)
	saveMap(w, e.sources, func(w *enc, sc *sourceClock) {
		w.i(sc.max)
		w.events(sc.held.items)
	})
	w.n(len(e.rules))
	for _, r := range e.rules {
		w.s(r.name)
		w.raw(r.def[:])
		at := w.sized()
		r.op.save(w)
		w.size(at)
	}
	w.n(e.timers.Len())
	for _, tm := range e.timers.items {
		w.s(tm.r.name)
		w.s(tm.key)
		w.i(tm.at)
		w.u(tm.seq)
	}
	e.snapSize = len(w.b)
	return w.b, e.version
}

// Restore reads a snapshot into the engine, which must not have processed
// anything yet. It returns how many rules got their state back. A damaged
// snapshot changes nothing and returns an error.
func (e *Engine) Restore(b []byte) (restored int, err error) {
	if !bytes.HasPrefix(b, []byte(stateMagic)) {
		return 0, errState
	}
	d := &dec{b: b[len(stateMagic):]}
	wm, seq := d.i(), d.u()
	now := e.opts.Now().UnixNano()
	sources := loadMap(d, func(d *dec) *sourceClock {
		sc := newSourceClock()
		sc.max, sc.seen = d.i(), now
		for _, ev := range d.events() {
			sc.held.Push(ev)
		}
		return sc
	})
	byName := make(map[string]*rule, len(e.rules))
	for _, r := range e.rules {
		byName[r.name] = r
	}
	ops := map[*rule]operator{}
	for range d.n() {
		if d.err != nil {
			break
		}
		name, def, state := d.s(), d.raw(), d.sized()
		r := byName[name]
		if d.err != nil || r == nil || !bytes.Equal(def, r.def[:]) {
			continue // gone or changed: it starts empty
		}
		op := r.op.fresh()
		od := &dec{b: state}
		op.load(od)
		if od.err != nil || len(od.b) > 0 {
			return 0, fmt.Errorf("%w: rule %q", errState, name)
		}
		ops[r] = op
	}
	var timers []timer
	for range d.n() {
		if d.err != nil {
			break
		}
		name, key, at, tseq := d.s(), d.s(), d.i(), d.u()
		if r := byName[name]; r != nil && ops[r] != nil {
			timers = append(timers, timer{at: at, seq: tseq, r: r, key: key})
		}
	}
	if d.err != nil || len(d.b) > 0 {
		return 0, errState
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.processed.Load() > 0 || e.version > 0 {
		return 0, fmt.Errorf("rules: Restore into an engine that has already run")
	}
	e.wm, e.seq, e.sources = wm, seq, sources
	for r, op := range ops {
		r.op = op
	}
	for _, tm := range timers {
		e.timers.Push(tm)
	}
	e.version++
	return len(ops), nil
}
