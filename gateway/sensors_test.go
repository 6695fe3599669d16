package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/sensors"
	"github.com/flowgate/flowgate/sensors/sensorstest"
)

// sensorConfig has one simulated sensor of each kind reporting as a
// registered device, and a hardware sensor on a machine without its bus.
// Every sensor event is routed to a local topic.
const sensorConfig = `gateway: {id: gw-test, shutdown_timeout: 5s}
broker: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
devices:
  - id: van-7
    password_hash: "$2a$10$kYSwwUecsyLb7S1Gj/nYc.3gpwJ.P35pJU3nqhtckDQbZwFEEKmgq"
ingest:
  topics:
    - {match: sensors/+/env, type: env.reading}
    - {match: sensors/+/gps, type: gps.fix}
    - {match: sensors/+/rfid, type: rfid.read}
    - {match: sensors/+/status, type: sensor.status}
routes:
  - name: all
    types: [env.reading, gps.fix, rfid.read, sensor.status]
    to: [local]
    local_topic: out/{type}/{subject}
uplink: {url: "mqtt://127.0.0.1:1", store_dir: memory}
sensors:
  - name: cab
    driver: bme280
    simulated: true
    device: van-7
    poll_interval: 5ms
    calibration: {temperature: -1}
    sim: {noise: {temperature: 0, pressure: 0, humidity: 0}}
  - name: dock-door
    driver: mfrc522
    simulated: true
    poll_interval: 5ms
    sim: {tags: [{tag: 04a1b2c3, for: 1h}]}
  - name: gps
    driver: nmea
    simulated: true
    device: van-7
    poll_interval: 5ms
    sim: {track: TRACK}
  - name: cellar
    driver: bme280
    device: van-7
`

// received collects what arrives on local topics, by topic.
type received struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

func (r *received) add(topic string, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[topic] = append([]byte(nil), payload...)
}

func (r *received) get(topic string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[topic]
}

// waitFor polls until every topic has had a message, or fails after ten
// seconds.
func (r *received) waitFor(t *testing.T, topics ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for ; time.Now().Before(deadline); <-tick.C {
		missing := 0
		for _, tp := range topics {
			if r.get(tp) == nil {
				missing++
			}
		}
		if missing == 0 {
			return
		}
	}
	t.Fatalf("not all of %q arrived; got %d topics", topics, len(r.msgs))
}

// waitMatch polls until the last message on topic contains every one of
// want, or fails after ten seconds, and returns it.
func (r *received) waitMatch(t *testing.T, topic string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last string
	for ; time.Now().Before(deadline); <-tick.C {
		last = string(r.get(topic))
		matched := last != ""
		for _, w := range want {
			matched = matched && strings.Contains(last, w)
		}
		if matched {
			return last
		}
	}
	t.Fatalf("%s: last message %q, want one containing %q", topic, last, want)
	return ""
}

// startSensorGateway runs a gateway with sensorConfig on a machine without
// any bus, everything local collected from before it starts. stop cancels
// it and returns Run's error.
func startSensorGateway(t *testing.T) (*Gateway, *received, func() error) {
	t.Helper()
	track, err := filepath.Abs("../configs/tracks/depot-loop.geojson")
	if err != nil {
		t.Fatal(err)
	}
	return runSensorGateway(t, strings.Replace(sensorConfig, "TRACK", track, 1),
		&sensorRuntime{hw: &sensorstest.Hardware{}}) // a laptop: no bus at all
}

