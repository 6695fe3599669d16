package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.bug.st/serial"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"
	"periph.io/x/host/v3"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/sensors"
)

// sensorRuntime is the sensors a gateway runs: a supervisor for each, the
// hardware they borrow from, and the goroutines running them.
type sensorRuntime struct {
	// hw and clock may be set before Run (tests use fakes); otherwise the
	// real clock, and periph and go.bug.st/serial when a sensor is not
	// simulated.
	hw    sensors.Hardware
	clock sensors.Clock

	sensors []*runningSensor
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stop    sync.Once
}

// runningSensor is one configured sensor and where its readings go.
type runningSensor struct {
	sup         *sensors.Supervisor
	src         *sensors.Source
	driver      string
	clientID    string // the dead letters' client_id for its readings
	topic       string // readings enter the pipeline here
	statusTopic string // local, retained: its health
	ingestTopic string // its health as an event too, when an ingest topic matches; else empty
	deviceID    string
	username    string // of the registered device it reports as, if any
}

// statusTopicPrefix is where sensor health is published on the local
// broker, retained, per sensor: flowgate/sensors/{name}/status.
const statusTopicPrefix = "flowgate/sensors/"

// startSensors starts every configured sensor under its supervisor. A
// sensor that cannot be opened does not stop the gateway: its supervisor
// reports it and keeps trying.
func (g *Gateway) startSensors(ctx context.Context, wg *sync.WaitGroup) error {
	if len(g.cfg.Sensors) == 0 {
		return nil
	}
	rt := g.sensors
	if rt == nil {
		rt = &sensorRuntime{}
		g.sensors = rt
	}
	if rt.clock == nil {
		rt.clock = sensors.RealClock()
	}
	log := g.log.With("component", "sensors")
	for i := range g.cfg.Sensors {
		spec := g.cfg.SensorSpec(i)
		if rt.hw == nil && !spec.Simulated {
			rt.hw = &piHardware{log: log}
		}
		rs, err := g.newRunningSensor(rt, i, spec)
		if err != nil {
			return err
		}
		rt.sensors = append(rt.sensors, rs)
	}
	if err := g.m.reg.Register(&sensorCollector{sensors: rt.sensors}); err != nil {
		log.Warn("sensor metrics not registered", "err", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rt.cancel = cancel
	for _, rs := range rt.sensors {
		wg.Add(1)
		rt.wg.Add(1)
		go func() {
			defer wg.Done()
			defer rt.wg.Done()
			_ = rs.sup.Run(runCtx)
		}()
	}
	log.Info("sensors started", "count", len(rt.sensors))
	return nil
}

func (g *Gateway) newRunningSensor(rt *sensorRuntime, i int, spec sensors.Spec) (*runningSensor, error) {
	c := g.cfg.Sensors[i]
	src, err := sensors.New(spec, sensors.Deps{Hardware: rt.hw, Clock: rt.clock})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	rs := &runningSensor{src: src, driver: c.Driver, clientID: "flowgate-sensor-" + c.Name,
		topic: g.cfg.SensorTopic(i), statusTopic: statusTopicPrefix + c.Name + "/status", deviceID: c.Device}
	for _, d := range g.cfg.Devices {
		if d.ID == c.Device {
			rs.username = d.Username
		}
	}
	status := "sensors/" + c.Device + "/status"
	for _, t := range g.cfg.Ingest.Topics {
		if devices.MatchTopic(t.Match, status) {
			rs.ingestTopic = status
			break
		}
	}
	rs.sup = &sensors.Supervisor{Name: c.Name, Open: src.Open, Interval: spec.PollInterval, Clock: rt.clock,
		Log:    g.log.With("component", "sensors", "driver", c.Driver),
		Emit:   func(r sensors.Reading) { g.sensorReading(rs, r) },
		Report: func(st sensors.Status) { g.sensorStatus(rs, st) }}
	return rs, nil
}

// stopSensors stops every sensor and waits for them, for at most a
// quarter of what is left of ctx: a reading blocked on a full uplink must
// not eat the time the pipeline and the uplink need, and is let go when
// the pipeline drain ends (Run still waits for its goroutine). It is safe
// to call when no sensor started, and more than once.
func (g *Gateway) stopSensors(ctx context.Context) error {
	rt := g.sensors
	if rt == nil || rt.cancel == nil {
		return nil
	}
	rt.stop.Do(rt.cancel)
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/4)
		defer cancel()
	}
	done := make(chan struct{})
	go func() {
		rt.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("gateway: sensors did not stop in time (a reading blocked on a full uplink?)")
	}
}

