package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"
)

// Track is a route a simulated vehicle drives, from a GeoJSON LineString.
// A closed track (its last point within a metre of its first) is driven
// round and round; an open one there and back.
type Track struct {
	pts    []orb.Point // lon, lat
	alt    []float64   // metres; 0 where the file gives none
	cum    []float64   // distance from the first point, metres
	closed bool
}

// LoadTrack reads a GeoJSON file holding a LineString: a bare geometry, a
// Feature, or a FeatureCollection whose first LineString is taken.
// Positions are [longitude, latitude] or [longitude, latitude, altitude].
func LoadTrack(path string) (*Track, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: track: %w", err)
	}
	t, err := ParseTrack(data)
	if err != nil {
		return nil, fmt.Errorf("sim: track %s: %w", path, err)
	}
	return t, nil
}

// geoJSON is the part of a GeoJSON object a track needs.
type geoJSON struct {
	Type        string          `json:"type"`
	Coordinates json.RawMessage `json:"coordinates"` // decoded for a LineString only
	Geometry    *geoJSON        `json:"geometry"`
	Features    []geoJSON       `json:"features"`
}

// ParseTrack reads a track from GeoJSON text.
func ParseTrack(data []byte) (*Track, error) {
	var g geoJSON
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("not GeoJSON: %w", err)
	}
	raw, ok := lineString(&g)
	if !ok {
		return nil, errors.New("no LineString in it")
	}
	var coords [][]float64
	if err := json.Unmarshal(raw, &coords); err != nil {
		return nil, fmt.Errorf("LineString coordinates: %w", err)
	}
	return newTrack(coords)
}

// lineString finds the first LineString's coordinates in g.
func lineString(g *geoJSON) (json.RawMessage, bool) {
	switch g.Type {
	case "LineString":
		return g.Coordinates, true
	case "Feature":
		if g.Geometry != nil {
			return lineString(g.Geometry)
		}
	case "FeatureCollection":
		for i := range g.Features {
			if c, ok := lineString(&g.Features[i]); ok {
				return c, true
			}
		}
	}
	return nil, false
}

func newTrack(coords [][]float64) (*Track, error) {
	if len(coords) < 2 {
		return nil, errors.New("a LineString needs at least two positions")
	}
	t := &Track{}
	for i, c := range coords {
		if len(c) < 2 || !finite(c...) || math.Abs(c[0]) > 180 || math.Abs(c[1]) > 90 {
			return nil, fmt.Errorf("position %d: want [longitude, latitude] within ±180, ±90", i)
		}
		p := orb.Point{c[0], c[1]}
		d := 0.0
		if i > 0 {
			d = t.cum[i-1] + geo.DistanceHaversine(t.pts[i-1], p)
		}
		alt := 0.0
		if len(c) > 2 {
			alt = c[2]
		}
		t.pts, t.alt, t.cum = append(t.pts, p), append(t.alt, alt), append(t.cum, d)
	}
	if t.Length() < 1 {
		return nil, errors.New("the track is shorter than a metre")
	}
	t.closed = geo.DistanceHaversine(t.pts[0], t.pts[len(t.pts)-1]) < 1
	return t, nil
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Length is the track's length in metres.
func (t *Track) Length() float64 { return t.cum[len(t.cum)-1] }

// Position is a point on a track.
type Position struct {
	Lat, Lon float64 // degrees
	Altitude float64 // metres
	Course   float64 // degrees from true north, the direction of travel
}

// At returns where a vehicle is after driving d metres from the start.
func (t *Track) At(d float64) Position {
	l := t.Length()
	if t.closed {
		return t.along(math.Mod(math.Max(d, 0), l), false)
	}
	m := math.Mod(math.Max(d, 0), 2*l)
	if m <= l {
		return t.along(m, false)
	}
	return t.along(2*l-m, true)
}

// along interpolates the position s metres from the first point.
func (t *Track) along(s float64, back bool) Position {
	i := sort.SearchFloat64s(t.cum, s) // first point at or past s
	i = min(max(i, 1), len(t.pts)-1)
	a, b := t.pts[i-1], t.pts[i]
	seg := t.cum[i] - t.cum[i-1]
	f := 0.0
	if seg > 0 {
		f = (s - t.cum[i-1]) / seg
	}
	course := geo.Bearing(a, b)
	if back {
		course += 180
	}
	return Position{
		Lon:      a[0] + f*(b[0]-a[0]),
		Lat:      a[1] + f*(b[1]-a[1]),
		Altitude: t.alt[i-1] + f*(t.alt[i]-t.alt[i-1]),
		Course:   math.Mod(course+360, 360),
	}
}
