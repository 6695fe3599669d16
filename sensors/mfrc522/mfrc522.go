// Package mfrc522 reads the UIDs of ISO 14443A tags (MIFARE Classic,
// Ultralight, NTAG stickers and cards) with an NXP MFRC522 reader over SPI,
// through periph's mfrc522 driver.
//
// The reader borrows its SPI port and its two GPIO pins: the composition
// root opens them (spireg.Open, gpioreg.ByName) and closes the port after
// Close. Reset (NRSTPD) is driven high to take the chip out of power-down;
// IRQ is where the chip signals that a tag answered, so a read waits on the
// pin, not in a busy loop.
//
//	port, _ := spireg.Open("SPI0.0")
//	r, err := mfrc522.NewSPI(port, gpioreg.ByName("GPIO25"), gpioreg.ByName("GPIO24"),
//		mfrc522.Opts{ReadTimeout: 500 * time.Millisecond})
//	uid, err := r.ReadUID() // nil, nil: no tag in the field
//
// A read returns at most once per call, however long a tag stays on the
// reader: how often to call is the caller's poll interval, and what a
// repeated UID means is for the rules engine.
//
// Datasheet: https://www.nxp.com/docs/en/data-sheet/MFRC522.pdf
package mfrc522

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"
	periph "periph.io/x/devices/v3/mfrc522"
	"periph.io/x/devices/v3/mfrc522/commands"
)

// Opts configures a reader.
type Opts struct {
	// ReadTimeout bounds how long ReadUID waits for a tag.
	ReadTimeout time.Duration
	// AntennaGain is the receiver gain, 0 (18 dB) to 7 (48 dB); periph's
	// default is 4 (33 dB).
	AntennaGain int
	// BadReads, if set, counts reads that a tag started but did not finish
	// cleanly (it left the field, or two tags collided). May be shared.
	BadReads *atomic.Uint64
}

// Reader is one MFRC522.
type Reader struct {
	dev      *periph.Dev
	timeout  time.Duration
	badReads *atomic.Uint64
	halt     sync.Once
}

// NewSPI initialises the chip behind port and checks that it answers: a
// port with nothing on it reads its version register as 0x00 or 0xFF.
func NewSPI(port spi.Port, reset gpio.PinOut, irq gpio.PinIn, o Opts) (*Reader, error) {
	if reset == nil || irq == nil {
		return nil, errors.New("mfrc522: both the reset and the IRQ pin are required")
	}
	if o.AntennaGain < 0 || o.AntennaGain > 7 {
		return nil, fmt.Errorf("mfrc522: antenna gain %d is not in 0..7", o.AntennaGain)
	}
	dev, err := periph.NewSPI(port, reset, irq, periph.WithTimeout(o.ReadTimeout))
	if err != nil {
		return nil, fmt.Errorf("mfrc522: on %s: %w", port, err)
	}
	r := &Reader{dev: dev, timeout: o.ReadTimeout, badReads: o.BadReads}
	if r.badReads == nil {
		r.badReads = new(atomic.Uint64)
	}
	v, err := dev.LowLevel.DevRead(commands.VersionReg)
	if err != nil {
		return nil, fmt.Errorf("mfrc522: on %s: %w", port, err)
	}
	if v == 0x00 || v == 0xFF {
		return nil, fmt.Errorf("mfrc522: no chip answers on %s (version register reads %#02x)", port, v)
	}
	// The gain is applied by the chip initialisation that starts every read.
	if err := dev.SetAntennaGain(o.AntennaGain); err != nil {
		return nil, err
	}
	return r, nil
}

// ReadUID waits up to the read timeout for a tag and returns its UID (4, 7
// or 10 bytes). No tag in the field is not an error: the UID is nil. A read
// that a tag started but did not finish is counted and reported the same
// way; only a failure to talk to the chip is an error.
func (r *Reader) ReadUID() ([]byte, error) {
	uid, err := r.dev.ReadUID(r.timeout)
	switch {
	case err == nil:
		return uid, nil
	case isTimeout(err):
		return nil, nil
	case isTagError(err):
		r.badReads.Add(1)
		return nil, nil
	}
	return nil, fmt.Errorf("mfrc522: %w", err)
}

// isTimeout tells the driver's "no IRQ edge in time", which only means no
// tag answered, from real failures. periph has no sentinel for it; the
// package tests pin the message against the real driver.
func isTimeout(err error) bool {
	return strings.Contains(err.Error(), "timeout waiting for IRQ edge")
}

// isTagError tells an exchange with a tag that went wrong from a bus
// failure, which comes back unprefixed from the SPI port: the driver's own
// "mfrc522: " errors (wrong bit count, anticollision CRC mismatch), and the
// chip's timer expiring because the tag stopped answering mid-exchange.
func isTagError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "mfrc522: ") || msg == "mfrc522 lowlevel: IRQ error"
}

// Close powers the chip's analog part down. The port and pins stay open:
// they are the caller's. Close may be called more than once.
func (r *Reader) Close() error {
	var err error
	r.halt.Do(func() { err = r.dev.Halt() })
	if err != nil {
		return fmt.Errorf("mfrc522: %w", err)
	}
	return nil
}

func (r *Reader) String() string { return r.dev.String() }
