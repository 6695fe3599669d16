package sensors

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync/atomic"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/spi"

	"github.com/flowgate/flowgate/sensors/gps"
)

// driver is one entry of the registry: what a driver measures, how its
// options are checked and how a sensor is opened, real or simulated; for
// an environment chip, its model.
type driver struct {
	kind  Kind
	check func(*problems, Spec)
	open  func(*Source) (Sensor, error)
	env   *envModel
}

// drivers is the registry: the one place that maps the driver names of the
// config to constructors. An environment chip is an envModel (env.go): its
// addresses, what it measures and a function that starts it on a borrowed
// bus and returns something with Sense(*physic.Env) and Halt(), as periph's
// drivers do; then a line here, as for the AHT20.
var drivers = map[string]driver{
	"bme280":  envDriver(bme280Model),
	"bmp280":  envDriver(bmp280Model),
	"aht20":   envDriver(aht20Model),
	"mfrc522": {kind: KindRFID, check: checkRFID, open: openRFID},
	"nmea":    {kind: KindGPS, check: checkGPS, open: openGPS},
}

// envDriver is the registry entry of an environment chip.
func envDriver(m *envModel) driver {
	return driver{kind: KindEnv, env: m,
		check: func(ps *problems, s Spec) { checkEnv(ps, s, m) },
		open:  func(src *Source) (Sensor, error) { return openEnv(src, m) }}
}

// Hardware lends sensors their buses, ports and pins. The composition root
// implements it over periph's registries and go.bug.st/serial; tests use
// sensorstest.Hardware. A name this machine does not have is a
// *NoBusError.
type Hardware interface {
	I2C(bus string) (i2c.BusCloser, error)
	SPI(port string) (spi.PortCloser, error)
	Pin(name string) (gpio.PinIO, error)
	Serial(port string, baud int) (io.ReadCloser, error)
}

// Deps is what sources need from the process that runs them.
type Deps struct {
	Hardware Hardware // may be nil when every sensor is simulated
	Clock    Clock    // the simulations' time and the readings' timestamps
}

// Source is a checked Spec ready to be opened, as often as its supervisor
// needs. Its counters outlive each opened sensor.
type Source struct {
	spec     Spec
	kind     Kind
	deps     Deps
	open     func(*Source) (Sensor, error)
	nmea     gps.Counts    // lines skipped by the GPS receivers opened
	badReads atomic.Uint64 // unfinished tag reads of the RFID readers opened
}

// New checks spec and returns its source. Nothing is opened yet.
func New(spec Spec, deps Deps) (*Source, error) {
	if ps := Check(spec); len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = p
		}
		return nil, fmt.Errorf("sensors: %s: %w", spec.Name, errors.Join(errs...))
	}
	d := drivers[spec.Driver]
	if deps.Clock == nil {
		deps.Clock = RealClock()
	}
	if !spec.Simulated && deps.Hardware == nil {
		return nil, fmt.Errorf("sensors: %s: no hardware to open a %s on", spec.Name, spec.Driver)
	}
	if spec.Sim.Seed == 0 {
		h := fnv.New64a()
		h.Write([]byte(spec.Name))
		spec.Sim.Seed = h.Sum64()
	}
	return &Source{spec: spec, kind: d.kind, deps: deps, open: d.open}, nil
}

// Open opens the sensor: its simulated source, or its device on buses
// borrowed from the Hardware.
func (s *Source) Open() (Sensor, error) {
	sensor, err := s.open(s)
	if err != nil {
		return nil, fmt.Errorf("sensors: %s: %w", s.spec.Name, err)
	}
	return sensor, nil
}

// Spec returns the source's spec.
func (s *Source) Spec() Spec { return s.spec }

// Kind returns what the source measures.
func (s *Source) Kind() Kind { return s.kind }

// Skipped returns the input the source's sensors skipped, by reason (a GPS
// counts bad lines, an RFID reader tag reads that did not finish); nil for
// sources that skip nothing.
func (s *Source) Skipped() map[string]uint64 {
	switch s.kind {
	case KindGPS:
		return map[string]uint64{"checksum": s.nmea.Checksum.Load(), "garbage": s.nmea.Garbage.Load(),
			"unsupported": s.nmea.Unsupported.Load()}
	case KindRFID:
		return map[string]uint64{"bad_read": s.badReads.Load()}
	}
	return nil
}

// SkipReasons lists the reasons Skipped may report for a kind, so that a
// metric can export them all from the start.
func SkipReasons(k Kind) []string {
	switch k {
	case KindGPS:
		return []string{"checksum", "garbage", "unsupported"}
	case KindRFID:
		return []string{"bad_read"}
	}
	return nil
}

// closeAll closes what an open that failed half-way had borrowed.
func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
}
