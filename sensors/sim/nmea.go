package sim

import (
	"fmt"
	"math"
	"time"
)

// NMEAOpts configures a simulated receiver.
type NMEAOpts struct {
	Track      *Track
	Speed      float64 // metres per second along the track
	Satellites int     // reported in use; default 9
	HDOP       float64 // default 0.9
	Now        func() time.Time
}

// NMEA is a simulated GNSS receiver's serial line: an io.Reader of NMEA
// 0183 sentences. Each time its buffer runs dry it produces the epoch of
// the current time (RMC, VTG, GGA, in a u-blox receiver's order, with a
// GN talker and correct checksums), so the reader's pace is the receiver's
// rate and a pause never replays stale fixes.
type NMEA struct {
	opts    NMEAOpts
	start   time.Time
	pending []byte
}

// NewNMEA starts a simulated receiver at the track's first point at now().
func NewNMEA(o NMEAOpts) *NMEA {
	if o.Satellites == 0 {
		o.Satellites = 9
	}
	if o.HDOP == 0 {
		o.HDOP = 0.9
	}
	return &NMEA{opts: o, start: o.Now()}
}

// Read implements io.Reader. It never fails and never ends.
func (n *NMEA) Read(p []byte) (int, error) {
	if len(n.pending) == 0 {
		n.pending = n.Epoch(n.opts.Now())
	}
	k := copy(p, n.pending)
	n.pending = n.pending[k:]
	return k, nil
}

// Epoch returns the sentences of the fix at t.
func (n *NMEA) Epoch(t time.Time) []byte {
	t = t.UTC().Truncate(10 * time.Millisecond)
	pos := n.opts.Track.At(n.opts.Speed * t.Sub(n.start).Seconds())
	hms := fmt.Sprintf("%02d%02d%02d.%02d", t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7)
	lat, ns := coord(pos.Lat, 2, "N", "S")
	lon, ew := coord(pos.Lon, 3, "E", "W")
	knots := n.opts.Speed / (1852.0 / 3600)
	var b []byte
	b = Sentence(b, fmt.Sprintf("GNRMC,%s,A,%s,%s,%s,%s,%.3f,%.2f,%s,,,A", hms, lat, ns, lon, ew,
		knots, pos.Course, t.Format("020106")))
	b = Sentence(b, fmt.Sprintf("GNVTG,%.2f,T,,M,%.3f,N,%.3f,K,A", pos.Course, knots, n.opts.Speed*3.6))
	b = Sentence(b, fmt.Sprintf("GNGGA,%s,%s,%s,%s,%s,1,%02d,%.2f,%.1f,M,47.0,M,,", hms, lat, ns, lon, ew,
		n.opts.Satellites, n.opts.HDOP, pos.Altitude))
	return b
}

// coord formats degrees as NMEA's d…dmm.mmmmm with deg integer digits.
func coord(v float64, deg int, pos, neg string) (string, string) {
	hemi := pos
	if v < 0 {
		hemi, v = neg, -v
	}
	minutes := math.Round(v*60*1e5) / 1e5 // round once, so 59.999999 never prints as 60
	d := math.Floor(minutes / 60)
	return fmt.Sprintf("%0*d%08.5f", deg, int(d), minutes-d*60), hemi
}

// Sentence appends "$body*CS\r\n" to b, CS being body's NMEA checksum.
func Sentence(b []byte, body string) []byte {
	var sum byte
	for i := 0; i < len(body); i++ {
		sum ^= body[i]
	}
	return fmt.Appendf(b, "$%s*%02X\r\n", body, sum)
}
