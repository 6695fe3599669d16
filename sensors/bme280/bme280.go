// Package bme280 reads Bosch BME280 (temperature, pressure, humidity) and
// BMP280 (temperature, pressure) environment sensors over I²C, through
// periph's bmxx80 driver.
//
// Like every driver under sensors/, it borrows its bus: the composition
// root opens it (i2creg.Open) and closes it after the device is halted.
//
//	bus, _ := i2creg.Open("1")              // the composition root's job
//	dev, err := bme280.NewI2C(bus, 0x76, &bme280.Opts{Chip: bme280.BME280,
//		Temperature: bmxx80.O1x, Pressure: bmxx80.O1x, Humidity: bmxx80.O1x})
//	var e physic.Env
//	err = dev.Sense(&e)
//
// With Opts.Standby and Opts.Filter both set, the chip runs in normal mode,
// measuring on its own every standby period and filtering the results; Sense
// then only reads the latest values. Otherwise each Sense triggers one
// forced measurement, the datasheet's recommendation for weather
// monitoring.
//
// Datasheets:
// https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf
// https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp280-ds001.pdf
package bme280

import (
	"fmt"
	"strings"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// Chip is the chip a caller expects at the address.
type Chip int

// The chips this package reads.
const (
	BME280 Chip = iota // temperature, pressure and humidity
	BMP280             // temperature and pressure
)

func (c Chip) String() string {
	if c == BMP280 {
		return "BMP280"
	}
	return "BME280"
}

// Opts configures a device. The zero Oversampling is Off; temperature must
// be measured (at least bmxx80.O1x), since pressure and humidity are
// compensated with it.
type Opts struct {
	Chip                            Chip
	Temperature, Pressure, Humidity bmxx80.Oversampling
	Filter                          bmxx80.Filter // IIR filter, used in normal mode only
	Standby                         time.Duration // with Filter: normal mode; the chip picks the nearest period not above it
}

// Dev is one BME280 or BMP280.
type Dev struct {
	dev      *bmxx80.Dev
	chip     string
	humidity bool
}

// NewI2C finds the chip at addr (0x76 or 0x77, set by the SDO pin) on bus
// and configures it. A BMP280 where a BME280 was expected is an error, so
// that a mislabelled breakout board does not silently lose humidity; a
// BME280 where a BMP280 was expected is read without humidity.
func NewI2C(bus i2c.Bus, addr uint16, o *Opts) (*Dev, error) {
	opts := bmxx80.Opts{Temperature: o.Temperature, Pressure: o.Pressure, Humidity: o.Humidity,
		Filter: o.Filter, Standby: o.Standby}
	if o.Chip == BMP280 {
		opts.Humidity = bmxx80.Off
	}
	d, err := bmxx80.NewI2C(bus, addr, &opts)
	if err != nil {
		return nil, fmt.Errorf("bme280: at %#x on %s: %w", addr, bus, err)
	}
	name, _, _ := strings.Cut(d.String(), "{")
	dev := &Dev{dev: d, chip: name, humidity: name == "BME280" && opts.Humidity != bmxx80.Off}
	switch {
	case name == "BMP180":
		return nil, fmt.Errorf("bme280: at %#x on %s: found a BMP180, which is not supported", addr, bus)
	case o.Chip == BME280 && name != "BME280":
		return nil, fmt.Errorf("bme280: at %#x on %s: found a %s, which measures no humidity; use driver bmp280", addr, bus, name)
	}
	return dev, nil
}

// Sense reads temperature and pressure, and humidity on a BME280 (left
// untouched on a BMP280).
func (d *Dev) Sense(e *physic.Env) error {
	if err := d.dev.Sense(e); err != nil {
		return fmt.Errorf("bme280: %w", err)
	}
	return nil
}

// Humidity reports whether Sense measures humidity.
func (d *Dev) Humidity() bool { return d.humidity }

// Halt stops continuous sensing, if any. The bus stays open: it is the
// caller's.
func (d *Dev) Halt() error { return d.dev.Halt() }

func (d *Dev) String() string { return d.dev.String() }

// ParseOversampling reads "off", "1x", "2x", "4x", "8x" or "16x".
func ParseOversampling(s string) (bmxx80.Oversampling, error) {
	for o := bmxx80.Off; o <= bmxx80.O16x; o++ {
		if strings.EqualFold(s, o.String()) {
			return o, nil
		}
	}
	return 0, fmt.Errorf("bme280: oversampling %q must be off, 1x, 2x, 4x, 8x or 16x", s)
}

// ParseFilter reads an IIR filter coefficient: 0 (off), 2, 4, 8 or 16.
func ParseFilter(n int) (bmxx80.Filter, error) {
	switch n {
	case 0:
		return bmxx80.NoFilter, nil
	case 2:
		return bmxx80.F2, nil
	case 4:
		return bmxx80.F4, nil
	case 8:
		return bmxx80.F8, nil
	case 16:
		return bmxx80.F16, nil
	}
	return 0, fmt.Errorf("bme280: filter %d must be 0 (off), 2, 4, 8 or 16", n)
}
