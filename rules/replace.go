package rules

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// Hot reload: a gateway swaps its rules while events flow (Engine.Replace).
// A rule whose definition did not change keeps everything it holds: open
// windows, pending absences, the last value reported, its timers. What
// counts as the definition is the rule as written, less its description,
// plus the zones a geofence file gave it, so that editing the GeoJSON file
// is a change too.

// definition fingerprints a compiled rule's spec.
func definition(s Spec, r *rule) [sha256.Size]byte {
	s.Description = ""
	h := sha256.New()
	b, _ := json.Marshal(s) // plain data: maps, strings, numbers
	h.Write(b)
	if g, ok := r.op.(*geofenceOp); ok {
		for _, z := range g.zones {
			fmt.Fprintf(h, "\x00%s\x00%v", z.name, z.shape)
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Replace makes set the engine's rules. A rule of set with the name and
// definition of one running keeps that rule's state and timers; a new or
// changed rule starts empty; a rule no longer in set is dropped with its
// state. Events are never processed half by the old rules and half by the
// new: the swap happens under the engine's lock. It returns the number of
// rules that kept their state.
func (e *Engine) Replace(set *RuleSet) (kept int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := make(map[string]*rule, len(e.rules))
	for _, r := range e.rules {
		old[r.name] = r
	}
	e.rules, e.byType, e.anyType = nil, map[string][]*rule{}, nil
	moved := map[*rule]*rule{} // old rule → the new rule that takes its state
	for _, r := range set.rules {
		nr := e.bind(r, len(e.rules))
		if o := old[r.name]; o != nil && o.def == r.def {
			nr.op, nr.scratch = o.op, o.scratch
			moved[o] = nr
			kept++
		}
	}
	e.nrules.Store(int64(len(e.rules)))
	e.version++
	timers := e.timers.items
	e.timers.items = nil
	for _, tm := range timers {
		if nr := moved[tm.r]; nr != nil {
			tm.r = nr
			e.timers.Push(tm)
		}
	}
	return kept
}