// sensorDevice is the device a sensor reports as: the registered one with
// its id, for its metadata, or a device known only by its id. Never with
// the registered device's kind: a sensor's payload is canonical already,
// not one for that device's profile to decode.
func (g *Gateway) sensorDevice(rs *runningSensor) *devices.Device {
	d := &devices.Device{ID: rs.deviceID, TopicPrefix: devices.DefaultPrefix(rs.deviceID)}
	if rs.username == "" {
		return d
	}
	if reg, ok := g.registry.Load().Lookup(rs.deviceID, rs.username); ok {
		d.Username, d.TopicPrefix, d.Metadata = reg.Username, reg.TopicPrefix, reg.Metadata
	}
	return d
}

// sensorReading sends a reading down the same path as a device's publish.
func (g *Gateway) sensorReading(rs *runningSensor, r sensors.Reading) {
	payload := r.AppendJSON(make([]byte, 0, 192))
	if err := g.pipe.handle(g.sensorDevice(rs), rs.clientID, rs.topic, payload); err != nil {
		rs.sup.Log.Warn("sensor reading not accepted", "sensor", rs.sup.Name, "topic", rs.topic, "err", err)
	}
}

// sensorHealth is the payload of a sensor status message.
type sensorHealth struct {
	Sensor   string        `json:"sensor"`
	Driver   string        `json:"driver"`
	Device   string        `json:"device"`
	State    sensors.State `json:"state"`
	Failures int           `json:"failures"`
	Error    string        `json:"error,omitempty"`
	Since    time.Time     `json:"since"`
}

// sensorStatus publishes a change of a sensor's health: retained on the
// local broker, and through the pipeline when an ingest topic takes it.
func (g *Gateway) sensorStatus(rs *runningSensor, st sensors.Status) {
	h := sensorHealth{Sensor: st.Sensor, Driver: rs.driver, Device: rs.deviceID, State: st.State,
		Failures: st.Failures, Since: st.Since.UTC()}
	if st.Err != nil {
		h.Error = st.Err.Error()
	}
	payload, _ := json.Marshal(h)
	if err := g.broker.Publish(rs.statusTopic, payload, true, 1); err != nil {
		rs.sup.Log.Warn("sensor status not published", "sensor", rs.sup.Name, "topic", rs.statusTopic, "err", err)
	}
	if rs.ingestTopic == "" {
		return
	}
	if err := g.pipe.handle(g.sensorDevice(rs), rs.clientID, rs.ingestTopic, payload); err != nil {
		rs.sup.Log.Warn("sensor status not accepted", "sensor", rs.sup.Name, "topic", rs.ingestTopic, "err", err)
	}
}

// sensorCollector exports each supervisor's counters, read per scrape.
type sensorCollector struct {
	sensors []*runningSensor
}

var sensorDescs = struct{ readings, errors, reports, up, skipped *prometheus.Desc }{
	readings: desc("flowgate_sensor_readings_total", "Readings taken from sensors wired to the gateway.", "sensor"),
	errors:   desc("flowgate_sensor_errors_total", "Failed opens and reads of a sensor (each retried after a backoff).", "sensor"),
	reports:  desc("flowgate_sensor_failing_total", "Times a sensor was reported failing (failed several times in a row, or its bus is missing).", "sensor"),
	up:       desc("flowgate_sensor_up", "0 while a sensor is reported failing, else 1.", "sensor"),
	skipped:  desc("flowgate_sensor_skipped_total", "Input a sensor skipped: GPS lines with a bad checksum, garbage or of an unsupported type; RFID reads a tag did not finish.", "sensor", "reason"),
}

