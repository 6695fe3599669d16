package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/sensors"
)

// Sensor is one sensor wired to the gateway. The keys that apply depend on
// the driver; the same entry runs on a laptop with simulated: true, where
// the wiring keys are checked and ignored. See configs/README.md, sensors.
type Sensor struct {
	Name         string             `yaml:"name"`      // unique; names it in logs, metrics, status and RFID reads
	Driver       string             `yaml:"driver"`    // bme280, bmp280, aht20, mfrc522, nmea
	Simulated    bool               `yaml:"simulated"` // read the driver's simulated source instead of hardware
	Device       string             `yaml:"device"`    // the device id its readings come from; default the name
	Topic        string             `yaml:"topic"`     // ingest topic; {device}, {kind} and {name} are replaced
	PollInterval time.Duration      `yaml:"poll_interval"`
	ReadTimeout  time.Duration      `yaml:"read_timeout"`
	Bus          string             `yaml:"bus"`     // I²C bus or SPI port
	Address      uint16             `yaml:"address"` // I²C address
	Port         string             `yaml:"port"`    // serial port
	Baud         int                `yaml:"baud"`
	ResetPin     string             `yaml:"reset_pin"`
	IRQPin       string             `yaml:"irq_pin"`
	Calibration  map[string]float64 `yaml:"calibration"` // offsets added to fields before the payload is made
	Options      SensorOptions      `yaml:"options"`
	Sim          SensorSim          `yaml:"sim"`
}

// SensorOptions are a driver's own settings.
type SensorOptions struct {
	Oversampling map[string]string `yaml:"oversampling"` // bme280, bmp280: temperature, pressure, humidity: off, 1x … 16x
	Filter       int               `yaml:"filter"`       // bme280, bmp280: IIR filter 0, 2, 4, 8, 16 (with standby)
	Standby      time.Duration     `yaml:"standby"`      // bme280, bmp280: with filter, the chip samples on its own
	AntennaGain  int               `yaml:"antenna_gain"` // mfrc522: 0 … 7
}

// SensorSim configures a simulated source.
type SensorSim struct {
	Seed       uint64             `yaml:"seed"`
	Base       map[string]float64 `yaml:"base"`  // environment values
	Drift      map[string]float64 `yaml:"drift"` // per hour
	Noise      map[string]float64 `yaml:"noise"` // standard deviation
	Excursions []SimExcursion     `yaml:"excursions"`
	Tags       []SimTag           `yaml:"tags"`
	Track      string             `yaml:"track"` // GeoJSON LineString, relative to this file
	Speed      float64            `yaml:"speed"` // m/s
}

// SimExcursion is a step added to a simulated environment field.
type SimExcursion struct {
	Field string        `yaml:"field"`
	After time.Duration `yaml:"after"`
	For   time.Duration `yaml:"for"`
	Every time.Duration `yaml:"every"`
	Delta float64       `yaml:"delta"`
}

// SimTag is an RFID tag appearing at a simulated reader.
type SimTag struct {
	Tag   string        `yaml:"tag"`
	After time.Duration `yaml:"after"`
	For   time.Duration `yaml:"for"` // default 3 poll intervals
	Every time.Duration `yaml:"every"`
}

// DefaultSensorTopic is where a sensor's readings enter the pipeline
// unless its topic says otherwise: sensors/van-7/env, sensors/van-7/gps,
// sensors/dock-door/rfid. It must match one of ingest.topics.
const DefaultSensorTopic = "sensors/{device}/{kind}"

// sensorKeys are every key of a sensor entry, for telling which apply.
var sensorKeys = []string{"poll_interval", "read_timeout", "bus", "address", "port", "baud", "reset_pin",
	"irq_pin", "calibration", "options.oversampling", "options.filter", "options.standby", "options.antenna_gain",
	"sim.seed", "sim.base", "sim.drift", "sim.noise", "sim.excursions", "sim.tags", "sim.track", "sim.speed"}

