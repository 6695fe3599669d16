package sensors

import (
	"context"
	"fmt"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/flowgate/flowgate/sensors/bme280"
	"github.com/flowgate/flowgate/sensors/sim"
)

// envChip is what an environment sensor needs from its chip: a bme280.Dev,
// a sim.Env, or any periph environment driver with a humidity flag.
type envChip interface {
	Sense(e *physic.Env) error
	Halt() error
	Humidity() bool
}

// envSensor reads an environment chip.
type envSensor struct {
	chip  envChip
	bus   interface{ Close() error } // nil when simulated
	cal   Calibration
	clock Clock
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
		HasHumidity: s.chip.Humidity(),
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

func openEnv(src *Source) (Sensor, error) {
	s := src.spec
	if s.Simulated {
		return &envSensor{chip: newSimEnv(s, src.deps.Clock), cal: s.Calibration, clock: src.deps.Clock}, nil
	}
	opts, err := envOpts(s)
	if err != nil {
		return nil, err
	}
	bus, err := src.deps.Hardware.I2C(s.Bus)
	if err != nil {
		return nil, err
	}
	dev, err := bme280.NewI2C(bus, s.Address, opts)
	if err != nil {
		closeAll(bus)
		return nil, err
	}
	return &envSensor{chip: dev, bus: bus, cal: s.Calibration, clock: src.deps.Clock}, nil
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

func newSimEnv(s Spec, clock Clock) *sim.Env {
	values := func(m map[string]float64) sim.Values {
		return sim.Values{Temperature: m[sim.Temperature], Pressure: m[sim.Pressure], Humidity: m[sim.Humidity]}
	}
	o := sim.EnvOpts{Base: values(s.Sim.Base), Drift: values(s.Sim.Drift), Noise: values(s.Sim.Noise),
		Humidity: s.Driver != "bmp280", Seed: s.Sim.Seed, Now: clock.Now}
	for _, x := range s.Sim.Excursions {
		o.Excursions = append(o.Excursions, sim.Excursion{Field: x.Field, After: x.After, For: x.For,
			Every: x.Every, Delta: x.Delta})
	}
	return sim.NewEnv(o)
}

// checkEnv checks an environment sensor's options and simulation.
func checkEnv(ps *problems, s Spec) {
	if !s.Simulated && s.Bus == "" {
		ps.add("bus", "required: the I²C bus, e.g. \"1\" for /dev/i2c-1")
	}
	if s.Address != 0x76 && s.Address != 0x77 {
		ps.add("address", "%#x: a BME280 or BMP280 answers at 0x76 (SDO to GND) or 0x77 (SDO to VDDIO)", s.Address)
	}
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
	checkSimEnv(ps, s)
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

func checkSimEnv(ps *problems, s Spec) {
	for _, m := range []struct {
		key    string
		values map[string]float64
	}{{"sim.base", s.Sim.Base}, {"sim.drift", s.Sim.Drift}, {"sim.noise", s.Sim.Noise}} {
		for field, v := range m.values {
			if err := sim.CheckField(field); err != nil {
				ps.add(m.key+"."+field, "not a field: temperature, pressure or humidity")
			} else if m.key == "sim.noise" && v < 0 {
				ps.add(m.key+"."+field, "must not be negative")
			}
		}
	}
	for i, x := range s.Sim.Excursions {
		key := fmt.Sprintf("sim.excursions[%d]", i)
		switch {
		case sim.CheckField(x.Field) != nil:
			ps.add(key+".field", "%q must be temperature, pressure or humidity", x.Field)
		case x.After < 0:
			ps.add(key+".after", "must not be negative")
		case x.For <= 0:
			ps.add(key+".for", "must be positive")
		case x.Every != 0 && x.Every <= x.For:
			ps.add(key+".every", "must be longer than for (or 0: once)")
		}
	}
}
