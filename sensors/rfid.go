package sensors

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"periph.io/x/conn/v3/spi"

	"github.com/flowgate/flowgate/sensors/mfrc522"
	"github.com/flowgate/flowgate/sensors/sim"
)

// uidReader is what an RFID sensor needs from its reader: an
// mfrc522.Reader or a sim.Tags. A nil UID with no error is no tag.
type uidReader interface {
	ReadUID() ([]byte, error)
	Close() error
}

// rfidSensor reads tag UIDs.
type rfidSensor struct {
	reader uidReader
	port   io.Closer // nil when simulated
	name   string
	clock  Clock
}

func (s *rfidSensor) Read(ctx context.Context) (Reading, error) {
	uid, err := s.reader.ReadUID()
	switch {
	case err != nil:
		return Reading{}, err
	case uid == nil:
		return Reading{}, ErrNoReading
	}
	return Reading{Kind: KindRFID, Time: s.clock.Now(), Tag: Tag{UID: uid, Reader: s.name}}, nil
}

func (s *rfidSensor) Close() error {
	err := s.reader.Close()
	if s.port != nil {
		if cerr := s.port.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func openRFID(src *Source) (Sensor, error) {
	s := src.spec
	sensor := &rfidSensor{name: s.Name, clock: src.deps.Clock}
	if s.Simulated {
		tags, err := simTags(s.Sim.Tags)
		if err != nil {
			return nil, err
		}
		sensor.reader = sim.NewTags(tags, src.deps.Clock.Now)
		return sensor, nil
	}
	// The port first: on a machine without SPI the message names the
	// bus, not the pin that happens to be asked for first.
	hw := src.deps.Hardware
	port, err := hw.SPI(s.Bus)
	if err != nil {
		return nil, err
	}
	r, err := openReader(hw, port, s, &src.badReads)
	if err != nil {
		closeAll(port)
		return nil, err
	}
	sensor.reader, sensor.port = r, port
	return sensor, nil
}

// openReader starts the reader on a borrowed port with its two pins.
func openReader(hw Hardware, port spi.Port, s Spec, badReads *atomic.Uint64) (*mfrc522.Reader, error) {
	reset, err := hw.Pin(s.ResetPin)
	if err != nil {
		return nil, err
	}
	irq, err := hw.Pin(s.IRQPin)
	if err != nil {
		return nil, err
	}
	return mfrc522.NewSPI(port, reset, irq, mfrc522.Opts{ReadTimeout: s.ReadTimeout,
		AntennaGain: s.AntennaGain, BadReads: badReads})
}

func simTags(list []SimTag) ([]sim.Tag, error) {
	var tags []sim.Tag
	for _, t := range list {
		uid, err := sim.ParseUID(t.Tag)
		if err != nil {
			return nil, err
		}
		tags = append(tags, sim.Tag{UID: uid, After: t.After, For: t.For, Every: t.Every})
	}
	return tags, nil
}

// checkRFID checks an RFID reader's wiring, options and simulation.
func checkRFID(ps *problems, s Spec) {
	if !s.Simulated {
		for _, k := range []struct{ key, v, what string }{
			{"bus", s.Bus, "the SPI port, e.g. SPI0.0 for /dev/spidev0.0"},
			{"reset_pin", s.ResetPin, "the GPIO wired to the reader's RST, e.g. GPIO25"},
			{"irq_pin", s.IRQPin, "the GPIO wired to the reader's IRQ, e.g. GPIO24"},
		} {
			if k.v == "" {
				ps.add(k.key, "required: %s", k.what)
			}
		}
	}
	if s.ReadTimeout <= 0 {
		ps.add("read_timeout", "must be positive: how long one read waits for a tag")
	}
	if s.AntennaGain < 0 || s.AntennaGain > 7 {
		ps.add("options.antenna_gain", "%d must be 0 (18 dB) to 7 (48 dB)", s.AntennaGain)
	}
	if s.Simulated && len(s.Sim.Tags) == 0 {
		ps.add("sim.tags", "a simulated reader needs at least one tag")
	}
	for i, t := range s.Sim.Tags {
		checkSimTag(ps, fmt.Sprintf("sim.tags[%d]", i), t, s)
	}
}

func checkSimTag(ps *problems, key string, t SimTag, s Spec) {
	if _, err := sim.ParseUID(t.Tag); err != nil {
		ps.add(key+".tag", "%q must be a UID of 4, 7 or 10 bytes in hex, e.g. 04A1B2C3", t.Tag)
	}
	switch {
	case t.After < 0:
		ps.add(key+".after", "must not be negative")
	case t.For < s.PollInterval || t.For <= 0:
		ps.add(key+".for", "%s must be positive and at least poll_interval (%s), or no read may see the tag", t.For, s.PollInterval)
	case t.Every != 0 && t.Every <= t.For:
		ps.add(key+".every", "must be longer than for (or 0: once)")
	}
}
