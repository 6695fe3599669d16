package sensors_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spitest"

	"github.com/flowgate/flowgate/sensors"
	"github.com/flowgate/flowgate/sensors/sensorstest"
)

const track = "../configs/tracks/depot-loop.geojson"

// spec is a driver's defaults with a name and the edits applied.
func spec(name, driver string, simulated bool, edit func(*sensors.Spec)) sensors.Spec {
	s := sensors.Default(driver, simulated)
	s.Name = name
	if edit != nil {
		edit(&s)
	}
	return s
}

func keys(ps []sensors.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Key)
	}
	slices.Sort(out)
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		spec sensors.Spec
		want []string
	}{
		{spec("env", "bme280", false, nil), nil},
		{spec("rfid", "mfrc522", false, nil), nil},
		{spec("gps", "nmea", false, nil), nil},
		{spec("gps", "nmea", true, func(s *sensors.Spec) { s.Sim.Track = track }), nil},
		{spec("x", "ds18b20", false, nil), []string{"driver"}},
		{spec("", "bme280", false, func(s *sensors.Spec) {
			s.Address, s.Bus, s.PollInterval = 0x40, "", 0
			s.Oversampling = map[string]string{"temperature": "off", "pressure": "3x", "light": "1x"}
			s.Filter, s.Calibration = 16, sensors.Calibration{"altitude": 1}
		}), []string{"address", "bus", "calibration.altitude", "name", "options.oversampling.light",
			"options.oversampling.pressure", "options.oversampling.temperature", "options.standby", "poll_interval"}},
		{spec("env", "bmp280", true, func(s *sensors.Spec) {
			s.Oversampling = map[string]string{"humidity": "1x"}
			s.Calibration = sensors.Calibration{"humidity": 1}
			s.Sim.Noise = map[string]float64{"temperature": -1}
			s.Sim.Excursions = []sensors.SimExcursion{{Field: "temperature", For: time.Minute, Every: time.Second}}
		}), []string{"calibration.humidity", "options.oversampling.humidity", "sim.excursions[0].every", "sim.noise.temperature"}},
		{spec("rfid", "mfrc522", false, func(s *sensors.Spec) {
			s.Bus, s.ResetPin, s.IRQPin, s.ReadTimeout, s.AntennaGain = "", "", "", 0, 9
		}), []string{"bus", "irq_pin", "options.antenna_gain", "read_timeout", "reset_pin"}},
		{spec("rfid", "mfrc522", true, nil), []string{"sim.tags"}},
		{spec("rfid", "mfrc522", true, func(s *sensors.Spec) {
			s.Sim.Tags = []sensors.SimTag{{Tag: "04A1B2", For: time.Millisecond}}
		}), []string{"sim.tags[0].for", "sim.tags[0].tag"}},
		{spec("gps", "nmea", true, func(s *sensors.Spec) { s.Baud, s.PollInterval, s.Sim.Speed = 9601, 0, 0 }),
			[]string{"baud", "poll_interval", "sim.speed", "sim.track"}},
		{spec("gps", "nmea", false, func(s *sensors.Spec) { s.Port, s.Sim.Track = "", "nowhere.geojson" }),
			[]string{"port", "sim.track"}},
	} {
		if got := keys(sensors.Check(tc.spec)); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: problems at %q, want %q\n%v", tc.spec.Driver, tc.spec.Name, got, tc.want, sensors.Check(tc.spec))
		}
	}
}

func deps(hw sensors.Hardware, clk sensors.Clock) sensors.Deps {
	return sensors.Deps{Hardware: hw, Clock: clk}
}

// read opens src, reads it once and closes it.
func read(t *testing.T, src *sensors.Source) (string, error) {
	t.Helper()
	s, err := src.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	r, err := s.Read(context.Background())
	return string(r.AppendJSON(nil)), err
}