// deriveSensors fills the keys each sensor leaves out with its driver's
// defaults. A key that is present keeps its value, even a zero, and is
// validated as written.
func (c *Config) deriveSensors() {
	for i := range c.Sensors {
		s := &c.Sensors[i]
		if _, ok := sensors.KindOf(s.Driver); !ok {
			continue
		}
		c.sensorDefaults(fmt.Sprintf("sensors[%d].", i), s, sensors.Default(s.Driver, s.Simulated))
	}
}

func (c *Config) sensorDefaults(p string, s *Sensor, d sensors.Spec) {
	has := func(key string) bool { return c.src.main.Has(p + key) }
	if !has("device") {
		s.Device = s.Name
	}
	if !has("topic") {
		s.Topic = DefaultSensorTopic
	}
	setDefault(has("poll_interval"), &s.PollInterval, d.PollInterval)
	setDefault(has("read_timeout"), &s.ReadTimeout, d.ReadTimeout)
	setDefault(has("bus"), &s.Bus, d.Bus)
	setDefault(has("address"), &s.Address, d.Address)
	setDefault(has("port"), &s.Port, d.Port)
	setDefault(has("baud"), &s.Baud, d.Baud)
	setDefault(has("reset_pin"), &s.ResetPin, d.ResetPin)
	setDefault(has("irq_pin"), &s.IRQPin, d.IRQPin)
	setDefault(has("options.antenna_gain"), &s.Options.AntennaGain, d.AntennaGain)
	setDefault(has("sim.speed"), &s.Sim.Speed, d.Sim.Speed)
	s.Options.Oversampling = fillMap(s.Options.Oversampling, d.Oversampling)
	s.Sim.Base = fillMap(s.Sim.Base, d.Sim.Base)
	s.Sim.Noise = fillMap(s.Sim.Noise, d.Sim.Noise)
	for j := range s.Sim.Tags {
		setDefault(has(fmt.Sprintf("sim.tags[%d].for", j)), &s.Sim.Tags[j].For, 3*s.PollInterval)
	}
}

func setDefault[T any](present bool, v *T, def T) {
	if !present {
		*v = def
	}
}

