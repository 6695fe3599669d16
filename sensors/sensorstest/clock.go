// Package sensorstest has fakes for testing sensors without hardware and
// without sleeping: a manual clock, a GPIO pin, a Hardware, and scripts of
// the register exchanges periph's BME280, AHT20 and MFRC522 drivers have with
// their chips, for periph's i2ctest and spitest playback buses.
package sensorstest

import (
	"sync"
	"testing"
	"time"
)

// Clock is a manual sensors.Clock: time moves only when Advance is called.
// Each After is announced, so a test can wait for a goroutine to block on
// the clock (NextWait), check how long it wants to wait, and move time.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []timer
	waits  chan time.Duration
}

type timer struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, waits: make(chan time.Duration, 1024)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives when Advance has moved the clock d
// or more.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	if d <= 0 {
		ch <- c.now
	} else {
		c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	}
	c.mu.Unlock()
	select {
	case c.waits <- d:
	default: // nobody is counting waits
	}
	return ch
}

// Advance moves the clock d forward and fires the timers that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

// NextWait returns the duration of the next After call, waiting for it for
// up to ten seconds of real time before failing the test.
func (c *Clock) NextWait(tb testing.TB) time.Duration {
	tb.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(10 * time.Second):
		tb.Fatal("sensorstest: nothing waited on the clock within 10s")
		return 0
	}
}
