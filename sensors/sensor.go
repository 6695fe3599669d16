package sensors

import (
	"context"
	"time"
)

// Sensor is one opened sensor.
type Sensor interface {
	// Read returns the next reading. ErrNoReading means there was nothing
	// to report this time (no tag in the reader's field) and is not a
	// failure; any other error is, and the sensor is closed and opened
	// again. A GPS Read blocks until the receiver's next fix.
	Read(ctx context.Context) (Reading, error)
	// Close stops the device and gives back what it borrowed. It is safe
	// to call after a failed Read.
	Close() error
}

// Clock is the time source of supervisors and simulated sensors, injected
// so tests step through backoffs and simulations without sleeping.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
