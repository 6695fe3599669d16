package mfrc522_test

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi/spitest"

	"github.com/flowgate/flowgate/sensors/mfrc522"
	"github.com/flowgate/flowgate/sensors/sensorstest"
)

// pins are the reset pin and an IRQ pin that signals a tag when told to
// wait for one (a wait of 0 is the driver clearing the interrupt).
func pins(tag bool) (*sensorstest.Pin, *sensorstest.Pin) {
	return &sensorstest.Pin{N: "GPIO25"},
		&sensorstest.Pin{N: "GPIO24", Edge: func(d time.Duration) bool { return tag && d != 0 }}
}

func port(s *sensorstest.MFRC522) *spitest.Playback {
	return &spitest.Playback{Playback: conntest.Playback{Ops: s.Ops, DontPanic: true}}
}

// opened is the script of NewSPI: periph's init with its default gain,
// then the version check.
func opened() *sensorstest.MFRC522 {
	s := &sensorstest.MFRC522{Gain: 4}
	s.Init()
	s.Version(0x92)
	return s
}

// The real periph driver reads 4- and 7-byte UIDs through the exchange;
// the configured antenna gain is what every read's initialisation writes.
func TestReadUID(t *testing.T) {
	for _, tc := range []struct {
		uid  []byte
		gain int
	}{
		{[]byte{0xDE, 0xAD, 0xBE, 0xEF}, 4},
		{[]byte{0x04, 0x5A, 0x21, 0x8A, 0x3C, 0x62, 0x80}, 7}, // an NTAG213 sticker
	} {
		s := opened()
		s.Gain = byte(tc.gain)
		s.WaitForTag()
		s.SelectUID(tc.uid)
		s.PowerDown()
		p := port(s)
		reset, irq := pins(true)
		r, err := mfrc522.NewSPI(p, reset, irq, mfrc522.Opts{ReadTimeout: time.Second, AntennaGain: tc.gain})
		if err != nil {
			t.Fatal(err)
		}
		uid, err := r.ReadUID()
		if err != nil || !bytes.Equal(uid, tc.uid) {
			t.Errorf("ReadUID = % X, %v; want % X", uid, err, tc.uid)
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("exchange not played out: %v", err)
		}
		if outs := reset.Outs(); len(outs) != 1 || outs[0] != gpio.High {
			t.Errorf("reset pin driven %v, want high (out of power-down)", outs)
		}
	}
}

// No tag within the read timeout is no UID and no error.
func TestNoTag(t *testing.T) {
	s := opened()
	s.WaitForTag()
	p := port(s)
	reset, irq := pins(false)
	r, err := mfrc522.NewSPI(p, reset, irq, mfrc522.Opts{ReadTimeout: time.Millisecond, AntennaGain: 4})
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := r.ReadUID(); uid != nil || err != nil {
		t.Errorf("ReadUID = %X, %v; want nothing", uid, err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

// A read a tag does not finish is counted, not an error; a bus that stops
// answering is an error.
func TestBadReadAndBusFailure(t *testing.T) {
	s := opened()
	s.WaitForTag()
	s.CollidedUID([]byte{1, 2, 3, 4})
	p := port(s)
	reset, irq := pins(true)
	var bad atomic.Uint64
	r, err := mfrc522.NewSPI(p, reset, irq, mfrc522.Opts{ReadTimeout: time.Second, AntennaGain: 4, BadReads: &bad})
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := r.ReadUID(); uid != nil || err != nil || bad.Load() != 1 {
		t.Errorf("collided read: %X, %v, %d bad reads", uid, err, bad.Load())
	}
	// The script is over: the next transfer fails like a dead bus.
	uid, err := r.ReadUID()
	if uid != nil || err == nil || !strings.HasPrefix(err.Error(), "mfrc522: ") || bad.Load() != 1 {
		t.Errorf("dead bus: %X, %v, %d bad reads", uid, err, bad.Load())
	}
}

// A port with no reader on it is refused when opened.
func TestNothingAnswers(t *testing.T) {
	s := &sensorstest.MFRC522{Gain: 4}
	s.Init()
	s.Version(0x00)
	reset, irq := pins(false)
	_, err := mfrc522.NewSPI(port(s), reset, irq, mfrc522.Opts{ReadTimeout: time.Second, AntennaGain: 4})
	if err == nil || !strings.Contains(err.Error(), "no chip answers") {
		t.Errorf("got %v", err)
	}
	if _, err := mfrc522.NewSPI(port(s), reset, nil, mfrc522.Opts{}); err == nil {
		t.Error("no IRQ pin accepted")
	}
	if _, err := mfrc522.NewSPI(port(s), reset, irq, mfrc522.Opts{AntennaGain: 8}); err == nil {
		t.Error("gain 8 accepted")
	}
}
