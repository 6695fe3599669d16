package sensorstest

import "periph.io/x/conn/v3/i2c/i2ctest"

// AHT20 is an Aosong AHT20 (temperature and humidity, at 0x38) as periph's
// aht20 driver sees it over I²C: its methods return the operations the
// driver performs, with the chip's answers, for an i2ctest.Playback.
type AHT20 struct {
	RawH, RawT uint32 // 20-bit readings: RH = RawH/2²⁰·100 %, T = RawT/2²⁰·200 − 50 °C
}

// aht20Addr is the AHT20's only address.
const aht20Addr = 0x38

// aht20Ready is a status byte: calibrated (bit 3), not busy (bit 7 clear).
const aht20Ready = 0x18

// Init is the driver's NewI2C on a chip that is already calibrated: one
// status read.
func (a *AHT20) Init() []i2ctest.IO {
	return []i2ctest.IO{{Addr: aht20Addr, W: []byte{0x71}, R: []byte{aht20Ready}}}
}

// Measure is one Sense: the trigger command (datasheet §5.4: 0xAC 0x33
// 0x00), then the six bytes of status and readings and their CRC.
func (a *AHT20) Measure() []i2ctest.IO {
	h, t := a.RawH&0xFFFFF, a.RawT&0xFFFFF
	data := []byte{aht20Ready, byte(h >> 12), byte(h >> 4), byte(h<<4) | byte(t>>16)&0x0F, byte(t >> 8), byte(t)}
	data = append(data, crc8(data))
	return []i2ctest.IO{
		{Addr: aht20Addr, W: []byte{0xAC, 0x33, 0x00}},
		{Addr: aht20Addr, R: data},
	}
}

// crc8 is the datasheet's CRC: polynomial x⁸+x⁵+x⁴+1, initial value 0xFF,
// most significant bit first.
func crc8(data []byte) byte {
	crc := byte(0xFF)
	for _, b := range data {
		crc ^= b
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
