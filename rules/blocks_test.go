package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
)

// Tests of the geofence, movement, rfid, dwell and distinct blocks beyond
// their golden cases: what the compiler refuses, and corners of their
// behaviour.

// TestBlockCompileErrors checks that each mistake in a new block is
// refused with a message naming the key, at the key's place in the file.
func TestBlockCompileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("notfc.geojson", `{"type": "Feature"}`)
	write("noname.geojson", `{"type": "FeatureCollection", "features": [
		{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]}}]}`)
	write("point.geojson", `{"type": "FeatureCollection", "features": [
		{"type": "Feature", "properties": {"name": "p"}, "geometry": {"type": "Point", "coordinates": [0, 0]}}]}`)
	write("badring.geojson", `{"type": "FeatureCollection", "features": [
		{"type": "Feature", "properties": {"name": "flat"}, "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,1],[2,2],[0,0]]]}}]}`)
	write("dup.geojson", `{"type": "FeatureCollection", "features": [
		{"type": "Feature", "properties": {"name": "depot"}, "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]}}]}`)
	write("garbage.geojson", `{"type": "FeatureCollection", "features": [`)

	const ring = `[[0, 0], [1, 0], [1, 1]]`
	for _, tc := range []struct {
		name, rule string
		want       string // path: message, as Parse reports it
	}{
		{"geofence without zones", `geofence: {}`, "rules[0].geofence: give zones, a GeoJSON file of zones, or both"},
		{"zone without name", `geofence: {zones: [{ring: ` + ring + `}]}`, "rules[0].geofence.zones[0].name: give the zone a name"},
		{"point of three numbers", `geofence: {zones: [{name: a, ring: [[0, 0], [1, 0, 5], [1, 1]]}]}`,
			"rules[0].geofence.zones[0].ring[1]: want a point [lon, lat], got 3 numbers"},
		{"latitude out of range", `geofence: {zones: [{name: a, ring: [[0, 0], [1, 0], [1, 95]]}]}`,
			"rules[0].geofence.zones[0].ring[2]: latitude 95 is outside -90..90 (points are [lon, lat])"},
		{"longitude out of range", `geofence: {zones: [{name: a, ring: [[0, 0], [181, 0], [1, 1]]}]}`,
			"rules[0].geofence.zones[0].ring[1]: longitude 181 is outside -180..180"},
		{"two points", `geofence: {zones: [{name: a, ring: [[0, 0], [1, 0], [0, 0]]}]}`,
			"rules[0].geofence.zones[0].ring: a ring needs at least three distinct points, got 2"},
		{"no area", `geofence: {zones: [{name: a, ring: [[0, 0], [1, 1], [2, 2]]}]}`,
			"rules[0].geofence.zones[0].ring: the ring encloses no area"},
		{"duplicate zone", `geofence: {zones: [{name: a, ring: ` + ring + `}, {name: a, ring: ` + ring + `}]}`,
			`rules[0].geofence.zones[1].name: another zone is already named "a"`},
		{"duplicate zone in file", `geofence: {zones: [{name: depot, ring: ` + ring + `}], file: dup.geojson}`,
			`rules[0].geofence.file: another zone is already named "depot"`},
		{"missing file", `geofence: {file: nowhere.geojson}`, "rules[0].geofence.file: reading zones: open "},
		{"device as file", `geofence: {file: /dev/null}`, "rules[0].geofence.file: reading zones: /dev/null is not a regular file"},
		{"not GeoJSON", `geofence: {file: garbage.geojson}`, "rules[0].geofence.file: garbage.geojson: not GeoJSON"},
		{"not a collection", `geofence: {file: notfc.geojson}`,
			`rules[0].geofence.file: notfc.geojson: want a GeoJSON FeatureCollection, got type "Feature"`},
		{"feature without name", `geofence: {file: noname.geojson}`,
			`rules[0].geofence.file: noname.geojson: features[0]: want a "name" property (a string)`},
		{"point feature", `geofence: {file: point.geojson}`,
			`rules[0].geofence.file: point.geojson: features[0] ("p"): want a Polygon or MultiPolygon, got "Point"`},
		{"flat feature", `geofence: {file: badring.geojson}`,
			`rules[0].geofence.file: badring.geojson: features[0] ("flat"): polygon 0 ring 0: the ring encloses no area`},
		{"bad lat field", `geofence: {lat: latitude, zones: [{name: a, ring: ` + ring + `}]}`,
			`rules[0].geofence.lat: "latitude" is not a field`},
		{"no max speed", `movement: {}`, "rules[0].movement.max_speed: must be a positive number: the fastest the key can go, in m/s"},
		{"negative max speed", `movement: {max_speed: -3}`, "rules[0].movement.max_speed: must be a positive number"},
		{"negative min distance", `movement: {max_speed: 50, min_distance: -1}`, "rules[0].movement.min_distance: must be a number of metres"},
		{"bad lon field", `movement: {max_speed: 50, lon: data.}`, `rules[0].movement.lon: "data." is not a field`},
		{"no quiet", `by: data.tag` + "\n    " + `rfid: {reader: data.reader}`, "rules[0].rfid.quiet: must be positive"},
		{"rfid without key", `rfid: {quiet: 10s}`, "rules[0].by: an rfid rule is keyed by the tag"},
		{"rfid keyed by reader", `by: data.reader` + "\n    " + `rfid: {quiet: 10s}`, "rules[0].by: the key is the tag, not the reader (data.reader)"},
		{"bad reader field", `by: data.tag` + "\n    " + `rfid: {reader: reader, quiet: 10s}`, `rules[0].rfid.reader: "reader" is not a field`},
		{"rate negative min_interval", `rate: {field: data.v, above: 1, min_interval: -1s}`, "rules[0].rate.min_interval: must not be negative"},
		{"dwell without zone", `dwell: {longer_than: 1h}`, "rules[0].dwell.zone: give the field that names where the key is"},
		{"dwell without time", `dwell: {zone: data.zone}`, "rules[0].dwell.longer_than: must be positive"},
		{"dwell negative time", `dwell: {zone: data.zone, longer_than: -1h}`, "rules[0].dwell.longer_than: must be positive"},
		{"distinct without field", `distinct: {at_least: 3, within: 1d}`, "rules[0].distinct.field: give the field whose distinct values are counted"},
		{"distinct at_least 0", `distinct: {field: source, at_least: 0, within: 1d}`, "rules[0].distinct.at_least: must be 1 or more"},
		{"distinct without period", `distinct: {field: source, at_least: 3}`, "rules[0].distinct.within: must be positive"},
		{"distinct bad field", `distinct: {field: src, at_least: 3, within: 1d}`, `rules[0].distinct.field: "src" is not a field`},
		{"two blocks", `geofence: {zones: [{name: a, ring: ` + ring + `}]}` + "\n    " + `movement: {max_speed: 50}`,
			"rules[0].movement: a rule has one building block; this one also has geofence"},
		{"clear_type on movement", `movement: {max_speed: 50}`, "rules[0].emit.clear_type: only a threshold, geofence, rfid or dwell rule has a clearing event"},
		{"transition_type on dwell", `dwell: {zone: data.zone, longer_than: 1h}`, "rules[0].emit.transition_type: only an rfid rule has a transition event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emit := "emit: {type: out}"
			switch {
			case strings.Contains(tc.name, "clear_type"):
				emit = "emit: {type: out, clear_type: out.cleared}"
			case strings.Contains(tc.name, "transition_type"):
				emit = "emit: {type: out, transition_type: out.moved}"
			}
			file := "rules:\n  - name: r\n    " + tc.rule + "\n    " + emit + "\n"
			missing := func(path string) bool {
				key := path[strings.LastIndex(path, ".")+1:]
				return !strings.Contains(tc.rule, key+":")
			}
			_, errs := Parse(filepath.Join(dir, "rules.yaml"), []byte(file), Known{})
			var msgs []string
			found := false
			for _, e := range errs {
				msgs = append(msgs, e.Error())
				if strings.HasPrefix(e.Msg, tc.want) {
					found = true
					// A key that is missing is reported at 1:1, as
					// yamlpos does; one that is there, at its value.
					if path, _, _ := strings.Cut(tc.want, ": "); e.Pos.Line < 2 && !missing(path) {
						t.Errorf("%q is reported at %v, not at its key", e.Msg, e.Pos)
					}
				}
			}
			if !found {
				t.Errorf("want an error containing %q, got:\n%s", tc.want, strings.Join(msgs, "\n"))
			}
		})
	}
}

