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
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

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

// startSensorGateway runs a gateway with sensorConfig on a machine without
// any bus, everything local collected from before it starts. stop cancels
// it and returns Run's error.
func startSensorGateway(t *testing.T) (*Gateway, *received, func() error) {
	t.Helper()
	track, err := filepath.Abs("../configs/tracks/depot-loop.geojson")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "flowgate.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(sensorConfig, "TRACK", track, 1)), 0o600); err != nil {
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
	g.sensors = &sensorRuntime{hw: &sensorstest.Hardware{}} // a laptop: no bus at all
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
	families, err := g.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name, sensor string) float64 {
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
	if v := value("flowgate_sensor_readings_total", "cab"); v < 1 {
		t.Errorf("readings of cab: %v", v)
	}
	if up, reports := value("flowgate_sensor_up", "cellar"), value("flowgate_sensor_failing_total", "cellar"); up != 0 || reports != 1 {
		t.Errorf("cellar: up %v, reported failing %v times", up, reports)
	}
	if v := value("flowgate_sensor_skipped_total", "gps"); v != 0 {
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
