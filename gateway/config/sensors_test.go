package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sensorIngest = `ingest:
  topics:
    - {match: devices/+/env, type: env.reading}
    - {match: sensors/+/env, type: env.reading}
    - {match: sensors/+/gps, type: gps.fix}
    - {match: sensors/+/rfid, type: rfid.read}
uplink:
  url: mqtt://127.0.0.1:1883
`

// Absent keys take the driver's defaults; present ones, even zero, are
// kept; the track is found relative to the config file.
func TestSensorDefaults(t *testing.T) {
	dir := t.TempDir()
	track := `{"type":"LineString","coordinates":[[4.47,51.92],[4.48,51.93]]}`
	if err := os.WriteFile(filepath.Join(dir, "route.geojson"), []byte(track), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sensorIngest + `sensors:
  - {name: cab, driver: bme280}
  - name: door
    driver: mfrc522
    simulated: true
    device: dock-door
    sim: {tags: [{tag: 04A1B2C3}]}
  - {name: van, driver: nmea, simulated: true, sim: {track: route.geojson}, options: {}}
  - {name: pi-gps, driver: nmea, poll_interval: 0s, read_timeout: 0s}
`
	c, err := Parse(filepath.Join(dir, "f.yaml"), []byte(cfg), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	env, rfid, gps, pi := c.Sensors[0], c.Sensors[1], c.Sensors[2], c.Sensors[3]
	if env.PollInterval != 10*time.Second || env.Bus != "1" || env.Address != 0x76 || env.Device != "cab" ||
		env.Options.Oversampling["humidity"] != "1x" || c.SensorTopic(0) != "sensors/cab/env" {
		t.Errorf("environment defaults %+v, topic %s", env, c.SensorTopic(0))
	}
	if rfid.Bus != "SPI0.0" || rfid.ResetPin != "GPIO25" || rfid.IRQPin != "GPIO24" || rfid.Options.AntennaGain != 4 ||
		rfid.Sim.Tags[0].For != 1500*time.Millisecond || c.SensorTopic(1) != "sensors/dock-door/rfid" {
		t.Errorf("rfid defaults %+v, topic %s", rfid, c.SensorTopic(1))
	}
	if gps.PollInterval != time.Second || gps.Port != "/dev/serial0" || gps.Baud != 9600 || gps.Sim.Speed != 10 ||
		c.SensorSpec(2).Sim.Track != filepath.Join(dir, "route.geojson") {
		t.Errorf("gps defaults %+v, track %s", gps, c.SensorSpec(2).Sim.Track)
	}
	if pi.PollInterval != 0 || pi.ReadTimeout != 0 {
		t.Errorf("explicit zeros replaced: %+v", pi)
	}
}

// Every problem of every sensor, at its place in the file, naming its key.
func TestSensorValidation(t *testing.T) {
	cfg := sensorIngest + `sensors:
  - name: cab
    driver: bme280
    address: 0x40
    port: /dev/ttyUSB0
    poll_interval: 0s
    options: {oversampling: {pressure: 3x}}
  - {name: cab, driver: ds18b20}
  - name: door
    driver: mfrc522
    topic: rfid/{device}/{nope}
  - name: van
    driver: nmea
    simulated: true
    topic: vans/{device}/position
    sim: {track: missing.geojson, speed: -1}
  - name: bad/name
    driver: mfrc522
    device: "a b"
    simulated: true
    sim: {tags: [{tag: "04", for: 10ms}]}
`
	_, err := Parse("f.yaml", []byte(cfg), noEnv)
	want := []string{
		`f.yaml:12:14: sensors[0].address: 0x40: a BME280 answers at 0x76`,
		`f.yaml:13:11: sensors[0].port: does not apply to driver bme280`,
		`f.yaml:14:20: sensors[0].poll_interval: must be positive`,
		`f.yaml:15:40: sensors[0].options.oversampling.pressure: "3x" must be off, 1x`,
		`f.yaml:16:25: sensors[1].driver: unknown driver "ds18b20" (known: aht20, bme280, bmp280, mfrc522, nmea)`,
		`f.yaml:19:12: sensors[2].topic: "rfid/door/{nope}" must be a topic name`,
		`f.yaml:23:12: sensors[3].topic: readings would be published on "vans/van/position", which no ingest.topics match covers; add one such as {match: vans/+/position, type: gps.fix}`,
		`f.yaml:24:18: sensors[3].sim.track: sim: track`,
		`f.yaml:24:42: sensors[3].sim.speed: must be positive`,
		`f.yaml:25:11: sensors[4].name: "bad/name" must be unique`,
		`f.yaml:27:13: sensors[4].device: "a b" must be a device id`,
		`f.yaml:29:24: sensors[4].sim.tags[0].tag: "04" must be a UID`,
		`f.yaml:29:35: sensors[4].sim.tags[0].for: 10ms must be positive and at least poll_interval`,
	}
	got := problems(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %q\nwant prefix %q", i, got[i], want[i])
		}
	}
}

// The example configs in configs/ pass, and map onto valid specs.
func TestSensorExamples(t *testing.T) {
	for _, name := range []string{"demo.yaml", "sensors-pi.yaml"} {
		c, err := Load(filepath.Join("../../configs", name), func(string) (string, bool) { return "x", true })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.Sensors) < 3 {
			t.Errorf("%s: %d sensors", name, len(c.Sensors))
		}
	}
}
