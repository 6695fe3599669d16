package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// goldenEngines builds, for each golden case, its rules and an engine that
// has read the case's input and not yet reached its end of time.
func goldenEngines(tb testing.TB) (sets []*RuleSet, engines []*Engine) {
	files, _ := filepath.Glob("testdata/*/rules.yaml")
	for _, rf := range files {
		set, errs := LoadFiles([]string{rf}, Known{})
		in, err := os.ReadFile(filepath.Join(filepath.Dir(rf), "input.jsonl"))
		if len(errs) > 0 || err != nil {
			tb.Fatal(errs, err)
		}
		var now time.Time
		e := NewEngine(set, Options{Source: "/gw", AllowedLateness: time.Minute, Now: func() time.Time { return now }})
		for i, line := range bytes.Split(in, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
				continue
			}
			ev, err := parseReading(line, i+1)
			if err != nil {
				tb.Fatal(err)
			}
			now = ev.Time
			e.Process(ev, func(Derived) {})
		}
		sets, engines = append(sets, set), append(engines, e)
	}
	return sets, engines
}

// FuzzRestore reads damaged checkpoints of every golden case's rules:
// Restore refuses them or reads them, never panics, and a refused one
// leaves the engine empty and usable.
func FuzzRestore(f *testing.F) {
	sets, engines := goldenEngines(f)
	for _, e := range engines {
		b, _ := e.Snapshot()
		f.Add(b, uint8(0))
	}
	f.Add([]byte(stateMagic+"\x00\x00\xff\xff\xff\xff\x0f"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		set := sets[int(which)%len(sets)]
		e := NewEngine(set, Options{Source: "/gw"})
		if _, err := e.Restore(b); err != nil {
			if e.Version() != 0 || e.timers.Len() != 0 {
				t.Fatalf("a refused checkpoint changed the engine: %v", err)
			}
		}
		e.AdvanceTo(time.Unix(4e9, 0), func(Derived) {})
		again, _ := e.Snapshot()
		if _, err := NewEngine(set, Options{Source: "/gw"}).Restore(again); err != nil {
			t.Fatalf("the engine's own snapshot does not restore: %v", err)
		}
	})
}

// TestSnapshotRoundTrip: a snapshot restored into a new engine snapshots
// to the same bytes, for the state of every golden case mid-run.
func TestSnapshotRoundTrip(t *testing.T) {
	sets, engines := goldenEngines(t)
	for i, e := range engines {
		b, _ := e.Snapshot()
		e2 := NewEngine(sets[i], Options{Source: "/gw", AllowedLateness: time.Minute})
		n, err := e2.Restore(b)
		if err != nil || n != sets[i].Len() {
			t.Fatalf("case %d: restored %d of %d rules: %v", i, n, sets[i].Len(), err)
		}
		if b2, _ := e2.Snapshot(); !bytes.Equal(b, b2) {
			t.Errorf("case %d: the restored engine snapshots differently", i)
		}
		if _, err := e2.Restore(b); err == nil {
			t.Errorf("case %d: a second Restore into a running engine was accepted", i)
		}
	}
}

// TestLoadRefusesWhatOperatorsNeed: a checkpoint that parses but lacks
// what an operator cannot do without (the event that started an absence,
// a dwell or an RFID stay; the values of a percentile) is refused, rather
// than restored into a rule that would crash at its next timer.
func TestLoadRefusesWhatOperatorsNeed(t *testing.T) {
	pct := &windowOp{aggs: []aggSpec{{name: "p90", fn: aggPercentile, field: true, p: 90}},
		keys: map[string]*winKey{"k": {open: []*win{{start: 0, end: 10, accs: []acc{{n: 3}}, n: 3}}}}}
	for name, op := range map[string]operator{
		"absence":    &absenceOp{pending: map[string]*absState{"k": {deadline: 1, id: "x"}}},
		"rfid":       &rfidOp{tags: map[string]*rfidStay{"k": {reader: "r", reads: 1}}},
		"dwell":      &dwellOp{keys: map[string]*dwellStay{"k": {zone: "z"}}},
		"percentile": pct,
	} {
		w := &enc{}
		op.save(w)
		d := &dec{b: w.b}
		op.fresh().load(d)
		if d.err == nil {
			t.Errorf("%s: a state without what the operator needs was read", name)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}
