package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A plan is the same for the same seed and differs for another; its truth
// survives a write and a read, and matches itself exactly.
func TestPlanDeterministicAndTruthRoundTrip(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	plan := func(seed uint64) *Plan {
		p, err := NewPlan("coldchain", Options{Seed: seed, Start: start, Duration: 6 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := plan(7), plan(7), plan(8)
	var wa, wb, wc bytes.Buffer
	for _, x := range []struct {
		p *Plan
		w *bytes.Buffer
	}{{a, &wa}, {b, &wb}, {c, &wc}} {
		if err := WriteReadings(x.w, x.p); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(wa.Bytes(), wb.Bytes()) {
		t.Error("the same seed gave different messages")
	}
	if bytes.Equal(wa.Bytes(), wc.Bytes()) {
		t.Error("another seed gave the same messages")
	}
	var buf bytes.Buffer
	if err := WriteTruth(&buf, a.Truth); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTruth(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(a.Truth) || len(a.Truth) == 0 {
		t.Fatalf("read back %d of %d truths", len(back), len(a.Truth))
	}
	if missing, unexpected := Match(a.Truth, back, 0); len(missing)+len(unexpected) > 0 {
		t.Errorf("truth does not match itself after a round trip: %d missing, %d unexpected", len(missing), len(unexpected))
	}
	shifted := append([]Truth(nil), back...)
	shifted[0].Time = shifted[0].Time.Add(time.Second)
	if missing, unexpected := Match(a.Truth, shifted, time.Millisecond); len(missing) != 1 || len(unexpected) != 1 {
		t.Errorf("an event a second off: %d missing, %d unexpected; want 1 and 1", len(missing), len(unexpected))
	}
}

// Malformed truth lines are errors naming the line, never a panic.
func TestReadTruthErrors(t *testing.T) {
	for _, in := range []string{"{", `{"type":"x"}`, `{"time":"2026-01-01T00:00:00Z"}`, `[1,2]`} {
		if _, err := ReadTruth(strings.NewReader("\n" + in + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: err %v, want one naming line 2", in, err)
		}
	}
}

func FuzzReadTruth(f *testing.F) {
	f.Add([]byte(`{"type":"a.b","subject":"s","time":"2026-01-01T00:00:00Z","fields":{"count":3}}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"type":"x","time":"not a time"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ReadTruth(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteTruth(&buf, ts); err != nil {
			t.Fatal(err)
		}
		again, err := ReadTruth(&buf)
		if err != nil || len(again) != len(ts) {
			t.Fatalf("a truth file read back differently: %v, %d vs %d", err, len(again), len(ts))
		}
	})
}
