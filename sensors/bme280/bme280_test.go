package bme280_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/flowgate/flowgate/sensors/bme280"
	"github.com/flowgate/flowgate/sensors/sensorstest"
)

// chip is the BME280 of the datasheet's worked example at 45 %RH.
func chip() *sensorstest.BME280 {
	return &sensorstest.BME280{Addr: 0x76, ChipID: 0x60, Cal: sensorstest.DatasheetCalibration,
		RawT: 519888, RawP: 415148, RawH: 27700}
}

// humidityReference is the datasheet's floating-point humidity
// compensation (BME280 §4.2.3), independent of the driver's integer one.
func humidityReference(c sensorstest.BME280Calibration, rawT int32, rawH uint16) float64 {
	t1, t2, t3 := float64(c.T1), float64(c.T2), float64(c.T3)
	v1 := (float64(rawT)/16384 - t1/1024) * t2
	v2 := math.Pow(float64(rawT)/131072-t1/8192, 2) * t3
	h := v1 + v2 - 76800
	h = (float64(rawH) - (float64(c.H4)*64 + float64(c.H5)/16384*h)) *
		(float64(c.H2) / 65536 * (1 + float64(c.H6)/67108864*h*(1+float64(c.H3)/67108864*h)))
	h *= 1 - float64(c.H1)*h/524288
	return min(max(h, 0), 100)
}

func celsius(t physic.Temperature) float64 {
	return float64(t-physic.ZeroCelsius) / float64(physic.Celsius)
}

// The real bmxx80 code, in forced mode, reads the datasheet's values.
func TestForcedBME280(t *testing.T) {
	c := chip()
	bus := &i2ctest.Playback{DontPanic: true,
		Ops: append(c.Init(1, 1, 1, 0xA0, false), c.Forced(1, 1)...)}
	dev, err := bme280.NewI2C(bus, 0x76, &bme280.Opts{Temperature: bmxx80.O1x, Pressure: bmxx80.O1x, Humidity: bmxx80.O1x})
	if err != nil {
		t.Fatal(err)
	}
	if !dev.Humidity() {
		t.Error("a BME280 should measure humidity")
	}
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		t.Fatal(err)
	}
	if got := celsius(e.Temperature); math.Abs(got-25.08) > 1e-9 {
		t.Errorf("temperature %v °C, want the datasheet's 25.08", got)
	}
	if got := float64(e.Pressure) / float64(physic.Pascal); math.Abs(got-100653.27) > 0.02 { // the float formula's value; the driver computes in Q24.8
		t.Errorf("pressure %v Pa, want the datasheet's 100653.27", got)
	}
	want := humidityReference(c.Cal, c.RawT, c.RawH)
	if got := float64(e.Humidity) / float64(physic.PercentRH); math.Abs(got-want) > 0.05 || want < 40 {
		t.Errorf("humidity %v %%RH, want %v", got, want)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

// With standby and filter the chip runs on its own (normal mode) and a
// read is one burst of registers; a BMP280 reports no humidity.
func TestNormalModeBMP280(t *testing.T) {
	c := chip()
	c.Addr, c.ChipID = 0x77, 0x58
	// 500 ms standby is code 4, filter 16 code 4: 0x90 in register 0xF5.
	bus := &i2ctest.Playback{DontPanic: true, Ops: append(c.Init(2, 5, 0, 0x90, true), c.Sample()...)}
	dev, err := bme280.NewI2C(bus, 0x77, &bme280.Opts{Chip: bme280.BMP280, Temperature: bmxx80.O2x,
		Pressure: bmxx80.O16x, Humidity: bmxx80.O1x, Filter: bmxx80.F16, Standby: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		t.Fatal(err)
	}
	if dev.Humidity() || e.Humidity != 0 {
		t.Errorf("BMP280 humidity: %v %v", dev.Humidity(), e.Humidity)
	}
	if got := celsius(e.Temperature); math.Abs(got-25.08) > 1e-9 {
		t.Errorf("temperature %v °C", got)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

// A board sold as a BME280 that carries a BMP280 is refused with a
// message saying what to do.
func TestBMP280WhereBME280Expected(t *testing.T) {
	c := chip()
	c.ChipID = 0x58
	bus := &i2ctest.Playback{DontPanic: true, Ops: c.Init(1, 1, 0, 0xA0, false)}
	_, err := bme280.NewI2C(bus, 0x76, &bme280.Opts{Temperature: bmxx80.O1x, Pressure: bmxx80.O1x, Humidity: bmxx80.O1x})
	if err == nil || !strings.Contains(err.Error(), "use driver bmp280") {
		t.Errorf("got %v", err)
	}
}

// Something else at the address, or nothing at all, is an error naming the
// address.
func TestNoChip(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x12}}}}
	_, err := bme280.NewI2C(bus, 0x76, &bme280.Opts{Temperature: bmxx80.O1x})
	if err == nil || !strings.Contains(err.Error(), "0x76") || !strings.HasPrefix(err.Error(), "bme280: ") {
		t.Errorf("wrong chip: %v", err)
	}
	empty := &i2ctest.Playback{DontPanic: true}
	if _, err := bme280.NewI2C(empty, 0x77, &bme280.Opts{Temperature: bmxx80.O1x}); err == nil {
		t.Error("no chip: no error")
	}
}

func TestParseOptions(t *testing.T) {
	for s, want := range map[string]bmxx80.Oversampling{"off": bmxx80.Off, "1x": bmxx80.O1x, "16X": bmxx80.O16x} {
		if got, err := bme280.ParseOversampling(s); err != nil || got != want {
			t.Errorf("ParseOversampling(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "3x", "32x", "x"} {
		if _, err := bme280.ParseOversampling(s); err == nil {
			t.Errorf("ParseOversampling(%q) accepted", s)
		}
	}
	for n, want := range map[int]bmxx80.Filter{0: bmxx80.NoFilter, 2: bmxx80.F2, 16: bmxx80.F16} {
		if got, err := bme280.ParseFilter(n); err != nil || got != want {
			t.Errorf("ParseFilter(%d) = %v, %v", n, got, err)
		}
	}
	if _, err := bme280.ParseFilter(3); err == nil {
		t.Error("ParseFilter(3) accepted")
	}
}
