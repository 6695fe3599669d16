package sim

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"

	"github.com/flowgate/flowgate/sensors/gps"
)

var t0 = time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)

// clock is a settable time for the sources.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestEnvDriftAndExcursions(t *testing.T) {
	c := &clock{t0}
	e := NewEnv(EnvOpts{Base: Values{Temperature: 4, Pressure: 1000, Humidity: 50},
		Drift: Values{Temperature: 1}, Humidity: true, Now: c.now,
		Excursions: []Excursion{{Field: Temperature, After: 10 * time.Minute, For: 5 * time.Minute, Every: time.Hour, Delta: 8}}})
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 4}, {9 * time.Minute, 4.15}, {12 * time.Minute, 12.2}, {15 * time.Minute, 4.25},
		{72 * time.Minute, 13.2}, {2 * time.Hour, 6},
	} {
		if got := e.Values(t0.Add(tc.at)).Temperature; math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("at %s: %v °C, want %v", tc.at, got, tc.want)
		}
	}
	// An injected excursion counts from when it was injected.
	c.t = t0.Add(3 * time.Hour)
	e.Inject(Excursion{Field: Humidity, After: time.Minute, For: time.Minute, Delta: 60})
	if h := e.Values(c.t.Add(90 * time.Second)).Humidity; h != 100 {
		t.Errorf("humidity %v, want clamped at 100", h)
	}
	if h := e.Values(c.t.Add(3 * time.Minute)).Humidity; h != 50 {
		t.Errorf("humidity %v after the excursion", h)
	}
}

// The same seed gives the same noise, of about the asked spread; Sense
// speaks periph's units.
func TestEnvNoiseAndSense(t *testing.T) {
	c := &clock{t0}
	opts := EnvOpts{Base: Values{Temperature: 20, Pressure: 1013.25}, Noise: Values{Temperature: 0.5}, Seed: 7, Now: c.now}
	a, b := NewEnv(opts), NewEnv(opts)
	var sum, sq float64
	const n = 2000
	for range n {
		x, y := a.Values(t0), b.Values(t0)
		if x != y {
			t.Fatalf("same seed, different values: %+v %+v", x, y)
		}
		sum += x.Temperature
		sq += (x.Temperature - 20) * (x.Temperature - 20)
	}
	if mean, sd := sum/n, math.Sqrt(sq/n); math.Abs(mean-20) > 0.05 || math.Abs(sd-0.5) > 0.05 {
		t.Errorf("mean %v, sd %v", mean, sd)
	}
	quiet := NewEnv(EnvOpts{Base: Values{Temperature: 20, Pressure: 1013.25, Humidity: 40}, Now: c.now})
	var env physic.Env
	if err := quiet.Sense(&env); err != nil {
		t.Fatal(err)
	}
	if env.Temperature != physic.ZeroCelsius+20*physic.Celsius || env.Pressure != 101325*physic.Pascal || env.Humidity != 0 {
		t.Errorf("sensed %v", env)
	}
}

func TestTags(t *testing.T) {
	c := &clock{t0}
	tags := NewTags([]Tag{
		{UID: []byte{1, 2, 3, 4}, After: 10 * time.Second, For: 2 * time.Second, Every: time.Minute},
		{UID: []byte{9, 9, 9, 9}, After: 30 * time.Second, For: 5 * time.Second},
	}, c.now)
	for _, tc := range []struct {
		at   time.Duration
		want byte // first byte of the UID; 0 for none
	}{{0, 0}, {10 * time.Second, 1}, {11 * time.Second, 1}, {12 * time.Second, 0}, {31 * time.Second, 9},
		{71 * time.Second, 1}, {91 * time.Second, 0},
	} {
		c.t = t0.Add(tc.at)
		uid, err := tags.ReadUID()
		if err != nil || tc.want == 0 && uid != nil || tc.want != 0 && (uid == nil || uid[0] != tc.want) {
			t.Errorf("at %s: % X, %v", tc.at, uid, err)
		}
	}
	for s, ok := range map[string]bool{"04A1B2C3": true, "04:5a:21:8a:3c:62:80": true, "0102": false, "zz": false} {
		if _, err := ParseUID(s); (err == nil) != ok {
			t.Errorf("ParseUID(%q): %v", s, err)
		}
	}
}

const line = `{"type":"LineString","coordinates":[[10,50,100],[10,50.001,200],[10.001,50.001]]}`

func TestTrack(t *testing.T) {
	for _, doc := range []string{line, `{"type":"Feature","geometry":` + line + `}`,
		`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}},{"type":"Feature","geometry":` + line + `}]}`} {
		tr, err := ParseTrack([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		leg := tr.cum[1] // about 111 m due north
		if p := tr.At(leg / 2); math.Abs(p.Lat-50.0005) > 1e-9 || p.Altitude != 150 || math.Abs(p.Course) > 1e-6 {
			t.Errorf("half way up: %+v", p)
		}
		// An open track is driven back: just past its end, heading west.
		if p := tr.At(tr.Length() + 1); math.Abs(p.Course-270) > 0.1 || p.Lat != 50.001 {
			t.Errorf("on the way back: %+v", p)
		}
		if p := tr.At(2 * tr.Length()); p.Lat != 50 || p.Lon != 10 {
			t.Errorf("back at the start: %+v", p)
		}
	}
	for _, bad := range []string{`[]`, `{"type":"Point","coordinates":[1,2]}`, `{"type":"LineString","coordinates":[[1,2]]}`,
		`{"type":"LineString","coordinates":[[1,2],[1,2]]}`, `{"type":"LineString","coordinates":[[1,2],[1,95]]}`} {
		if _, err := ParseTrack([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// The simulated receiver's sentences, read by the real gps.Receiver, give
// back the track's positions, speed, course and the clock's time.
func TestNMEAThroughReceiver(t *testing.T) {
	tr, err := LoadTrack("../../configs/tracks/depot-loop.geojson")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.closed || tr.Length() < 5000 {
		t.Fatalf("demo track: closed %v, %v m", tr.closed, tr.Length())
	}
	c := &clock{t0}
	src := NewNMEA(NMEAOpts{Track: tr, Speed: 12.5, Now: c.now})
	rcv := gps.New(src, gps.Opts{Now: c.now})
	for _, at := range []time.Duration{0, 90 * time.Second, 10 * time.Minute, time.Hour} {
		c.t = t0.Add(at)
		fix, err := rcv.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := tr.At(12.5 * at.Seconds())
		if !fix.Valid || math.Abs(fix.Lat-want.Lat) > 1e-6 || math.Abs(fix.Lon-want.Lon) > 1e-6 ||
			math.Abs(fix.Speed-12.5) > 1e-3 || math.Abs(fix.Course-want.Course) > 0.01 ||
			math.Abs(fix.Altitude-want.Altitude) > 0.05 || !fix.Time.Equal(c.t) || fix.Satellites != 9 {
			t.Errorf("at %s: %+v, want %+v", at, fix, want)
		}
	}
	if n := rcv.Counts().Sentences.Load(); n != 12 {
		t.Errorf("%d sentences parsed, want 12", n)
	}
}

func TestSentence(t *testing.T) {
	got := string(Sentence(nil, "PMTK001,314,3"))
	if got != "$PMTK001,314,3*36\r\n" {
		t.Errorf("got %q", got)
	}
	lat, ns := coord(-48.1173, 2, "N", "S")
	lon, ew := coord(179.99999999, 3, "E", "W")
	if lat+ns != "4807.03800S" || !strings.HasPrefix(lon, "180") || ew != "E" {
		t.Errorf("coords %s%s %s%s", lat, ns, lon, ew)
	}
}
