package sensorstest

import "periph.io/x/conn/v3/conntest"

// MFRC522 scripts, from the chip's side, the SPI exchange periph's mfrc522
// driver has with an NXP MFRC522 and an ISO 14443A tag in its field, for a
// spitest.Playback. Each method appends the operations of one step of the
// driver, register by register (datasheet §8.1.2 for the SPI framing, the
// driver's commands package for the sequences).
type MFRC522 struct {
	Ops  []conntest.IO
	Gain byte // antenna gain the driver writes on init; periph's default is 4

	bitFraming byte // the last value written to BitFramingReg
}

// Registers and commands the exchange uses.
const (
	regCommand    = 0x01
	regCommIEn    = 0x02
	regCommIrq    = 0x04
	regDivIrq     = 0x05
	regError      = 0x06
	regStatus2    = 0x08
	regFIFOData   = 0x09
	regFIFOLevel  = 0x0A
	regControl    = 0x0C
	regBitFraming = 0x0D
	regMode       = 0x11
	regTxControl  = 0x14
	regTxAuto     = 0x15
	regCRCResultM = 0x21
	regCRCResultL = 0x22
	regRFCfg      = 0x26
	regTMode      = 0x2A
	regTPrescaler = 0x2B
	regTReloadH   = 0x2C
	regTReloadL   = 0x2D
	regVersion    = 0x37

	cmdIdle       = 0x00
	cmdCalcCRC    = 0x03
	cmdTransceive = 0x0C
	cmdSoftReset  = 0x0F
)

func (m *MFRC522) write(reg, v byte) {
	m.Ops = append(m.Ops, conntest.IO{W: []byte{reg << 1 & 0x7E, v}})
	if reg == regBitFraming {
		m.bitFraming = v
	}
}

func (m *MFRC522) read(reg, v byte) {
	m.Ops = append(m.Ops, conntest.IO{W: []byte{reg<<1&0x7E | 0x80, 0}, R: []byte{0, v}})
}

// Init is the driver's chip initialisation: soft reset, timer, antenna on.
func (m *MFRC522) Init() {
	m.write(regCommand, cmdSoftReset)
	m.write(regTMode, 0x8D)
	m.write(regTPrescaler, 0x3E)
	m.write(regTReloadL, 30)
	m.write(regTReloadH, 0)
	m.write(regTxAuto, 0x40)
	m.write(regMode, 0x3D)
	m.write(regRFCfg, m.Gain<<4)
	m.read(regTxControl, 0x80) // antennas off, as after a reset
	m.read(regTxControl, 0x80)
	m.write(regTxControl, 0x83)
}

// Version is a read of the version register: 0x91 or 0x92 for an
// MFRC522, 0x00 or 0xFF when nothing answers.
func (m *MFRC522) Version(v byte) { m.read(regVersion, v) }

// WaitForTag is the start of a read: initialise, arm the receive
// interrupt, and send one REQA for a tag to answer. Whether one does is
// the IRQ pin's answer.
func (m *MFRC522) WaitForTag() {
	m.Init()
	m.write(regCommIrq, 0x00)
	m.write(regCommIEn, 0xA0)
	m.write(regFIFOData, 0x26)
	m.write(regCommand, cmdTransceive)
	m.write(regBitFraming, 0x87)
}

// SelectUID is the rest of a read once a tag answered: initialise again,
// REQA, anticollision and select (and the second cascade level for a
// 7-byte UID), then stop crypto. uid is 4 or 7 bytes.
func (m *MFRC522) SelectUID(uid []byte) {
	m.Init()
	m.write(regBitFraming, 0x07)
	m.transceive([]byte{0x26}, []byte{0x44, 0x00}) // ATQA
	cl1 := uid[:4]
	if len(uid) == 7 {
		cl1 = append([]byte{0x88}, uid[:3]...) // cascade tag
	}
	serial := append(cl1[:4:4], bcc(cl1))
	m.write(regBitFraming, 0x00)
	m.transceive([]byte{0x93, 0x20}, serial)
	sel := append([]byte{0x93, 0x70}, serial...)
	m.crc(sel)
	sak := byte(0x08)
	if len(uid) == 7 {
		sak = 0x04 // UID not complete
	}
	m.transceive(append(sel, crcA(sel)...), append([]byte{sak}, crcA([]byte{sak})...))
	if len(uid) == 7 {
		m.write(regBitFraming, 0x00)
		m.transceive([]byte{0x95, 0x20}, append(uid[3:7:7], bcc(uid[3:7])))
	}
	m.read(regStatus2, 0x00) // stop crypto
	m.write(regStatus2, 0x00)
}

// CollidedUID is a read that a tag starts but does not finish cleanly: its
// anticollision answer fails the check byte (another tag answered at the
// same time, or it left the field).
func (m *MFRC522) CollidedUID(uid []byte) {
	m.Init()
	m.write(regBitFraming, 0x07)
	m.transceive([]byte{0x26}, []byte{0x44, 0x00})
	m.write(regBitFraming, 0x00)
	m.transceive([]byte{0x93, 0x20}, append(uid[:4:4], ^bcc(uid[:4])))
}

// PowerDown is the driver's Halt: the soft power-down command.
func (m *MFRC522) PowerDown() { m.write(regCommand, 0x10) }

// transceive is one frame sent to the tag and its answer.
func (m *MFRC522) transceive(data, answer []byte) {
	m.write(regCommIEn, 0xF7)
	m.read(regCommIrq, 0x00)
	m.write(regCommIrq, 0x00)
	m.read(regFIFOLevel, 0x00)
	m.write(regFIFOLevel, 0x80)
	m.write(regCommand, cmdIdle)
	for _, b := range data {
		m.write(regFIFOData, b)
	}
	m.write(regCommand, cmdTransceive)
	bf := m.bitFraming
	m.read(regBitFraming, bf)
	m.write(regBitFraming, bf|0x80) // StartSend
	m.read(regCommIrq, 0x30)        // RxIRq and IdleIRq: the answer is in
	m.read(regBitFraming, bf|0x80)
	m.write(regBitFraming, bf)
	m.read(regError, 0x00)
	m.read(regFIFOLevel, byte(len(answer)))
	m.read(regControl, 0x10) // all bits of the last byte valid
	for _, b := range answer {
		m.read(regFIFOData, b)
	}
}

// crc is the chip computing a CRC_A over data for the driver.
func (m *MFRC522) crc(data []byte) {
	m.read(regDivIrq, 0x00)
	m.write(regDivIrq, 0x00)
	m.read(regFIFOLevel, 0x00)
	m.write(regFIFOLevel, 0x80)
	for _, b := range data {
		m.write(regFIFOData, b)
	}
	m.write(regCommand, cmdCalcCRC)
	m.read(regDivIrq, 0x04) // CRCIRq
	c := crcA(data)
	m.read(regCRCResultL, c[0])
	m.read(regCRCResultM, c[1])
}

// bcc is the block check character of an anticollision answer.
func bcc(b []byte) byte {
	var x byte
	for _, v := range b {
		x ^= v
	}
	return x
}

// crcA is ISO/IEC 14443-3's CRC_A, least significant byte first.
func crcA(data []byte) []byte {
	crc := uint16(0x6363)
	for _, b := range data {
		ch := b ^ byte(crc)
		ch ^= ch << 4
		crc = crc>>8 ^ uint16(ch)<<8 ^ uint16(ch)<<3 ^ uint16(ch)>>4
	}
	return []byte{byte(crc), byte(crc >> 8)}
}