// runSensorGateway runs a gateway with cfg and the sensor runtime rt (nil:
// the real one, periph and go.bug.st/serial on this machine's buses).
func runSensorGateway(t *testing.T, yaml string, rt *sensorRuntime) (*Gateway, *received, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flowgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	g.sensors = rt
	got := &received{msgs: map[string][]byte{}}
	for _, f := range []string{"out/#", "flowgate/sensors/+/status"} {
		if err := g.Subscribe(f, got.add); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	return g, got, func() error {
		cancel()
		return <-done
	}
}

// Readings of simulated sensors become canonical events through the same
// pipeline as device publishes, for the device they report as; a sensor
// whose bus is missing is reported failing without stopping the others.
func TestSensorsThroughPipeline(t *testing.T) {
	g, got, stop := startSensorGateway(t)
	got.waitFor(t, "out/env.reading/van-7", "out/gps.fix/van-7", "out/rfid.read/dock-door",
		"out/sensor.status/van-7", "flowgate/sensors/cellar/status")
	checkEvent(t, got.get("out/env.reading/van-7"), "/gateways/gw-test/devices/van-7",
		`{"temperature":20,"pressure":1013.25,"humidity":45}`)
	checkEvent(t, got.get("out/rfid.read/dock-door"), "/gateways/gw-test/devices/dock-door",
		`{"tag":"04A1B2C3","reader":"dock-door"}`)
	var fix struct {
		Fix   bool    `json:"fix"`
		Lat   float64 `json:"lat"`
		Speed float64 `json:"speed"`
		Time  string  `json:"receiver_time"`
	}
	if err := json.Unmarshal(data(t, got.get("out/gps.fix/van-7")), &fix); err != nil || !fix.Fix ||
		fix.Lat < 51.9 || fix.Lat > 51.93 || fix.Speed != 10 || fix.Time == "" {
		t.Errorf("gps fix %+v, %v", fix, err)
	}
	status := string(got.get("flowgate/sensors/cellar/status"))
	if !strings.Contains(status, `"state":"failing"`) || !strings.Contains(status, `"error":"sensors: cellar: I²C bus \"1\" not found`) {
		t.Errorf("status %s", status)
	}
	checkSensorMetrics(t, g)
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	if err := g.stopSensors(context.Background()); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

// data returns the data of a CloudEvent.
func data(t *testing.T, ev []byte) json.RawMessage {
	t.Helper()
	var e struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ev, &e); err != nil {
		t.Fatalf("event %s: %v", ev, err)
	}
	return e.Data
}

func checkEvent(t *testing.T, ev []byte, source, payload string) {
	t.Helper()
	var e struct {
		Source string          `json:"source"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ev, &e); err != nil || e.Source != source || string(e.Data) != payload {
		t.Errorf("event %s, want source %s and data %s", ev, source, payload)
	}
}

// checkSensorMetrics looks for the sensors' series on /metrics.
func checkSensorMetrics(t *testing.T, g *Gateway) {
	t.Helper()
	if v := metric(t, g, "flowgate_sensor_readings_total", "cab"); v < 1 {
		t.Errorf("readings of cab: %v", v)
	}
	if up, reports := metric(t, g, "flowgate_sensor_up", "cellar"), metric(t, g, "flowgate_sensor_failing_total", "cellar"); up != 0 || reports != 1 {
		t.Errorf("cellar: up %v, reported failing %v times", up, reports)
	}
	if v := metric(t, g, "flowgate_sensor_skipped_total", "gps"); v != 0 {
		t.Errorf("gps skipped %v lines of the simulated receiver", v)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// A bus this machine does not have is named, with what there is and how
// to get it; the error is sensors.ErrNoBus, so the sensor is reported at
// once.
func TestMissingBusMessage(t *testing.T) {
	err := missing("I²C bus", "1", []string{"/dev/i2c-20", "/dev/i2c-21"}, "enable it with dtparam=i2c_arm=on")
	want := `I²C bus "1" not found: this machine has /dev/i2c-20, /dev/i2c-21; on a Pi, enable it with dtparam=i2c_arm=on; or set simulated: true to run without it`
	if !errors.Is(err, sensors.ErrNoBus) || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if err := missing("GPIO pin", "GPIO99", nil, "x"); !strings.Contains(err.Error(), "this machine has none") {
		t.Errorf("got %v", err)
	}
	for _, tc := range []struct {
		want string
		ok   bool
	}{{"1", true}, {"I2C1", true}, {"/dev/i2c-1", true}, {"2", false}, {"-1", false}} {
		if refNamed(tc.want, "/dev/i2c-1", []string{"I2C1"}, 1) != tc.ok {
			t.Errorf("refNamed(%q) != %v", tc.want, tc.ok)
		}
	}
	if refNamed("-1", "/dev/spidev0.1", []string{"SPI0.1"}, -1) {
		t.Error("an unnumbered port matched -1")
	}
}

// hardwareConfig has one BME280 wired to the gateway, its health routed to
// a local topic as an event.
const hardwareConfig = `gateway: {id: gw-test, shutdown_timeout: 5s}
broker: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
ingest:
  topics:
    - {match: sensors/+/env, type: env.reading}
    - {match: sensors/+/status, type: sensor.status}
routes:
  - name: all
    types: [env.reading, sensor.status]
    to: [local]
    local_topic: out/{type}/{subject}
uplink: {url: "mqtt://127.0.0.1:1", store_dir: memory}
sensors:
  - name: cellar
    driver: bme280
    address: 0x77
    poll_interval: 10s
`

// metric returns the value of a sensor's series, or -1 without one.
func metric(t *testing.T, g *Gateway, name, sensor string) float64 {
	t.Helper()
	families, err := g.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "sensor") == sensor {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// A sensor whose bus is missing is reported failing (retained status,
// event, metrics); once the bus is there, the next attempt after the
// backoff reads the real bmxx80 driver over a playback bus, and the sensor
// is reported back without restarting anything. The clock is manual: no
// backoff is waited for in real time.
func TestSensorRecoversWithHardware(t *testing.T) {
	clk := sensorstest.NewClock(time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC))
	chip := &sensorstest.BME280{Addr: 0x77, ChipID: 0x60, Cal: sensorstest.DatasheetCalibration,
		RawT: 519888, RawP: 415148, RawH: 27700}
	var present atomic.Bool
	hw := &sensorstest.Hardware{OpenI2C: func(bus string) (i2c.BusCloser, error) {
		if !present.Load() {
			return nil, sensorstest.NoBus("I²C bus", bus)
		}
		return &i2ctest.Playback{DontPanic: true, Ops: append(chip.Init(1, 1, 1, 0xA0, false), chip.Forced(1, 1)...)}, nil
	}}
	g, got, stop := runSensorGateway(t, hardwareConfig, &sensorRuntime{hw: hw, clock: clk})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	if d := clk.NextWait(t); d != sensors.DefaultMinBackoff {
		t.Errorf("first retry in %s, want %s", d, sensors.DefaultMinBackoff)
	}
	got.waitMatch(t, "flowgate/sensors/cellar/status", `"state":"failing"`, `I²C bus \"1\" not found`)
	got.waitMatch(t, "out/sensor.status/cellar", `"state":"failing"`, `"since":"2024-05-14T10:00:00Z"`)
	if up, failing := metric(t, g, "flowgate_sensor_up", "cellar"), metric(t, g, "flowgate_sensor_failing_total", "cellar"); up != 0 || failing != 1 {
		t.Errorf("while failing: up %v, failing_total %v", up, failing)
	}

	present.Store(true) // the bus is back
	clk.Advance(sensors.DefaultMinBackoff)
	if d := clk.NextWait(t); d != 10*time.Second {
		t.Errorf("after recovering, next read in %s, want the poll interval", d)
	}
	got.waitMatch(t, "flowgate/sensors/cellar/status", `"state":"ok"`, `"since":"2024-05-14T10:00:01Z"`)
	got.waitMatch(t, "out/sensor.status/cellar", `"state":"ok"`)
	got.waitMatch(t, "out/env.reading/cellar", `"data":{"temperature":25.08,"pressure":1006.53,"humidity":`)
	for name, want := range map[string]float64{"flowgate_sensor_up": 1, "flowgate_sensor_failing_total": 1,
		"flowgate_sensor_errors_total": 1, "flowgate_sensor_readings_total": 1} {
		if v := metric(t, g, name, "cellar"); v != want {
			t.Errorf("after recovering: %s %v, want %v", name, v, want)
		}
	}
}

// On this machine, through periph's host.Init and go.bug.st/serial (no
// fakes), a hardware sensor whose bus is missing is reported failing with
// a message naming the bus and how to get it; the gateway runs on.
func TestMissingBusOnThisMachine(t *testing.T) {
	for _, dev := range []string{"/dev/i2c-1", "/dev/spidev0.0"} {
		if _, err := os.Stat(dev); err == nil {
			t.Skipf("%s exists: this machine has the buses", dev)
		}
	}
	port := filepath.Join(t.TempDir(), "ttyGPS") // never created
	cfg := strings.Replace(hardwareConfig, "    - {match: sensors/+/status", "    - {match: sensors/+/rfid, type: rfid.read}\n    - {match: sensors/+/gps, type: gps.fix}\n    - {match: sensors/+/status", 1) +
		"  - {name: door, driver: mfrc522}\n  - {name: gps, driver: nmea, port: " + port + "}\n"
	_, got, stop := runSensorGateway(t, cfg, nil)
	for sensor, want := range map[string]string{
		"cellar": `I²C bus \"1\" not found`,
		"door":   `SPI port \"SPI0.0\" not found`,
		"gps":    `serial port \"` + port + `\" not found`,
	} {
		status := got.waitMatch(t, "flowgate/sensors/"+sensor+"/status", `"state":"failing"`, want)
		if !strings.Contains(status, "on a Pi, enable") || !strings.Contains(status, "or set simulated: true") {
			t.Errorf("%s: %s, want how to get the bus or do without", sensor, status)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}
