package gps

import (
	"bytes"
	"context"
	"io"
	"math"
	"testing"
)

// stutter reads at most n bytes at a time, with an empty read (a serial
// port's read timeout) between reads.
type stutter struct {
	data  []byte
	n     int
	empty bool
}

func (s *stutter) Read(p []byte) (int, error) {
	if s.empty = !s.empty; s.empty {
		return 0, nil
	}
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), s.n)], s.data)
	s.data = s.data[k:]
	return k, nil
}

// readAll reads every fix until the input ends.
func readAll(t *testing.T, r io.Reader) ([]Fix, *Counts) {
	rcv := New(r, Opts{Now: now})
	var out []Fix
	for {
		f, err := rcv.Next(context.Background())
		if err == io.EOF {
			return out, rcv.Counts()
		}
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		out = append(out, f)
	}
}

// FuzzReceiver feeds anything to the line reader and the parser: nothing
// panics, the input ends cleanly, the fixes do not depend on how the bytes
// were split into reads, and every fix is physically possible.
func FuzzReceiver(f *testing.F) {
	for _, s := range []string{ublox, mediatek, coldStart, southWest, noise, noise + ublox + mediatek,
		"$GPGGA,1,NaN,N,Inf,E,1,-3,NaN,Inf,M,,M,,*" + checksum("GPGGA,1,NaN,N,Inf,E,1,-3,NaN,Inf,M,,M,,") + "\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole, c := readAll(t, bytes.NewReader(data))
		split, _ := readAll(t, &stutter{data: data, n: int(chunk%64) + 1})
		if len(whole) != len(split) {
			t.Fatalf("%d fixes read whole, %d split", len(whole), len(split))
		}
		lines := uint64(bytes.Count(data, []byte{'\n'}) + 1)
		if n := c.Sentences.Load() + c.Checksum.Load() + c.Garbage.Load() + c.Unsupported.Load(); n > lines {
			t.Errorf("%d lines counted in %d", n, lines)
		}
		for i, fix := range whole {
			if fix != split[i] {
				t.Errorf("fix %d: %+v whole, %+v split", i, fix, split[i])
			}
			checkFix(t, fix)
		}
	})
}

func checkFix(t *testing.T, f Fix) {
	for _, x := range []float64{f.Lat, f.Lon, f.Altitude, f.Speed, f.Course, f.HDOP} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Errorf("not finite: %+v", f)
		}
	}
	if math.Abs(f.Lat) > 90 || math.Abs(f.Lon) > 180 || f.Satellites < 0 {
		t.Errorf("impossible fix %+v", f)
	}
	if !f.Valid && (f.Lat != 0 || f.Lon != 0 || !f.Time.IsZero()) {
		t.Errorf("position without a fix: %+v", f)
	}
}
