package sim

import (
	"math"
	"testing"
)

// FuzzParseTrack reads any track file: nothing panics, and a track that
// is accepted gives real positions everywhere along it.
func FuzzParseTrack(f *testing.F) {
	f.Add([]byte(line), 10.0)
	f.Add([]byte(`{"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,0],[0,0.0001],[0,0]]}}`), -5.0)
	f.Fuzz(func(t *testing.T, data []byte, d float64) {
		tr, err := ParseTrack(data)
		if err != nil {
			return
		}
		for _, at := range []float64{0, d, tr.Length() / 3, tr.Length(), 2.5 * tr.Length()} {
			p := tr.At(at)
			if !finite(p.Lat, p.Lon, p.Altitude, p.Course) || math.Abs(p.Lat) > 90 || math.Abs(p.Lon) > 180 ||
				p.Course < 0 || p.Course >= 360 {
				t.Errorf("At(%v) = %+v", at, p)
			}
		}
	})
}
