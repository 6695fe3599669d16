package sim

import (
	"bytes"
	"slices"
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

// rateTruth skips a reading closer than minGap to the one it would be
// compared with, as the rules' rate.min_interval does: the next reading is
// compared with that same earlier one.
func TestRateTruthMinGap(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	pts := []point{{t: t0, v: 20}, {t: t0.Add(500 * time.Millisecond), v: 21}, {t: t0.Add(time.Second), v: 20.2},
		{t: t0.Add(1500 * time.Millisecond), v: 60}, {t: t0.Add(2500 * time.Millisecond), v: 60.1}}
	at := func(trs []Truth) (out []time.Duration) {
		for _, tr := range trs {
			out = append(out, tr.Time.Sub(t0))
		}
		return out
	}
	for _, c := range []struct {
		minGap time.Duration
		want   []time.Duration
	}{
		{0, []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond}},
		{time.Second, []time.Duration{2500 * time.Millisecond}},
	} {
		if got := at(rateTruth(pts, time.Minute, c.minGap, 30, "jump", "s1")); !slices.Equal(got, c.want) {
			t.Errorf("minGap %v: jumps at %v, want %v", c.minGap, got, c.want)
		}
	}
}
