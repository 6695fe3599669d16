package sensors

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/aht20"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/flowgate/flowgate/sensors/bme280"
	"github.com/flowgate/flowgate/sensors/sim"
)

// envChip is what an environment sensor needs from its chip: a bme280.Dev,
// an aht20.Dev, a sim.Env, or any periph environment driver.
type envChip interface {
	Sense(e *physic.Env) error
	Halt() error
}

// envModel is an environment chip the registry knows: where it answers on
// I²C, what it measures besides temperature, and how it is started on a
// borrowed bus. Adding a chip is a model and a line in the registry.
type envModel struct {
	addrs    []uint16 // the addresses it answers at; the first is the default
	pressure bool
	humidity bool
	bmxx80   bool // takes options.oversampling, filter and standby
	open     func(bus i2c.Bus, s Spec) (envChip, error)
}

// The environment chips.
var (
	bme280Model = &envModel{addrs: []uint16{0x76, 0x77}, pressure: true, humidity: true, bmxx80: true, open: openBMxx80}
	bmp280Model = &envModel{addrs: []uint16{0x76, 0x77}, pressure: true, bmxx80: true, open: openBMxx80}
	aht20Model  = &envModel{addrs: []uint16{0x38}, humidity: true, open: openAHT20}
)

// fields lists what the chip measures, as named in the payload.
func (m *envModel) fields() []string {
	f := []string{sim.Temperature}
	if m.pressure {
		f = append(f, sim.Pressure)
	}
	if m.humidity {
		f = append(f, sim.Humidity)
	}
	return f
}

// envSensor reads an environment chip.
type envSensor struct {
	chip        envChip
	bus         interface{ Close() error } // nil when simulated
	hasPressure bool
	hasHumidity bool
	cal         Calibration
	clock       Clock
}

func (s *envSensor) Read(ctx context.Context) (Reading, error) {
	var e physic.Env
	if err := s.chip.Sense(&e); err != nil {
		return Reading{}, err
	}
	r := Reading{Kind: KindEnv, Time: s.clock.Now(), Env: Env{
		Temperature: float64(e.Temperature-physic.ZeroCelsius) / float64(physic.Celsius),
		Pressure:    float64(e.Pressure) / float64(100*physic.Pascal),
		Humidity:    float64(e.Humidity) / float64(physic.PercentRH),
		HasPressure: s.hasPressure,
		HasHumidity: s.hasHumidity,
	}}
	s.cal.apply(&r)
	return r, nil
}

