package sensorstest

import (
	"context"
	"io"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
	"periph.io/x/conn/v3/spi"

	"github.com/flowgate/flowgate/sensors"
)

// Hardware is a fake sensors.Hardware. Each function field opens one kind
// of resource; a nil field means this machine has none, and opening fails
// with sensors.ErrNoBus, as on a laptop.
type Hardware struct {
	OpenI2C    func(bus string) (i2c.BusCloser, error)
	OpenSPI    func(port string) (spi.PortCloser, error)
	OpenPin    func(name string) (gpio.PinIO, error)
	OpenSerial func(port string, baud int) (io.ReadCloser, error)
}

// I2C implements sensors.Hardware.
func (h *Hardware) I2C(bus string) (i2c.BusCloser, error) {
	if h.OpenI2C == nil {
		return nil, NoBus("I²C bus", bus)
	}
	return h.OpenI2C(bus)
}

// SPI implements sensors.Hardware.
func (h *Hardware) SPI(port string) (spi.PortCloser, error) {
	if h.OpenSPI == nil {
		return nil, NoBus("SPI port", port)
	}
	return h.OpenSPI(port)
}

// Pin implements sensors.Hardware.
func (h *Hardware) Pin(name string) (gpio.PinIO, error) {
	if h.OpenPin == nil {
		return nil, NoBus("GPIO pin", name)
	}
	return h.OpenPin(name)
}

// Serial implements sensors.Hardware.
func (h *Hardware) Serial(port string, baud int) (io.ReadCloser, error) {
	if h.OpenSerial == nil {
		return nil, NoBus("serial port", port)
	}
	return h.OpenSerial(port, baud)
}

// NoBus is the error for a resource this machine does not have.
func NoBus(what, name string) error {
	return &sensors.NoBusError{What: what, Name: name, Hint: "this machine has none (sensorstest.Hardware)"}
}

// Pin is a fake GPIO pin. WaitForEdge asks Edge (no edge when nil); Out
// levels are recorded.
type Pin struct {
	N    string
	Edge func(timeout time.Duration) bool

	mu   sync.Mutex
	outs []gpio.Level
}

// Outs returns the levels driven with Out, in order.
func (p *Pin) Outs() []gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gpio.Level(nil), p.outs...)
}

func (p *Pin) String() string                        { return p.N }
func (p *Pin) Halt() error                           { return nil }
func (p *Pin) Name() string                          { return p.N }
func (p *Pin) Number() int                           { return -1 }
func (p *Pin) Function() string                      { return "" }
func (p *Pin) Func() pin.Func                        { return pin.FuncNone }
func (p *Pin) SupportedFuncs() []pin.Func            { return nil }
func (p *Pin) SetFunc(pin.Func) error                { return nil }
func (p *Pin) In(gpio.Pull, gpio.Edge) error         { return nil }
func (p *Pin) Read() gpio.Level                      { return gpio.Low }
func (p *Pin) Pull() gpio.Pull                       { return gpio.PullNoChange }
func (p *Pin) DefaultPull() gpio.Pull                { return gpio.PullNoChange }
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error { return nil }

// WaitForEdge implements gpio.PinIn.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	return p.Edge != nil && p.Edge(timeout)
}

// Out implements gpio.PinOut.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outs = append(p.outs, l)
	return nil
}

var _ gpio.PinIO = (*Pin)(nil)

// Sensor is a fake sensors.Sensor made of functions.
type Sensor struct {
	ReadFunc  func(ctx context.Context) (sensors.Reading, error)
	CloseFunc func() error // nil: Close succeeds
}

// Read implements sensors.Sensor.
func (s *Sensor) Read(ctx context.Context) (sensors.Reading, error) { return s.ReadFunc(ctx) }

// Close implements sensors.Sensor.
func (s *Sensor) Close() error {
	if s.CloseFunc == nil {
		return nil
	}
	return s.CloseFunc()
}
