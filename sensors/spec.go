package sensors

import (
	"fmt"
	"slices"
	"time"
)

// Spec is one configured sensor: the gateway config's sensors entry,
// without the gateway's own concerns (the device it reports as, its
// topic). Keys in Problems are the config's snake_case keys.
type Spec struct {
	Name         string
	Driver       string // a key of the registry: bme280, bmp280, aht20, mfrc522, nmea
	Simulated    bool   // read the driver's simulated source; no hardware is touched
	PollInterval time.Duration
	ReadTimeout  time.Duration // rfid: how long a read waits for a tag; gps: silence before the receiver counts as gone
	Bus          string        // I²C bus (env) or SPI port (rfid), as periph names them: "1", "SPI0.0"
	Address      uint16        // I²C address
	Port         string        // serial port (gps)
	Baud         int
	ResetPin     string // rfid, as gpioreg names them: "GPIO25"
	IRQPin       string
	Calibration  Calibration

	// Environment chips.
	Oversampling map[string]string // temperature, pressure, humidity: off, 1x … 16x
	Filter       int               // IIR coefficient: 0, 2, 4, 8, 16
	Standby      time.Duration     // with Filter: the chip samples on its own (normal mode)
	// RFID readers.
	AntennaGain int // 0 … 7

	Sim Sim
}

// Sim configures a simulated source; each kind reads its own fields.
type Sim struct {
	Seed uint64 // noise; 0: derived from the sensor's name
	// Environment, by field (temperature, pressure, humidity).
	Base, Drift, Noise map[string]float64 // values; change per hour; noise standard deviation
	Excursions         []SimExcursion
	// RFID.
	Tags []SimTag
	// GPS.
	Track string  // GeoJSON file with a LineString
	Speed float64 // m/s
}

// SimExcursion is a step added to a simulated environment field.
type SimExcursion struct {
	Field             string
	After, For, Every time.Duration
	Delta             float64
}

// SimTag is a tag that appears at a simulated reader.
type SimTag struct {
	Tag               string // UID in hex
	After, For, Every time.Duration
}

// Problem is something wrong with a Spec, at a key of its config entry
// ("bus", "options.filter", "sim.tags[0].tag").
type Problem struct {
	Key string
	Msg string
}

func (p Problem) Error() string { return p.Key + ": " + p.Msg }

// problems collects Problems.
type problems []Problem

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Drivers lists the registry's driver names, sorted.
func Drivers() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// KindOf returns the kind of sensor a driver reads.
func KindOf(driver string) (Kind, bool) {
	d, ok := drivers[driver]
	return d.kind, ok
}

// Default returns the defaults of a driver's sensor, for the keys a
// config leaves out. Simulated GPS has a poll interval (its source is
// paced by reads); a real receiver paces itself.
func Default(driver string, simulated bool) Spec {
	d := drivers[driver]
	s := Spec{Driver: driver, Simulated: simulated}
	switch d.kind {
	case KindEnv:
		s.PollInterval, s.Bus, s.Address = 10*time.Second, "1", d.env.addrs[0]
		base := map[string]float64{"temperature": 21, "pressure": 1013.25, "humidity": 45}
		noise := map[string]float64{"temperature": 0.05, "pressure": 0.05, "humidity": 0.2}
		s.Sim.Base, s.Sim.Noise = map[string]float64{}, map[string]float64{}
		if d.env.bmxx80 {
			s.Oversampling = map[string]string{}
		}
		for _, f := range d.env.fields() {
			s.Sim.Base[f], s.Sim.Noise[f] = base[f], noise[f]
			if d.env.bmxx80 {
				s.Oversampling[f] = "1x"
			}
		}
	case KindRFID:
		s.PollInterval, s.ReadTimeout, s.Bus = 500*time.Millisecond, 500*time.Millisecond, "SPI0.0"
		s.ResetPin, s.IRQPin, s.AntennaGain = "GPIO25", "GPIO24", 4
	case KindGPS:
		s.ReadTimeout, s.Port, s.Baud, s.Sim.Speed = 5*time.Second, "/dev/serial0", 9600, 10
		if simulated {
			s.PollInterval = time.Second
		}
	}
	return s
}

// Keys lists the config keys that apply to a driver's sensors, besides
// name, driver, simulated, device and topic, which apply to all. Keys
// inside options and sim are dotted ("options.filter", "sim.tags").
func Keys(driver string) []string {
	switch d := drivers[driver]; d.kind {
	case KindEnv:
		keys := []string{"poll_interval", "bus", "address", "calibration", "sim.seed", "sim.base", "sim.drift",
			"sim.noise", "sim.excursions"}
		if d.env.bmxx80 {
			keys = append(keys, "options.oversampling", "options.filter", "options.standby")
		}
		return keys
	case KindRFID:
		return []string{"poll_interval", "read_timeout", "bus", "reset_pin", "irq_pin", "options.antenna_gain", "sim.tags"}
	case KindGPS:
		return []string{"poll_interval", "read_timeout", "port", "baud", "calibration", "sim.track", "sim.speed"}
	}
	return nil
}

// Check returns every problem with s: its values and, for a simulated
// GPS, its track file. It touches no hardware.
func Check(s Spec) []Problem {
	d, ok := drivers[s.Driver]
	if !ok {
		return []Problem{{Key: "driver", Msg: fmt.Sprintf("unknown driver %q (known: %v)", s.Driver, Drivers())}}
	}
	var ps problems
	if s.Name == "" {
		ps.add("name", "required: names the sensor in logs, metrics and RFID reads")
	}
	if s.PollInterval < 0 || s.PollInterval == 0 && (d.kind != KindGPS || s.Simulated) {
		ps.add("poll_interval", "must be positive")
	}
	checkCalibration(&ps, s)
	d.check(&ps, s)
	return ps
}

func checkCalibration(ps *problems, s Spec) {
	fields := calibrationFields(s.Driver)
	for field := range s.Calibration {
		if !slices.Contains(fields, field) {
			ps.add("calibration."+field, "a %s sensor has no %s to calibrate (fields: %v)", s.Driver, field, fields)
		}
	}
}
