package rules

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestReplaceKeepsUnchangedRules swaps an engine's rules while an absence
// is pending and a window is open: the unchanged absence keeps its timer
// and fires at its deadline; the window, whose size changed, starts empty;
// a rule that is gone never fires again; a description edit is no change.
func TestReplaceKeepsUnchangedRules(t *testing.T) {
	const absence = `
  - name: shift
    description: %s
    match: {types: [shift.start, shift.end]}
    absence: {start: {types: [shift.start]}, end: {types: [shift.end]}, within: 8h}
    emit: {type: shift.overrun}`
	window := func(size string) string {
		return `
  - name: avg
    match: {types: [env.reading]}
    window: {kind: tumbling, size: ` + size + `}
    aggregates: {n: count()}
    emit: {type: env.count}`
	}
	const gone = `
  - name: gone
    match: {types: [shift.start]}
    absence: {start: {types: [shift.start]}, end: {types: [shift.end]}, within: 1h}
    emit: {type: shift.gone}`
	parse := func(src string) *RuleSet {
		t.Helper()
		set, errs := Parse("rules.yaml", []byte("rules:"+src), Known{})
		if errs != nil {
			t.Fatal(errs)
		}
		return set
	}
	t0 := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	e := NewEngine(parse(fmt.Sprintf(absence, "day shift")+window("1h")+gone), Options{Source: "/gw"})
	var out []string
	emit := func(d Derived) {
		var data struct{ N *int }
		_ = json.Unmarshal(d.Event.Data, &data)
		s := fmt.Sprintf("%s %s %s", d.Event.Type, d.Event.Subject, d.Event.Time.Format("15:04"))
		if data.N != nil {
			s += fmt.Sprintf(" n=%d", *data.N)
		}
		out = append(out, s)
	}
	at := func(typ, subject string, d time.Duration) {
		ev := reading(typ, subject, `{}`)
		ev.Time = t0.Add(d)
		e.Process(ev, emit)
	}
	at("shift.start", "driver-1", 0)
	at("env.reading", "room-1", 10*time.Minute)
	at("env.reading", "room-1", 20*time.Minute)

	kept := e.Replace(parse(fmt.Sprintf(absence, "edited") + window("30m")))
	if kept != 1 {
		t.Errorf("Replace kept %d rules' state, want 1 (shift)", kept)
	}
	at("env.reading", "room-1", 40*time.Minute)
	e.AdvanceTo(t0.Add(9*time.Hour), emit)
	want := []string{
		"env.count room-1 07:00 n=1", // the new 30m window from 06:30 holds only the reading after the swap
		"shift.overrun driver-1 14:00",
	}
	if !slices.Equal(out, want) {
		t.Errorf("emitted %q, want %q", out, want)
	}
}

// TestRouteMissingDuringReload: a rule naming a route the flow's routes
// lack (possible only for a moment during a reload) has its event routed
// by type rather than dropped.
func TestRouteMissingDuringReload(t *testing.T) {
	set, errs := Parse("rules.yaml", []byte(`rules:
  - name: hot
    match: {types: [env.reading]}
    emit: {type: env.hot, route: alerts-v2}
`), Known{})
	if errs != nil {
		t.Fatal(errs)
	}
	router, err := NewRouter([]Route{{Name: "alerts", Types: []string{"env.hot"}, Uplink: true}})
	if err != nil {
		t.Fatal(err)
	}
	f := NewFlow(router, NewEngine(set, Options{Source: "/gw"}), "flowgate/late")
	var got []string
	f.Process(reading("env.reading", "d1", `{}`), func(o Output) { got = append(got, o.Event.Type+" via "+o.Route) })
	if !slices.Contains(got, "env.hot via alerts") {
		t.Errorf("outputs %q, want env.hot through the alerts route", got)
	}
}

// TestRuleSetFiles: the zone files geofences read are listed, so that the
// gateway reloads when one changes.
func TestRuleSetFiles(t *testing.T) {
	dir := t.TempDir()
	zones := filepath.Join(dir, "depot.geojson")
	if err := os.WriteFile(zones, []byte(`{"type": "FeatureCollection", "features": [
		{"type": "Feature", "properties": {"name": "depot"}, "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rf := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rf, []byte(`rules:
  - name: depot
    match: {types: [gps.fix]}
    geofence: {file: depot.geojson}
    emit: {type: zone.entered, clear_type: zone.left}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	set, errs := LoadFiles([]string{rf}, Known{})
	if errs != nil {
		t.Fatal(errs)
	}
	if got := set.Files(); !slices.Equal(got, []string{zones}) {
		t.Errorf("Files() = %q, want %q", got, zones)
	}
}
