// Package sim holds simulated sensor sources, so that a laptop runs the
// same config as a Pi with `simulated: true`. Each source stands in for the
// hardware below the driver, not for the driver, so readings take the same
// path as real ones:
//
//   - Env is an environment chip (Sense and Halt, like a bme280.Dev):
//     base values with drift, noise and excursions.
//   - Tags is an RFID reader (ReadUID and Close, like an mfrc522.Reader):
//     tags appear in its field on a schedule.
//   - NMEA is a GNSS receiver's serial line: real NMEA 0183 sentences for a
//     vehicle driving a track, read by the same gps.Receiver as a real port.
//
// Every source takes its time from an injected clock, so tests step through
// hours of simulation without waiting.
package sim

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
)

// Fields an environment source measures, named as in the canonical
// payload.
const (
	Temperature = "temperature" // °C
	Pressure    = "pressure"    // hPa
	Humidity    = "humidity"    // %RH
)

// Values is one environment reading.
type Values struct {
	Temperature, Pressure, Humidity float64 // °C, hPa, %RH
}

func (v *Values) field(name string) *float64 {
	switch name {
	case Temperature:
		return &v.Temperature
	case Pressure:
		return &v.Pressure
	case Humidity:
		return &v.Humidity
	}
	return nil
}

// Excursion adds Delta to Field for For, starting After the source started
// (or was injected), and again every Every if Every is set.
type Excursion struct {
	Field  string
	After  time.Duration
	For    time.Duration
	Every  time.Duration
	Delta  float64
	origin time.Time // when After counts from
}

// active reports whether the excursion is on at t.
func (x *Excursion) active(t time.Time) bool {
	d := t.Sub(x.origin) - x.After
	if d < 0 {
		return false
	}
	if x.Every > 0 {
		d %= x.Every
	}
	return d < x.For
}

// EnvOpts configures an Env.
type EnvOpts struct {
	Base       Values
	Drift      Values // change per hour, added linearly
	Noise      Values // standard deviation of the Gaussian noise on each reading
	Excursions []Excursion
	Humidity   bool // whether Sense reports humidity (false: like a BMP280)
	Seed       uint64
	Now        func() time.Time
}

// Env is a simulated environment chip.
type Env struct {
	opts  EnvOpts
	start time.Time

	mu   sync.Mutex
	rand *rand.Rand
	xs   []Excursion
}

// NewEnv starts a simulated chip at o.Now().
func NewEnv(o EnvOpts) *Env {
	e := &Env{opts: o, start: o.Now(), rand: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	for _, x := range o.Excursions {
		e.inject(x, e.start)
	}
	return e
}

// Inject adds an excursion whose After counts from now.
func (e *Env) Inject(x Excursion) {
	e.inject(x, e.opts.Now())
}

func (e *Env) inject(x Excursion, origin time.Time) {
	x.origin = origin
	e.mu.Lock()
	defer e.mu.Unlock()
	e.xs = append(e.xs, x)
}

// Values returns the reading at t: base, drift, excursions and noise.
func (e *Env) Values(t time.Time) Values {
	hours := t.Sub(e.start).Hours()
	v := e.opts.Base
	v.Temperature += e.opts.Drift.Temperature * hours
	v.Pressure += e.opts.Drift.Pressure * hours
	v.Humidity += e.opts.Drift.Humidity * hours
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.xs {
		if x := &e.xs[i]; x.active(t) {
			if f := v.field(x.Field); f != nil {
				*f += x.Delta
			}
		}
	}
	v.Temperature += e.rand.NormFloat64() * e.opts.Noise.Temperature
	v.Pressure += e.rand.NormFloat64() * e.opts.Noise.Pressure
	v.Humidity += e.rand.NormFloat64() * e.opts.Noise.Humidity
	v.Humidity = min(max(v.Humidity, 0), 100)
	v.Pressure = max(v.Pressure, 0)
	return v
}

// Sense fills e with the values now, in periph's units, as a chip would.
func (e *Env) Sense(env *physic.Env) error {
	v := e.Values(e.opts.Now())
	env.Temperature = physic.ZeroCelsius + physic.Temperature(v.Temperature*float64(physic.Celsius))
	env.Pressure = physic.Pressure(v.Pressure * float64(100*physic.Pascal))
	if e.opts.Humidity {
		env.Humidity = physic.RelativeHumidity(v.Humidity * float64(physic.PercentRH))
	}
	return nil
}

// Humidity reports whether Sense measures humidity.
func (e *Env) Humidity() bool { return e.opts.Humidity }

// Halt does nothing: there is no hardware to stop.
func (e *Env) Halt() error { return nil }

func (e *Env) String() string { return "sim-env" }

// CheckField reports whether name is a field an environment source has.
func CheckField(name string) error {
	switch name {
	case Temperature, Pressure, Humidity:
		return nil
	}
	return fmt.Errorf("sim: %q is not temperature, pressure or humidity", name)
}
