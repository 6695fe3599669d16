package sensors

import (
	"errors"
	"fmt"
)

// Errors callers tell apart.
var (
	// ErrNoReading is a Read with nothing to report, not a failure.
	ErrNoReading = errors.New("sensors: no reading")
	// ErrNoBus is a Hardware error (a NoBusError) for a bus, port or pin
	// this machine does not have: a laptop, or a Pi without the bus
	// enabled. The sensor is reported failing at once rather than after a
	// few attempts, and still retried.
	ErrNoBus = errors.New("sensors: no such bus")
)

// NoBusError is a bus, port or pin this machine does not have; it is
// ErrNoBus.
type NoBusError struct {
	What string // "I²C bus", "SPI port", "GPIO pin", "serial port"
	Name string // as configured
	Hint string // what there is instead, and how to get it
}

func (e *NoBusError) Error() string {
	msg := fmt.Sprintf("%s %q not found", e.What, e.Name)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// Is makes errors.Is(err, ErrNoBus) true.
func (e *NoBusError) Is(target error) bool { return target == ErrNoBus }
