package gps

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Sentences as u-blox (NEO-M8, NMEA 4.10, GN talker) and MediaTek (MT3339,
// GP talker) receivers send them, with their checksums.
const (
	ublox = "$GNTXT,01,01,02,u-blox AG - www.u-blox.com*4E\r\n" +
		"$GNRMC,104530.00,A,5230.12345,N,01323.45678,E,12.345,87.65,140524,,,A,V*0C\r\n" +
		"$GNVTG,87.65,T,,M,12.345,N,22.863,K,A*13\r\n" +
		"$GNGGA,104530.00,5230.12345,N,01323.45678,E,1,12,0.78,35.4,M,44.8,M,,*79\r\n" +
		"$GNGSA,A,3,05,13,15,18,20,23,24,,,,,,1.35,0.78,1.10,1*06\r\n" +
		"$GPGSV,3,1,11,05,34,296,38,13,56,232,41,15,21,046,33,18,62,084,44,1*61\r\n" +
		"$GNGLL,5230.12345,N,01323.45678,E,104530.00,A,A*7A\r\n" +
		"$PUBX,00,104530.00,5230.12345,N,01323.45678,E,80.123,G3,2.1,2.0,22.863,87.65,0.000,,0.78,1.10,0.90,12,0,0*60\r\n"
	mediatek = "$PMTK001,314,3*36\r\n" +
		"$GPGGA,064951.000,2307.1256,N,12016.4438,E,1,8,0.95,39.9,M,17.8,M,,*63\r\n" +
		"$GPGSA,A,3,29,21,26,15,18,09,06,10,,,,,2.32,0.95,2.11*00\r\n" +
		"$GPGSV,3,1,09,29,36,029,42,21,46,314,43,26,44,020,43,15,21,321,39*7D\r\n" +
		"$GPRMC,064951.000,A,2307.1256,N,12016.4438,E,0.03,165.48,260406,3.05,W,A*2C\r\n" +
		"$GPVTG,165.48,T,,M,0.03,N,0.06,K,A*36\r\n" +
		"$PGTOP,11,3*6F\r\n"
	coldStart = "$GPGGA,000008.800,,,,,0,0,,,M,,M,,*48\r\n" +
		"$GPRMC,000008.800,V,,,,,0.00,0.00,060180,,,N*42\r\n"
	southWest = "$GPGGA,123519.00,4807.038,S,01131.000,W,2,07,1.2,-12.5,M,46.9,M,3.2,0120*57\n" +
		"$GPRMC,123519.00,A,4807.038,S,01131.000,W,0.0,,230394,003.1,W,D*01\n"
	// noise is what a port carries besides sentences: a cut line, bad and
	// missing checksums, binary, a run-on line, blank lines.
	noise = "4530.00,A,5230.12345,N*7A\r\n" +
		"$GNGGA,104530.00,5230.12345,N,01323.45678,E,1,12,0.78,35.4,M,44.8,M,,*7A\r\n" +
		"$GNGGA,104530.00,5230.12345,N,01323.45678,E,1,12,0.78,35.4,M,44.8,M,,\r\n" +
		"\xb5\x62\x01\x07\x5c\x00\xff\xfe\r\n" +
		"\r\n\n"
)

func now() time.Time { return time.Date(2024, 5, 14, 10, 45, 31, 0, time.UTC) }

// fixes reads every fix in input.
func fixes(t *testing.T, r io.Reader) ([]Fix, *Counts) {
	t.Helper()
	rcv := New(r, Opts{Now: now})
	var out []Fix
	for {
		f, err := rcv.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out, rcv.Counts()
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestReceivers(t *testing.T) {
	for _, tc := range []struct {
		name              string
		input             string
		want              Fix
		unsupported, junk uint64
	}{
		{"u-blox", ublox, Fix{Valid: true, Lat: 52.5020575, Lon: 13.390946333, Altitude: 35.4,
			Speed: 12.345 * knot, Course: 87.65, Satellites: 12, HDOP: 0.78,
			Time: time.Date(2024, 5, 14, 10, 45, 30, 0, time.UTC)}, 1, 0},
		{"MediaTek", mediatek, Fix{Valid: true, Lat: 23.11876, Lon: 120.274063333, Altitude: 39.9,
			Speed: 0.03 * knot, Course: 165.48, Satellites: 8, HDOP: 0.95,
			Time: time.Date(2006, 4, 26, 6, 49, 51, 0, time.UTC)}, 1, 0},
		{"cold start", coldStart, Fix{}, 0, 0},
		{"south west, DGPS, below sea level", southWest, Fix{Valid: true, Lat: -48.1173, Lon: -11.516666667,
			Altitude: -12.5, Satellites: 7, HDOP: 1.2, Time: time.Date(2094, 3, 23, 12, 35, 19, 0, time.UTC)}, 0, 0},
		{"noise first", noise + ublox, Fix{Valid: true, Lat: 52.5020575, Lon: 13.390946333, Altitude: 35.4,
			Speed: 12.345 * knot, Course: 87.65, Satellites: 12, HDOP: 0.78,
			Time: time.Date(2024, 5, 14, 10, 45, 30, 0, time.UTC)}, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, c := fixes(t, strings.NewReader(tc.input))
			if len(got) != 1 {
				t.Fatalf("%d fixes, want 1: %+v", len(got), got)
			}
			f, w := got[0], tc.want
			if f.Valid != w.Valid || !near(f.Lat, w.Lat) || !near(f.Lon, w.Lon) || !near(f.Altitude, w.Altitude) ||
				!near(f.Speed, w.Speed) || !near(f.Course, w.Course) || f.Satellites != w.Satellites ||
				!near(f.HDOP, w.HDOP) || !f.Time.Equal(w.Time) {
				t.Errorf("fix\n %+v\nwant\n %+v", f, w)
			}
			if c.Unsupported.Load() != tc.unsupported || c.Garbage.Load()+c.Checksum.Load() != tc.junk {
				t.Errorf("unsupported %d, garbage %d, checksum %d", c.Unsupported.Load(), c.Garbage.Load(), c.Checksum.Load())
			}
		})
	}
}

// Bad lines are sorted by what is wrong with them, and a line far longer
// than NMEA allows is dropped without holding it.
func TestSkippedLines(t *testing.T) {
	long := "$GPGGA," + strings.Repeat("9", 10*MaxLine) + "*00\r\n"
	got, c := fixes(t, strings.NewReader(noise+long+mediatek))
	if len(got) != 1 || !got[0].Valid {
		t.Fatalf("fixes %+v", got)
	}
	if c.Checksum.Load() != 2 || c.Garbage.Load() != 3 || c.Unsupported.Load() != 1 || c.Sentences.Load() != 6 {
		t.Errorf("checksum %d, garbage %d, unsupported %d, sentences %d", c.Checksum.Load(), c.Garbage.Load(),
			c.Unsupported.Load(), c.Sentences.Load())
	}
}

// A fix never mixes epochs: a GGA whose RMC never came is dropped.
func TestEpochsDoNotMix(t *testing.T) {
	orphan := "$GPGGA,064950.000,0000.0000,N,00000.0000,E,1,3,9.99,0.0,M,0.0,M,,*" + checksum("GPGGA,064950.000,0000.0000,N,00000.0000,E,1,3,9.99,0.0,M,0.0,M,,") + "\r\n"
	got, _ := fixes(t, strings.NewReader(orphan+mediatek))
	if len(got) != 1 || got[0].Satellites != 8 || near(got[0].Lat, 0) {
		t.Errorf("fixes %+v", got)
	}
}

// However the bytes are split into reads, the same fixes come out.
func TestChunking(t *testing.T) {
	input := noise + ublox + coldStart + mediatek + southWest
	whole, _ := fixes(t, strings.NewReader(input))
	bytewise, _ := fixes(t, iotest.OneByteReader(strings.NewReader(input)))
	if len(whole) != 4 || len(bytewise) != len(whole) {
		t.Fatalf("%d fixes whole, %d byte by byte", len(whole), len(bytewise))
	}
	for i := range whole {
		if whole[i] != bytewise[i] {
			t.Errorf("fix %d: %+v vs %+v", i, whole[i], bytewise[i])
		}
	}
}

// quiet is a port with a read timeout and nothing on the line; each read
// that times out moves the test clock.
type quiet struct{ clock *time.Time }

func (q quiet) Read([]byte) (int, error) { *q.clock = q.clock.Add(time.Second); return 0, nil }

func TestSilence(t *testing.T) {
	clock := now()
	rcv := New(quiet{&clock}, Opts{Silence: 5 * time.Second, Now: func() time.Time { return clock }})
	_, err := rcv.Next(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no data from the receiver for 5s") {
		t.Errorf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(quiet{&clock}, Opts{}).Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// After a resync the cut line that follows is dropped without counting it.
func TestResync(t *testing.T) {
	r := &bytes.Buffer{}
	rcv := New(r, Opts{Now: now})
	r.WriteString("$GPGGA,0649")
	rcv.Resync()
	r.WriteString("51.000,2307.1256,N*00\r\n" + mediatek)
	f, err := rcv.Next(context.Background())
	if err != nil || !f.Valid || rcv.Counts().Garbage.Load()+rcv.Counts().Checksum.Load() != 0 {
		t.Errorf("%+v %v, counts %+v", f, err, rcv.Counts())
	}
}

func checksum(body string) string {
	var x byte
	for i := 0; i < len(body); i++ {
		x ^= body[i]
	}
	return strings.ToUpper(string("0123456789abcdef"[x>>4]) + string("0123456789abcdef"[x&15]))
}

// repeat is an endless reader of the same bytes.
type repeat struct {
	data []byte
	off  int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkReceiver is the cost of one fix from a u-blox receiver's epoch
// of eight sentences, GSV and proprietary ones included.
func BenchmarkReceiver(b *testing.B) {
	rcv := New(&repeat{data: []byte(ublox)}, Opts{Now: now})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rcv.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
