// Package gps reads position fixes from a GNSS receiver that speaks NMEA
// 0183 (u-blox, MediaTek, SiRF and most others), parsing sentences with
// github.com/adrianmo/go-nmea.
//
// A Receiver borrows an io.Reader: on a Pi, a serial port the composition
// root opened with go.bug.st/serial (periph v3 has no working UART); in
// tests and simulations, anything that yields bytes. It reads lines of at
// most MaxLine bytes, so no input can grow its memory, and assembles one Fix
// per epoch from the epoch's GGA (position, altitude, satellites, HDOP) and
// RMC (validity, speed, course, date) sentences, which every common
// receiver sends by default. Lines that are not NMEA, have a bad checksum or
// cannot be parsed are counted and skipped, never fatal.
//
//	port, _ := serial.Open("/dev/serial0", &serial.Mode{BaudRate: 9600})
//	rcv := gps.New(port, gps.Opts{Silence: 5 * time.Second})
//	fix, err := rcv.Next(ctx)
//
// NMEA 0183: https://gpsd.gitlab.io/gpsd/NMEA.html
package gps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/adrianmo/go-nmea"
)

// Fix is one epoch's solution, in SI units. When Valid is false the
// receiver has no position: only Satellites, HDOP and Time mean anything.
type Fix struct {
	Valid      bool
	Lat, Lon   float64   // degrees, WGS 84; north and east positive
	Altitude   float64   // metres above mean sea level
	Speed      float64   // metres per second over ground
	Course     float64   // degrees from true north
	Satellites int       // satellites used
	HDOP       float64   // horizontal dilution of precision
	Time       time.Time // the receiver's UTC time; zero without a fix
}

// Counts are the lines a receiver skipped, by reason. They may be shared
// by the receivers that follow one another on a port.
type Counts struct {
	Sentences   atomic.Uint64 // NMEA sentences parsed, used or not
	Checksum    atomic.Uint64 // a missing or wrong checksum
	Garbage     atomic.Uint64 // not NMEA, malformed fields, or too long
	Unsupported atomic.Uint64 // NMEA that go-nmea does not know (proprietary $PUBX and such)
}

// MaxLine is the longest line read by default: NMEA allows 82 characters,
// proprietary sentences run longer.
const MaxLine = 256

// knot is a knot in metres per second.
const knot = 1852.0 / 3600

// Opts configures a Receiver.
type Opts struct {
	// Silence fails Next when no byte arrived for this long: the receiver
	// or its wire is gone. 0 waits forever. Needs a reader that returns
	// now and then without data (a serial port with a read timeout).
	Silence time.Duration
	// Now is the clock for Silence and for the century of the receiver's
	// two-digit years; time.Now if nil.
	Now     func() time.Time
	Counts  *Counts // where skipped lines are counted; a private one if nil
	MaxLine int     // default MaxLine
}

// Receiver turns a stream of NMEA sentences into fixes.
type Receiver struct {
	lines   *lineReader
	parser  nmea.SentenceParser
	opts    Opts
	epoch   epoch
	lastGot time.Time
}

// epoch gathers the sentences of one fix, matched by their time of day.
type epoch struct {
	t   nmea.Time
	gga *nmea.GGA
	rmc *nmea.RMC
}

// New returns a Receiver reading r.
func New(r io.Reader, o Opts) *Receiver {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Counts == nil {
		o.Counts = new(Counts)
	}
	if o.MaxLine <= 0 {
		o.MaxLine = MaxLine
	}
	return &Receiver{lines: newLineReader(r, o.MaxLine), opts: o, lastGot: o.Now()}
}

// Next reads until an epoch is complete and returns its fix. It returns the
// reader's error (io.EOF for a finished stream), an error when the receiver
// fell silent, or ctx's error.
func (r *Receiver) Next(ctx context.Context) (Fix, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Fix{}, err
		}
		line, err := r.lines.next()
		switch {
		case errors.Is(err, errNoData):
			if err := r.silent(); err != nil {
				return Fix{}, err
			}
			continue
		case errors.Is(err, errTooLong):
			r.lastGot = r.opts.Now()
			r.opts.Counts.Garbage.Add(1)
			continue
		case err != nil:
			return Fix{}, err
		}
		r.lastGot = r.opts.Now()
		if fix, ok := r.add(line); ok {
			return fix, nil
		}
	}
}

