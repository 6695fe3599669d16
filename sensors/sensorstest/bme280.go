package sensorstest

import (
	"encoding/binary"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// BME280Calibration is a BME280's factory trimming (datasheet §4.2.2).
type BME280Calibration struct {
	T1                             uint16
	T2, T3                         int16
	P1                             uint16
	P2, P3, P4, P5, P6, P7, P8, P9 int16
	H1                             uint8
	H2                             int16
	H3                             uint8
	H4, H5                         int16 // 12 bits each
	H6                             int8
}

// DatasheetCalibration is the worked example of the BMP280 datasheet
// (§3.12): with RawT 519888 and RawP 415148 the chip reads 25.08 °C and
// 100653.27 Pa. Its humidity part is a real BME280's, as recorded in
// periph's own tests.
var DatasheetCalibration = BME280Calibration{
	T1: 27504, T2: 26435, T3: -1000,
	P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
	H1: 75, H2: 366, H3: 0, H4: 309, H5: 0, H6: 30,
}

// BME280 is a BME280 or BMP280 as periph's bmxx80 driver sees it over I²C:
// its methods return the register operations the driver performs, with
// the chip's answers, for an i2ctest.Playback.
type BME280 struct {
	Addr       uint16
	ChipID     byte // 0x60 for a BME280, 0x58 for a BMP280
	Cal        BME280Calibration
	RawT, RawP int32  // 20-bit ADC values
	RawH       uint16 // BME280 only
}

func (b *BME280) bme() bool { return b.ChipID == 0x60 }

// Init is the driver's NewI2C: chip id, calibration, configuration. The
// oversampling values are register codes (1 for 1x … 5 for 16x); config is
// the value written to register 0xF5 (standby and filter); normal is true
// when the driver starts the chip in normal mode (standby and filter set).
func (b *BME280) Init(osrsT, osrsP, osrsH, config byte, normal bool) []i2ctest.IO {
	ops := []i2ctest.IO{
		{Addr: b.Addr, W: []byte{0xD0}, R: []byte{b.ChipID}},
		{Addr: b.Addr, W: []byte{0x88}, R: b.calTP()},
	}
	if b.bme() {
		ops = append(ops, i2ctest.IO{Addr: b.Addr, W: []byte{0xE1}, R: b.calH()})
	}
	mode := byte(0)
	if normal {
		mode = 3
	}
	meas := osrsT<<5 | osrsP<<2
	w := []byte{0xF4, meas}
	if b.bme() {
		w = append(w, 0xF2, osrsH)
	}
	w = append(w, 0xF5, config, 0xF4, meas|mode)
	return append(ops, i2ctest.IO{Addr: b.Addr, W: w})
}

// Forced is one Sense in forced mode: trigger, check the chip is idle,
// read the results.
func (b *BME280) Forced(osrsT, osrsP byte) []i2ctest.IO {
	return append([]i2ctest.IO{
		{Addr: b.Addr, W: []byte{0xF4, osrsT<<5 | osrsP<<2 | 1}},
		{Addr: b.Addr, W: []byte{0xF3}, R: []byte{0}},
	}, b.Sample()...)
}

// Sample is one burst read of the data registers, 0xF7 onwards.
func (b *BME280) Sample() []i2ctest.IO {
	r := []byte{
		byte(b.RawP >> 12), byte(b.RawP >> 4), byte(b.RawP<<4) & 0xF0,
		byte(b.RawT >> 12), byte(b.RawT >> 4), byte(b.RawT<<4) & 0xF0,
	}
	if b.bme() {
		r = binary.BigEndian.AppendUint16(r, b.RawH)
	}
	return []i2ctest.IO{{Addr: b.Addr, W: []byte{0xF7}, R: r}}
}

// calTP is registers 0x88 to 0xA1: T1…P9 little-endian, a reserved byte,
// H1.
func (b *BME280) calTP() []byte {
	c := b.Cal
	var r []byte
	r = binary.LittleEndian.AppendUint16(r, c.T1)
	for _, v := range []int16{c.T2, c.T3} {
		r = binary.LittleEndian.AppendUint16(r, uint16(v))
	}
	r = binary.LittleEndian.AppendUint16(r, c.P1)
	for _, v := range []int16{c.P2, c.P3, c.P4, c.P5, c.P6, c.P7, c.P8, c.P9} {
		r = binary.LittleEndian.AppendUint16(r, uint16(v))
	}
	return append(r, 0, c.H1)
}

// calH is registers 0xE1 to 0xE7: H2, H3, then H4 and H5 packed in 12
// bits each, H6.
func (b *BME280) calH() []byte {
	c := b.Cal
	r := binary.LittleEndian.AppendUint16(nil, uint16(c.H2))
	return append(r, c.H3,
		byte(c.H4>>4), byte(c.H4&0x0F)|byte(c.H5&0x0F)<<4, byte(c.H5>>4),
		byte(c.H6))
}