// A BME280 on a borrowed bus, calibrated; closing the sensor gives the
// bus back, and the playback checks every register operation was played.
func TestHardwareEnvironment(t *testing.T) {
	c := &sensorstest.BME280{Addr: 0x77, ChipID: 0x60, Cal: sensorstest.DatasheetCalibration,
		RawT: 519888, RawP: 415148, RawH: 27700}
	bus := &i2ctest.Playback{DontPanic: true, Ops: append(c.Init(1, 1, 1, 0xA0, false), c.Forced(1, 1)...)}
	var opened []string
	hw := &sensorstest.Hardware{OpenI2C: func(name string) (i2c.BusCloser, error) {
		opened = append(opened, name)
		return bus, nil
	}}
	src, err := sensors.New(spec("cab", "bme280", false, func(s *sensors.Spec) {
		s.Address, s.Calibration = 0x77, sensors.Calibration{"temperature": -0.5, "pressure": 1.5}
	}), deps(hw, sensorstest.NewClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := read(t, src)
	if err != nil || got != `{"temperature":24.58,"pressure":1008.03,"humidity":44.98}` {
		t.Errorf("got %s, %v", got, err)
	}
	if !slices.Equal(opened, []string{"1"}) || bus.Count != len(bus.Ops) {
		t.Errorf("opened %q, %d of %d operations played", opened, bus.Count, len(bus.Ops))
	}
}

// A second environment chip, the AHT20, is a model and a registry line:
// periph's aht20 driver on a borrowed bus, temperature and humidity, no
// pressure in the payload or its calibration, and none of the BME280's
// options.
func TestHardwareAHT20(t *testing.T) {
	c := &sensorstest.AHT20{RawH: 471859, RawT: 374866} // 45 %RH, 21.5 °C
	bus := &i2ctest.Playback{DontPanic: true, Ops: append(c.Init(), c.Measure()...)}
	hw := &sensorstest.Hardware{OpenI2C: func(string) (i2c.BusCloser, error) { return bus, nil }}
	s := spec("shelf", "aht20", false, func(s *sensors.Spec) { s.Calibration = sensors.Calibration{"temperature": -0.5} })
	if s.Address != 0x38 || s.Oversampling != nil || len(s.Sim.Base) != 2 {
		t.Errorf("defaults %+v", s)
	}
	src, err := sensors.New(s, deps(hw, sensorstest.NewClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := read(t, src)
	if err != nil || got != `{"temperature":21,"humidity":45}` {
		t.Errorf("got %s, %v", got, err)
	}
	if bus.Count != len(bus.Ops) {
		t.Errorf("%d of %d operations played", bus.Count, len(bus.Ops))
	}
	bad := spec("shelf", "aht20", true, func(s *sensors.Spec) {
		s.Address, s.Calibration = 0x76, sensors.Calibration{"pressure": 1}
		s.Sim.Base["pressure"] = 1013
	})
	if got, want := keys(sensors.Check(bad)), []string{"address", "calibration.pressure", "sim.base.pressure"}; !slices.Equal(got, want) {
		t.Errorf("problems at %q, want %q", got, want)
	}
	if keys := sensors.Keys("aht20"); slices.Contains(keys, "options.oversampling") || !slices.Contains(keys, "calibration") {
		t.Errorf("keys %q", keys)
	}
}

// On a machine without the bus, opening fails naming the sensor and its
// bus (for an RFID reader the SPI port, not one of its pins).
func TestMissingBus(t *testing.T) {
	for _, tc := range []struct {
		spec sensors.Spec
		want string
	}{
		{spec("cab", "bme280", false, nil), `sensors: cab: I²C bus "1" not found`},
		{spec("door", "mfrc522", false, nil), `sensors: door: SPI port "SPI0.0" not found`},
		{spec("gps", "nmea", false, nil), `sensors: gps: serial port "/dev/serial0" not found`},
	} {
		src, err := sensors.New(tc.spec, deps(&sensorstest.Hardware{}, sensorstest.NewClock(t0)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Open()
		if !errors.Is(err, sensors.ErrNoBus) || err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s…", tc.spec.Driver, err, tc.want)
		}
	}
	// An SPI port without its pins is given back.
	port := &spitest.Playback{}
	closed := false
	hw := &sensorstest.Hardware{OpenSPI: func(string) (spi.PortCloser, error) {
		return closer{port, func() { closed = true }}, nil
	}}
	src, err := sensors.New(spec("door", "mfrc522", false, nil), deps(hw, sensorstest.NewClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Open(); !errors.Is(err, sensors.ErrNoBus) || !strings.Contains(err.Error(), `GPIO pin "GPIO25"`) || !closed {
		t.Errorf("no pins: %v, port closed %v", err, closed)
	}
	if _, err := sensors.New(spec("cab", "bme280", false, nil), deps(nil, sensorstest.NewClock(t0))); err == nil {
		t.Error("a hardware sensor without hardware was accepted")
	}
}

func TestHardwareRFID(t *testing.T) {
	s := &sensorstest.MFRC522{Gain: 4}
	s.Init()
	s.Version(0x92)
	s.WaitForTag()
	s.SelectUID([]byte{0x04, 0xA1, 0xB2, 0xC3})
	s.WaitForTag() // the tag has gone
	s.PowerDown()
	port := &spitest.Playback{Playback: conntest.Playback{Ops: s.Ops, DontPanic: true}}
	reads := 0
	irq := &sensorstest.Pin{N: "GPIO24", Edge: func(d time.Duration) bool {
		if d == 0 {
			return false
		}
		reads++
		return reads == 1
	}}
	hw := &sensorstest.Hardware{
		OpenSPI: func(string) (spi.PortCloser, error) { return port, nil },
		OpenPin: func(name string) (gpio.PinIO, error) {
			if name == "GPIO24" {
				return irq, nil
			}
			return &sensorstest.Pin{N: name}, nil
		},
	}
	src, err := sensors.New(spec("dock-door", "mfrc522", false, nil), deps(hw, sensorstest.NewClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	sensor, err := src.Open()
	if err != nil {
		t.Fatal(err)
	}
	r, err := sensor.Read(context.Background())
	if got := string(r.AppendJSON(nil)); err != nil || got != `{"tag":"04A1B2C3","reader":"dock-door"}` {
		t.Errorf("got %s, %v", got, err)
	}
	if _, err := sensor.Read(context.Background()); !errors.Is(err, sensors.ErrNoReading) {
		t.Errorf("no tag: %v", err)
	}
	if err := sensor.Close(); err != nil {
		t.Errorf("close: %v (the port is closed, so every operation must have been played)", err)
	}
}

// closer is an SPI port that records its Close.
type closer struct {
	spi.PortCloser
	onClose func()
}

func (c closer) Close() error { c.onClose(); return c.PortCloser.Close() }

// nopCloser is a serial port made of a string.
type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

func TestHardwareGPS(t *testing.T) {
	lines := "$GPGGA,064951.000,2307.1256,N,12016.4438,E,1,8,0.95,39.9,M,17.8,M,,*63\r\n" +
		"$GPGSA,A,3,29,21,26,15,18,09,06,10,,,,,2.32,0.95,2.11*01\r\n" + // bad checksum
		"$GPRMC,064951.000,A,2307.1256,N,12016.4438,E,0.03,165.48,260406,3.05,W,A*2C\r\n"
	hw := &sensorstest.Hardware{OpenSerial: func(port string, baud int) (io.ReadCloser, error) {
		if port != "/dev/serial0" || baud != 9600 {
			t.Errorf("opened %s at %d", port, baud)
		}
		return nopCloser{strings.NewReader(lines)}, nil
	}}
	src, err := sensors.New(spec("van", "nmea", false, func(s *sensors.Spec) {
		s.Calibration = sensors.Calibration{"altitude": -17.8}
	}), deps(hw, sensorstest.NewClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := read(t, src)
	want := `{"fix":true,"lat":23.11876,"lon":120.2740633,"altitude":22.1,"speed":0.015,"course":165.48,"satellites":8,"hdop":0.95,"receiver_time":"2006-04-26T06:49:51Z"}`
	if err != nil || got != want {
		t.Errorf("got  %s, %v\nwant %s", got, err, want)
	}
	if sk := src.Skipped(); sk["checksum"] != 1 || sk["garbage"] != 0 {
		t.Errorf("skipped %v", sk)
	}
}

// Simulated sources need no hardware and take the same path.
func TestSimulated(t *testing.T) {
	clk := sensorstest.NewClock(t0)
	for _, tc := range []struct {
		spec sensors.Spec
		want string
	}{
		{spec("cab", "bme280", true, func(s *sensors.Spec) {
			s.Sim.Noise, s.Calibration = nil, sensors.Calibration{"humidity": 1}
		}), `{"temperature":21,"pressure":1013.25,"humidity":46}`},
		{spec("cab", "bmp280", true, func(s *sensors.Spec) {
			s.Sim.Noise = nil
			s.Sim.Excursions = []sensors.SimExcursion{{Field: "temperature", For: time.Minute, Delta: 8}}
		}), `{"temperature":29,"pressure":1013.25}`},
		{spec("shelf", "aht20", true, func(s *sensors.Spec) { s.Sim.Noise = nil }),
			`{"temperature":21,"humidity":45}`},
		{spec("door", "mfrc522", true, func(s *sensors.Spec) {
			s.Sim.Tags = []sensors.SimTag{{Tag: "04:5a:21:8a:3c:62:80", For: time.Second}}
		}), `{"tag":"045A218A3C6280","reader":"door"}`},
		{spec("van", "nmea", true, func(s *sensors.Spec) { s.Sim.Track = track }),
			`{"fix":true,"lat":51.9225,"lon":4.47925,"altitude":2,"speed":10,"course":69.25,"satellites":9,"hdop":0.9,"receiver_time":"2024-05-14T10:00:00Z"}`},
	} {
		src, err := sensors.New(tc.spec, deps(nil, clk))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := read(t, src); err != nil || got != tc.want {
			t.Errorf("%s:\ngot  %s, %v\nwant %s", tc.spec.Driver, got, err, tc.want)
		}
	}
}