func (c *sensorCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *sensorCollector) Collect(ch chan<- prometheus.Metric) {
	d := &sensorDescs
	for _, rs := range c.sensors {
		name := rs.sup.Name
		st := rs.sup.Stats()
		ch <- prometheus.MustNewConstMetric(d.readings, prometheus.CounterValue, float64(st.Readings), name)
		ch <- prometheus.MustNewConstMetric(d.errors, prometheus.CounterValue, float64(st.Errors), name)
		ch <- prometheus.MustNewConstMetric(d.reports, prometheus.CounterValue, float64(st.Reports), name)
		ch <- prometheus.MustNewConstMetric(d.up, prometheus.GaugeValue, b2f(!st.Failing), name)
		skipped := rs.src.Skipped()
		for _, reason := range sensors.SkipReasons(rs.src.Kind()) {
			ch <- prometheus.MustNewConstMetric(d.skipped, prometheus.CounterValue, float64(skipped[reason]), name, reason)
		}
	}
}

// piHardware lends sensors the buses, ports and pins of this machine:
// periph's registries for I²C, SPI and GPIO, go.bug.st/serial for UARTs
// (periph v3 has none). periph's host drivers are loaded on first use, so
// a gateway with only simulated sensors never probes the hardware.
type piHardware struct {
	log     *slog.Logger
	once    sync.Once
	initErr error
}

func (h *piHardware) init() error {
	h.once.Do(func() {
		state, err := host.Init()
		if err != nil {
			h.initErr = fmt.Errorf("gateway: periph host: %w", err)
			return
		}
		var loaded []string
		for _, d := range state.Loaded {
			loaded = append(loaded, d.String())
		}
		h.log.Info("periph host drivers loaded", "drivers", loaded, "i2c", len(i2creg.All()), "spi", len(spireg.All()))
	})
	return h.initErr
}

// I2C opens an I²C bus by name, alias or number ("1", "I2C1", "/dev/i2c-1").
func (h *piHardware) I2C(bus string) (i2c.BusCloser, error) {
	if err := h.init(); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range i2creg.All() {
		if refNamed(bus, r.Name, r.Aliases, r.Number) {
			return i2creg.Open(bus)
		}
		names = append(names, r.Name)
	}
	return nil, missing("I²C bus", bus, names, "enable it with dtparam=i2c_arm=on in /boot/firmware/config.txt")
}

// SPI opens an SPI port by name, alias or number ("SPI0.0", "/dev/spidev0.0").
func (h *piHardware) SPI(port string) (spi.PortCloser, error) {
	if err := h.init(); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range spireg.All() {
		if refNamed(port, r.Name, r.Aliases, r.Number) {
			return spireg.Open(port)
		}
		names = append(names, r.Name)
	}
	return nil, missing("SPI port", port, names, "enable it with dtparam=spi=on in /boot/firmware/config.txt")
}

// Pin returns a GPIO pin by name ("GPIO25").
func (h *piHardware) Pin(name string) (gpio.PinIO, error) {
	if err := h.init(); err != nil {
		return nil, err
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	return nil, missing("GPIO pin", name, nil, "pins are named GPIO0 to GPIO27 on a Pi")
}

// Serial opens a serial port, with a read timeout so that a silent
// receiver is noticed and a stop is not held up.
func (h *piHardware) Serial(port string, baud int) (io.ReadCloser, error) {
	p, err := serial.Open(port, &serial.Mode{BaudRate: baud})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missing("serial port", port, nil, "enable the UART with enable_uart=1 and no serial console")
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: serial port %s: %w", port, err)
	}
	if err := p.SetReadTimeout(time.Second); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("gateway: serial port %s: %w", port, err)
	}
	return p, nil
}

// refNamed reports whether want names a periph bus: by name, alias or
// number.
func refNamed(want, name string, aliases []string, number int) bool {
	return want == name || slices.Contains(aliases, want) || number >= 0 && want == strconv.Itoa(number)
}

// missing is the error for a bus, port or pin this machine does not have:
// it names it, says what there is, and how to get it or do without.
func missing(what, name string, have []string, hint string) error {
	there := "this machine has none"
	if len(have) > 0 {
		there = "this machine has " + strings.Join(have, ", ")
	}
	return &sensors.NoBusError{What: what, Name: name,
		Hint: there + "; on a Pi, " + hint + "; or set simulated: true to run without it"}
}