// TestGeofenceFileRelativeToRules checks that a zone file is found beside
// the rules file wherever the process runs, and that Compile without a
// directory looks in the working directory.
func TestGeofenceFileRelativeToRules(t *testing.T) {
	src := "testdata/geofence-depot/rules.yaml"
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := Parse(src, data, Known{}); len(errs) > 0 {
		t.Fatalf("beside the rules file: %v", errs)
	}
	spec := Spec{Name: "g", Geofence: &GeofenceSpec{File: "zones.geojson"}, Emit: EmitSpec{Type: "x"}}
	if _, errs := Compile([]Spec{spec}); len(errs) != 1 || errs[0].Key != "geofence.file" {
		t.Fatalf("without Dir, zones.geojson is not in the working directory: want one geofence.file error, got %v", errs)
	}
	spec.Dir = "testdata/geofence-depot"
	if set, errs := Compile([]Spec{spec}); len(errs) > 0 || set.Len() != 1 {
		t.Fatalf("with Dir: %v", errs)
	}
}

// TestEmitsTransitionType checks that the catalog check sees every type an
// rfid rule can produce.
func TestEmitsTransitionType(t *testing.T) {
	set, errs := Compile([]Spec{{Name: "t", By: "data.tag", RFID: &RFIDSpec{Quiet: Duration(time.Second)},
		Emit: EmitSpec{Type: "tag.arrived", ClearType: "tag.departed", TransitionType: "tag.moved"}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := set.Emits(), []string{"tag.arrived", "tag.departed", "tag.moved"}; !slices.Equal(got, want) {
		t.Errorf("Emits() = %v, want %v", got, want)
	}
}

// replayYAML runs input lines through a rules file and returns the types
// and times of what comes out, one "type@time" per output.
func replayYAML(t *testing.T, rules, input string, until time.Duration) []string {
	t.Helper()
	set, errs := Parse("test.yaml", []byte(rules), Known{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	err := Replay(set, strings.NewReader(input), ReplayOptions{Until: until, IdleTimeout: time.Hour}, func(d Derived) {
		got = append(got, d.Event.Type+"@"+d.Event.Time.Format("15:04:05"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDistinctForgetsAndRearms checks that values leave the period by
// timer even when no event of the key comes, so that the count can reach
// at_least again and be reported again.
func TestDistinctForgetsAndRearms(t *testing.T) {
	rules := `rules:
  - name: d
    by: data.k
    distinct: {field: data.v, at_least: 2, within: 1m}
    emit: {type: seen}
`
	input := `{"time":"2026-01-01T00:00:00Z","type":"x","source":"s","data":{"k":"a","v":1}}
{"time":"2026-01-01T00:00:30Z","type":"x","source":"s","data":{"k":"a","v":2}}
{"time":"2026-01-01T00:00:40Z","type":"x","source":"s","data":{"k":"a","v":2}}
{"time":"2026-01-01T00:05:00Z","type":"x","source":"s","data":{"k":"other","v":9}}
{"time":"2026-01-01T00:06:00Z","type":"x","source":"s","data":{"k":"a","v":3}}
{"time":"2026-01-01T00:06:10Z","type":"x","source":"s","data":{"k":"a","v":3}}
{"time":"2026-01-01T00:06:20Z","type":"x","source":"s","data":{"k":"a","v":1}}
`
	got := replayYAML(t, rules, input, 0)
	want := []string{"seen@00:00:30", "seen@00:06:20"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestGeofenceOverlap checks that a fix can be in two zones at once and
// that leaving one of them leaves the other alone.
func TestGeofenceOverlap(t *testing.T) {
	rules := `rules:
  - name: g
    geofence:
      zones:
        - {name: big, ring: [[0, 0], [10, 0], [10, 10], [0, 10]]}
        - {name: small, ring: [[2, 2], [4, 2], [4, 4], [2, 4]]}
    emit: {type: in, clear_type: out}
`
	input := `{"time":"2026-01-01T00:00:01Z","type":"fix","subject":"v","data":{"lat":3,"lon":3}}
{"time":"2026-01-01T00:00:02Z","type":"fix","subject":"v","data":{"lat":5,"lon":5}}
{"time":"2026-01-01T00:00:03Z","type":"fix","subject":"v","data":{"lat":"3.5","lon":"3.5"}}
{"time":"2026-01-01T00:00:04Z","type":"fix","subject":"v","data":{"lat":95,"lon":3}}
{"time":"2026-01-01T00:00:05Z","type":"fix","subject":"v","data":{"lat":11,"lon":3}}
`
	got := replayYAML(t, rules, input, 0)
	want := []string{"in@00:00:01", "in@00:00:01", "out@00:00:02", "in@00:00:03", "out@00:00:05", "out@00:00:05"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRFIDManyReadsOneTimer checks that a tag read every second keeps at
// most one timer, and departs quiet after its last read, not its first.
func TestRFIDManyReadsOneTimer(t *testing.T) {
	set, errs := Compile([]Spec{{Name: "t", By: "data.tag", RFID: &RFIDSpec{Quiet: Duration(10 * time.Second)},
		Emit: EmitSpec{Type: "arrived", ClearType: "departed"}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var now time.Time
	e := NewEngine(set, Options{Now: func() time.Time { return now }})
	var got []string
	emit := func(d Derived) { got = append(got, d.Event.Type+"@"+d.Event.Time.Format("04:05")) }
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for s := range 50 {
		line := fmt.Sprintf(`{"time":%q,"type":"r","source":"/r","data":{"tag":"T","reader":"d"}}`,
			start.Add(time.Duration(s)*time.Second).Format(time.RFC3339))
		ev, err := parseReading([]byte(line), s+1)
		if err != nil {
			t.Fatal(err)
		}
		now = ev.Time
		e.Process(ev, emit)
		e.Advance(emit)
		if n := e.timers.Len(); n != 1 {
			t.Fatalf("after %d reads of one tag, %d timers are set, want 1", s+1, n)
		}
	}
	e.AdvanceTo(start.Add(time.Minute), emit)
	if want := []string{"arrived@00:00", "departed@00:59"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRulesShareLookups: rules reading the same data path share one cache
// of it, and each event is read for its own values, even when one rule's
// output is processed between two rules reading the same event.
func TestRulesShareLookups(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: hot
    match: {types: [r]}
    threshold: {field: data.v, above: 10, clear_below: 5}
    emit: {type: hot.started, clear_type: hot.ended, fields: {v: data.v}}
  - name: on-hot
    match: {types: [hot.started]}
    change: {field: data.v}
    emit: {type: hot.seen}
  - name: very-hot
    match: {types: [r]}
    threshold: {field: data.v, above: 20, clear_below: 15}
    emit: {type: veryhot.started, clear_type: veryhot.ended}
`)
	a, b := set.rules[0].op.(*thresholdOp).f.cache, set.rules[2].op.(*thresholdOp).f.cache
	if a == nil || a != b || set.rules[1].op.(*changeOp).f.cache != a {
		t.Fatalf("caches of data.v: %p %p %p, want one shared", a, set.rules[1].op.(*changeOp).f.cache, b)
	}
	e := NewEngine(set, Options{})
	var got []string
	emit := func(d Derived) {
		s := d.Event.Subject + ":" + d.Event.Type
		if v := lookup(d.Event.Data, []string{"v"}); v != nil {
			s += "=" + string(v)
		}
		got = append(got, s)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, in := range []struct{ subject, data string }{
		{"c", `{"v": 1}`}, {"d", `{"v":30}`}, // the same length: only the address tells them apart
		{"a", `{"v":1}`}, {"b", `{"v":2}`},
		{"a", `{"v":25}`}, {"b", `{"v":12}`},
		{"a", `{"v":3}`}, {"b", `{"v":4}`},
	} {
		ev := &event.Event{ID: fmt.Sprint(i), Source: "/d/" + in.subject, Type: "r", Subject: in.subject,
			Time: t0.Add(time.Duration(i) * time.Second), Data: []byte(in.data)}
		e.Process(ev, emit)
	}
	want := []string{"d:hot.started=30", "d:hot.seen", "d:veryhot.started", "a:hot.started=25", "a:hot.seen", "a:veryhot.started", "b:hot.started=12", "b:hot.seen",
		"a:hot.ended=3", "a:veryhot.ended", "b:hot.ended=4"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// TestRateMinInterval: readings that come in a burst, milliseconds apart,
// make a small step look like a steep rate; with min_interval a rate spans
// at least that long, so the burst is compared with the reading before it,
// and a real jump over the interval still fires.
func TestRateMinInterval(t *testing.T) {
	input := `{"time":"2026-01-01T00:00:00.000Z","type":"r","subject":"d","data":{"v":20.0}}
{"time":"2026-01-01T00:00:00.001Z","type":"r","subject":"d","data":{"v":20.1}}
{"time":"2026-01-01T00:00:00.002Z","type":"r","subject":"d","data":{"v":20.2}}
{"time":"2026-01-01T00:00:01.000Z","type":"r","subject":"d","data":{"v":20.3}}
{"time":"2026-01-01T00:00:01.001Z","type":"r","subject":"d","data":{"v":20.4}}
{"time":"2026-01-01T00:00:02.000Z","type":"r","subject":"d","data":{"v":35.0}}
`
	for _, c := range []struct {
		spec string
		want []string
	}{
		{`{field: data.v, per: 1s, above: 5}`, []string{"jump@00:00:00", "jump@00:00:00", "jump@00:00:01", "jump@00:00:02"}},
		{`{field: data.v, per: 1s, above: 5, min_interval: 500ms}`, []string{"jump@00:00:02"}},
	} {
		rules := "rules:\n  - name: j\n    rate: " + c.spec + "\n    emit: {type: jump}\n"
		if got := replayYAML(t, rules, input, 0); !slices.Equal(got, c.want) {
			t.Errorf("rate %s: got %v, want %v", c.spec, got, c.want)
		}
	}
}