func (s *envSensor) Close() error {
	err := s.chip.Halt()
	if s.bus != nil {
		if cerr := s.bus.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func openEnv(src *Source, m *envModel) (Sensor, error) {
	s := src.spec
	sensor := &envSensor{hasPressure: m.pressure, hasHumidity: m.humidity, cal: s.Calibration, clock: src.deps.Clock}
	if s.Simulated {
		sensor.chip = newSimEnv(s, m, src.deps.Clock)
		return sensor, nil
	}
	bus, err := src.deps.Hardware.I2C(s.Bus)
	if err != nil {
		return nil, err
	}
	chip, err := m.open(bus, s)
	if err != nil {
		closeAll(bus)
		return nil, err
	}
	if h, ok := chip.(interface{ Humidity() bool }); ok {
		sensor.hasHumidity = sensor.hasHumidity && h.Humidity() // a BME280 with humidity off
	}
	sensor.chip, sensor.bus = chip, bus
	return sensor, nil
}

// openBMxx80 starts a BME280 or BMP280 with the spec's options.
func openBMxx80(bus i2c.Bus, s Spec) (envChip, error) {
	opts, err := envOpts(s)
	if err != nil {
		return nil, err
	}
	return bme280.NewI2C(bus, s.Address, opts)
}

// openAHT20 starts an AHT20 (temperature and humidity; it answers at 0x38
// only, and has no options).
func openAHT20(bus i2c.Bus, _ Spec) (envChip, error) {
	d, err := aht20.NewI2C(bus, nil)
	if err != nil {
		return nil, fmt.Errorf("aht20: at 0x38 on %s: %w", bus, err)
	}
	return d, nil
}

// envOpts maps a spec onto the driver's options.
func envOpts(s Spec) (*bme280.Opts, error) {
	o := &bme280.Opts{Chip: bme280.BME280, Standby: s.Standby}
	if s.Driver == "bmp280" {
		o.Chip = bme280.BMP280
	}
	var err error
	if o.Filter, err = bme280.ParseFilter(s.Filter); err != nil {
		return nil, err
	}
	for field, v := range s.Oversampling {
		target := map[string]*bmxx80.Oversampling{"temperature": &o.Temperature, "pressure": &o.Pressure,
			"humidity": &o.Humidity}[field]
		if target == nil {
			return nil, fmt.Errorf("bme280: no oversampling for %q", field)
		}
		if *target, err = bme280.ParseOversampling(v); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func newSimEnv(s Spec, m *envModel, clock Clock) *sim.Env {
	values := func(m map[string]float64) sim.Values {
		return sim.Values{Temperature: m[sim.Temperature], Pressure: m[sim.Pressure], Humidity: m[sim.Humidity]}
	}
	o := sim.EnvOpts{Base: values(s.Sim.Base), Drift: values(s.Sim.Drift), Noise: values(s.Sim.Noise),
		Humidity: m.humidity, Seed: s.Sim.Seed, Now: clock.Now}
	for _, x := range s.Sim.Excursions {
		o.Excursions = append(o.Excursions, sim.Excursion{Field: x.Field, After: x.After, For: x.For,
			Every: x.Every, Delta: x.Delta})
	}
	return sim.NewEnv(o)
}

// checkEnv checks an environment sensor's options and simulation.
func checkEnv(ps *problems, s Spec, m *envModel) {
	if !s.Simulated && s.Bus == "" {
		ps.add("bus", "required: the I²C bus, e.g. \"1\" for /dev/i2c-1")
	}
	if !slices.Contains(m.addrs, s.Address) {
		ps.add("address", "%#x: a %s answers at %s", s.Address, strings.ToUpper(s.Driver), addrList(m.addrs))
	}
	if m.bmxx80 {
		checkBMxx80(ps, s)
	}
	checkSimEnv(ps, s, m)
}

// addrList describes a chip's addresses.
func addrList(addrs []uint16) string {
	if len(addrs) == 2 && addrs[0] == 0x76 && addrs[1] == 0x77 {
		return "0x76 (SDO to GND) or 0x77 (SDO to VDDIO)"
	}
	var out []string
	for _, a := range addrs {
		out = append(out, fmt.Sprintf("%#x", a))
	}
	return strings.Join(out, " or ") + " only"
}

// checkBMxx80 checks the options of a BME280 or BMP280.
func checkBMxx80(ps *problems, s Spec) {
	checkOversampling(ps, s)
	if _, err := bme280.ParseFilter(s.Filter); err != nil {
		ps.add("options.filter", "%d must be 0 (off), 2, 4, 8 or 16", s.Filter)
	}
	switch {
	case s.Standby < 0:
		ps.add("options.standby", "must not be negative")
	case (s.Standby > 0) != (s.Filter > 0):
		ps.add("options.standby", "standby and filter go together: both set, the chip samples and filters on its own (normal mode); neither, one measurement per read")
	}
}

func checkOversampling(ps *problems, s Spec) {
	for field, v := range s.Oversampling {
		key := "options.oversampling." + field
		switch {
		case field != "temperature" && field != "pressure" && field != "humidity":
			ps.add(key, "oversampling is set for temperature, pressure or humidity")
		case field == "humidity" && s.Driver == "bmp280":
			ps.add(key, "a BMP280 measures no humidity")
		default:
			o, err := bme280.ParseOversampling(v)
			if err != nil {
				ps.add(key, "%q must be off, 1x, 2x, 4x, 8x or 16x", v)
			} else if field == "temperature" && o == 0 {
				ps.add(key, "temperature cannot be off: pressure and humidity are compensated with it")
			}
		}
	}
}

func checkSimEnv(ps *problems, s Spec, m *envModel) {
	for _, f := range []struct {
		key    string
		values map[string]float64
	}{{"sim.base", s.Sim.Base}, {"sim.drift", s.Sim.Drift}, {"sim.noise", s.Sim.Noise}} {
		for field, v := range f.values {
			if !slices.Contains(m.fields(), field) {
				ps.add(f.key+"."+field, "a %s measures %s", s.Driver, strings.Join(m.fields(), ", "))
			} else if f.key == "sim.noise" && v < 0 {
				ps.add(f.key+"."+field, "must not be negative")
			}
		}
	}
	for i, x := range s.Sim.Excursions {
		key := fmt.Sprintf("sim.excursions[%d]", i)
		switch {
		case !slices.Contains(m.fields(), x.Field):
			ps.add(key+".field", "%q must be one of what a %s measures: %s", x.Field, s.Driver, strings.Join(m.fields(), ", "))
		case x.After < 0:
			ps.add(key+".after", "must not be negative")
		case x.For <= 0:
			ps.add(key+".for", "must be positive")
		case x.Every != 0 && x.Every <= x.For:
			ps.add(key+".every", "must be longer than for (or 0: once)")
		}
	}
}