// fillMap adds the default entries m lacks.
func fillMap[V any](m, def map[string]V) map[string]V {
	if len(def) == 0 {
		return m
	}
	if m == nil {
		m = map[string]V{}
	}
	for k, v := range def {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m
}

// validateSensors checks every sensor without touching hardware: its
// driver, names, the keys that apply, the driver's own checks (the sensors
// package's, so that check and run never disagree) and its topic.
func (c *Config) validateSensors(k *checker) {
	c.deriveSensors()
	names := map[string]bool{}
	for i := range c.Sensors {
		p := fmt.Sprintf("sensors[%d]", i)
		s := &c.Sensors[i]
		if _, ok := sensors.KindOf(s.Driver); !ok {
			k.errorf(c.near(p+".driver"), "unknown driver %q (known: %s)", s.Driver, strings.Join(sensors.Drivers(), ", "))
			continue
		}
		if s.Name != "" && (names[s.Name] || !devices.ValidID(s.Name)) {
			k.errorf(p+".name", "%q must be unique and 1 to 128 letters, digits, '.', '_', ':' or '-'", s.Name)
		}
		names[s.Name] = true
		if !devices.ValidID(s.Device) {
			k.errorf(c.near(p+".device"), "%q must be a device id: 1 to 128 letters, digits, '.', '_', ':' or '-'", s.Device)
		}
		c.validateSensorKeys(k, p, s)
		for _, pr := range sensors.Check(c.SensorSpec(i)) {
			k.errorf(c.near(p+"."+pr.Key), "%s", pr.Msg)
		}
		c.validateSensorTopic(k, p, i)
	}
}

// validateSensorKeys reports keys written for another kind of sensor.
func (c *Config) validateSensorKeys(k *checker, p string, s *Sensor) {
	applies := sensors.Keys(s.Driver)
	for _, key := range sensorKeys {
		if c.src.main.Has(p+"."+key) && !slices.Contains(applies, key) {
			k.errorf(p+"."+key, "does not apply to driver %s (it takes %s)", s.Driver, strings.Join(applies, ", "))
		}
	}
}

func (c *Config) validateSensorTopic(k *checker, p string, i int) {
	topic := c.SensorTopic(i)
	if !validTopicName(topic) || strings.ContainsAny(topic, "{}") {
		k.errorf(c.near(p+".topic"), "%q must be a topic name without wildcards; {device}, {kind} and {name} are replaced", topic)
		return
	}
	for _, t := range c.Ingest.Topics {
		if devices.MatchTopic(t.Match, topic) {
			return
		}
	}
	k.errorf(c.near(p+".topic"), "readings would be published on %q, which no ingest.topics match covers; add one such as {match: %s, type: %s}",
		topic, suggestFilter(topic), suggestType(c.Sensors[i].Driver))
}

// suggestFilter replaces the device level of a sensor topic with +.
func suggestFilter(topic string) string {
	levels := strings.Split(topic, "/")
	if len(levels) == 3 {
		levels[1] = "+"
	}
	return strings.Join(levels, "/")
}

func suggestType(driver string) string {
	kind, _ := sensors.KindOf(driver)
	return map[sensors.Kind]string{sensors.KindEnv: "env.reading", sensors.KindGPS: "gps.fix",
		sensors.KindRFID: "rfid.read"}[kind]
}

// near returns path if it is in the file, else its closest parent that
// is, so that a problem with a defaulted value points at its sensor.
func (c *Config) near(path string) string {
	for !c.src.main.Has(path) {
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return path
		}
		path = path[:i]
	}
	return path
}

// SensorTopic is the topic sensors[i]'s readings enter the pipeline on.
func (c *Config) SensorTopic(i int) string {
	s := c.Sensors[i]
	kind, _ := sensors.KindOf(s.Driver)
	return strings.NewReplacer("{device}", s.Device, "{kind}", string(kind), "{name}", s.Name).Replace(s.Topic)
}

// SensorSpec maps sensors[i] onto the sensors package's Spec, with the
// simulated track relative to the config file.
func (c *Config) SensorSpec(i int) sensors.Spec {
	s := c.Sensors[i]
	spec := sensors.Spec{
		Name: s.Name, Driver: s.Driver, Simulated: s.Simulated, PollInterval: s.PollInterval,
		ReadTimeout: s.ReadTimeout, Bus: s.Bus, Address: s.Address, Port: s.Port, Baud: s.Baud,
		ResetPin: s.ResetPin, IRQPin: s.IRQPin, Calibration: s.Calibration,
		Oversampling: s.Options.Oversampling, Filter: s.Options.Filter, Standby: s.Options.Standby,
		AntennaGain: s.Options.AntennaGain,
		Sim: sensors.Sim{Seed: s.Sim.Seed, Base: s.Sim.Base, Drift: s.Sim.Drift, Noise: s.Sim.Noise,
			Track: s.Sim.Track, Speed: s.Sim.Speed},
	}
	if spec.Sim.Track != "" && !filepath.IsAbs(spec.Sim.Track) && c.src.main != nil {
		spec.Sim.Track = filepath.Join(filepath.Dir(c.src.main.File), spec.Sim.Track)
	}
	for _, x := range s.Sim.Excursions {
		spec.Sim.Excursions = append(spec.Sim.Excursions, sensors.SimExcursion{Field: x.Field, After: x.After,
			For: x.For, Every: x.Every, Delta: x.Delta})
	}
	for _, t := range s.Sim.Tags {
		spec.Sim.Tags = append(spec.Sim.Tags, sensors.SimTag{Tag: t.Tag, After: t.After, For: t.For, Every: t.Every})
	}
	return spec
}