func (r *Receiver) silent() error {
	if r.opts.Silence <= 0 {
		return nil
	}
	if quiet := r.opts.Now().Sub(r.lastGot); quiet >= r.opts.Silence {
		return fmt.Errorf("gps: no data from the receiver for %s", quiet.Round(time.Millisecond))
	}
	return nil
}

// Resync forgets buffered input and the epoch in progress, and skips the
// next line (which may be cut): call it after discarding the port's input
// buffer, to read fresh fixes after a pause.
func (r *Receiver) Resync() {
	r.lines.resync()
	r.epoch = epoch{}
	r.lastGot = r.opts.Now()
}

// Counts returns the receiver's counters.
func (r *Receiver) Counts() *Counts { return r.opts.Counts }

// add parses one line and returns a fix when it completes an epoch.
func (r *Receiver) add(line []byte) (Fix, bool) {
	c := r.opts.Counts
	switch checkSentence(line) {
	case lineGarbage:
		c.Garbage.Add(1)
		return Fix{}, false
	case lineBadChecksum:
		c.Checksum.Add(1)
		return Fix{}, false
	}
	s, err := r.parse(string(line))
	var unsupported *nmea.NotSupportedError
	switch {
	case errors.As(err, &unsupported):
		c.Unsupported.Add(1)
		return Fix{}, false
	case err != nil:
		c.Garbage.Add(1)
		return Fix{}, false
	}
	c.Sentences.Add(1)
	switch m := s.(type) {
	case nmea.GGA:
		return r.merge(m.Time, &m, nil)
	case nmea.RMC:
		return r.merge(m.Time, nil, &m)
	}
	return Fix{}, false
}

// parse is go-nmea's parser, with a panic in it (there has never been
// one; fuzzing looks for it) turned into a parse error: input from a
// device must never take the gateway down.
func (r *Receiver) parse(line string) (s nmea.Sentence, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("gps: parser panic on %q: %v", line, p)
		}
	}()
	return r.parser.Parse(line)
}

// merge adds a GGA or an RMC to the epoch of its time of day and returns
// the fix once the epoch has both. A sentence of another time starts a new
// epoch and drops an incomplete one, so a fix never mixes two epochs.
func (r *Receiver) merge(t nmea.Time, gga *nmea.GGA, rmc *nmea.RMC) (Fix, bool) {
	if r.epoch.t != t {
		r.epoch = epoch{t: t}
	}
	if gga != nil {
		r.epoch.gga = gga
	}
	if rmc != nil {
		r.epoch.rmc = rmc
	}
	if r.epoch.gga == nil || r.epoch.rmc == nil {
		return Fix{}, false
	}
	fix := r.fix(r.epoch.gga, r.epoch.rmc)
	r.epoch = epoch{}
	return fix, true
}

func (r *Receiver) fix(gga *nmea.GGA, rmc *nmea.RMC) Fix {
	f := Fix{
		Valid:      gga.FixQuality != nmea.Invalid && rmc.Validity == nmea.ValidRMC,
		Satellites: int(gga.NumSatellites),
		HDOP:       gga.HDOP,
	}
	if f.Valid {
		f.Lat, f.Lon, f.Altitude = gga.Latitude, gga.Longitude, gga.Altitude
		f.Speed, f.Course = rmc.Speed*knot, rmc.Course
		// Before a fix, receivers report their power-on default date
		// (MediaTek: 1980-01-06), which is not worth passing on.
		f.Time = nmea.DateTime(r.opts.Now().UTC().Year(), rmc.Date, rmc.Time)
	}
	f.Satellites = max(f.Satellites, 0)
	if !finite(f.Lat, f.Lon, f.Altitude, f.Speed, f.Course, f.HDOP) {
		// strconv reads "NaN" and "Inf": such a fix is no fix.
		return Fix{Satellites: f.Satellites, Time: f.Time}
	}
	return f
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
