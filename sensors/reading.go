package sensors

import (
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is what a sensor measures. It names the payload's shape and is the
// {kind} level of the topic readings are ingested on.
type Kind string

// The kinds of sensor.
const (
	KindEnv  Kind = "env"
	KindGPS  Kind = "gps"
	KindRFID Kind = "rfid"
)

// Reading is one canonical reading. Only the part its Kind names is set.
type Reading struct {
	Kind Kind
	Time time.Time // when the gateway took it
	Env  Env
	Fix  Fix
	Tag  Tag
}

// Env is an environment reading. Every chip measures temperature; not
// every one pressure (an AHT20) or humidity (a BMP280).
type Env struct {
	Temperature float64 // °C
	Pressure    float64 // hPa, when HasPressure
	Humidity    float64 // %RH, when HasHumidity
	HasPressure bool
	HasHumidity bool
}

// Fix is a GNSS fix. Without Valid, only Satellites, HDOP and
// ReceiverTime are meaningful.
type Fix struct {
	Valid        bool
	Lat, Lon     float64   // degrees, WGS 84
	Altitude     float64   // metres above mean sea level
	Speed        float64   // metres per second
	Course       float64   // degrees from true north
	Satellites   int       // in use
	HDOP         float64   // horizontal dilution of precision
	ReceiverTime time.Time // UTC, from the receiver; zero until it knows the date
}

// Tag is an RFID tag read.
type Tag struct {
	UID    []byte
	Reader string // the sensor's name
}

// AppendJSON appends the canonical JSON payload of r to b.
func (r *Reading) AppendJSON(b []byte) []byte {
	switch r.Kind {
	case KindEnv:
		return r.Env.appendJSON(b)
	case KindGPS:
		return r.Fix.appendJSON(b)
	case KindRFID:
		return r.Tag.appendJSON(b)
	}
	return append(b, "{}"...)
}

func (e *Env) appendJSON(b []byte) []byte {
	b = append(b, `{"temperature":`...)
	b = appendFloat(b, e.Temperature, 2)
	if e.HasPressure {
		b = append(b, `,"pressure":`...)
		b = appendFloat(b, e.Pressure, 2)
	}
	if e.HasHumidity {
		b = append(b, `,"humidity":`...)
		b = appendFloat(b, e.Humidity, 2)
	}
	return append(b, '}')
}

func (f *Fix) appendJSON(b []byte) []byte {
	b = append(b, `{"fix":`...)
	b = strconv.AppendBool(b, f.Valid)
	if f.Valid {
		for _, x := range []struct {
			key    string
			v      float64
			places int
		}{{"lat", f.Lat, 7}, {"lon", f.Lon, 7}, {"altitude", f.Altitude, 2},
			{"speed", f.Speed, 3}, {"course", f.Course, 2}} {
			b = append(b, `,"`...)
			b = append(b, x.key...)
			b = append(b, `":`...)
			b = appendFloat(b, x.v, x.places)
		}
	}
	b = append(b, `,"satellites":`...)
	b = strconv.AppendInt(b, int64(f.Satellites), 10)
	b = append(b, `,"hdop":`...)
	b = appendFloat(b, f.HDOP, 2)
	if !f.ReceiverTime.IsZero() {
		b = append(b, `,"receiver_time":"`...)
		b = f.ReceiverTime.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

func (t *Tag) appendJSON(b []byte) []byte {
	b = append(b, `{"tag":"`...)
	b = append(b, strings.ToUpper(hex.EncodeToString(t.UID))...)
	b = append(b, `","reader":`...)
	b = strconv.AppendQuote(b, t.Reader)
	return append(b, '}')
}

// appendFloat appends x rounded to places decimals, shortest form; JSON
// has no NaN or infinity, so those become 0 (drivers never produce them).
func appendFloat(b []byte, x float64, places int) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, '0')
	}
	p := math.Pow10(places)
	return strconv.AppendFloat(b, math.Round(x*p)/p, 'f', -1, 64)
}

// Calibration maps a reading's field to an offset added to it before the
// payload is made: temperature, pressure and humidity for an environment
// sensor (those its chip measures), altitude for GPS.
type Calibration map[string]float64

// calibrationFields returns the fields a driver's readings can be
// calibrated on.
func calibrationFields(driver string) []string {
	d := drivers[driver]
	switch d.kind {
	case KindEnv:
		return d.env.fields()
	case KindGPS:
		return []string{"altitude"}
	}
	return nil
}

// apply adds the offsets to r.
func (c Calibration) apply(r *Reading) {
	if len(c) == 0 {
		return
	}
	switch r.Kind {
	case KindEnv:
		r.Env.Temperature += c["temperature"]
		r.Env.Pressure += c["pressure"]
		r.Env.Humidity = min(max(r.Env.Humidity+c["humidity"], 0), 100)
	case KindGPS:
		if r.Fix.Valid {
			r.Fix.Altitude += c["altitude"]
		}
	}
}
