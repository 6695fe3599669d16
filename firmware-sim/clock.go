package sim

import (
	"sync"
	"time"
)

// Clock maps simulated time onto the wall clock: simulated time Start is
// the wall time Begin was called at, and simulated time then runs Speed
// times faster.
type Clock struct {
	Start time.Time // simulated time at Begin
	Speed float64   // simulated seconds per wall second; must be positive

	mu    sync.Mutex
	wall0 time.Time
}

// Begin starts the clock now.
func (c *Clock) Begin(now time.Time) {
	c.mu.Lock()
	c.wall0 = now
	c.mu.Unlock()
}

// WallAt is the wall time at which the simulated time t comes.
func (c *Clock) WallAt(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := float64(t.Sub(c.Start)) / c.Speed
	return c.wall0.Add(time.Duration(d))
}

// SimAt is the simulated time at the wall time w.
func (c *Clock) SimAt(w time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Start.Add(time.Duration(float64(w.Sub(c.wall0)) * c.Speed))
}

// DefaultStart is the first whole hour after now: simulated time starts no
// earlier than the gateway's clock (its rules engine never goes back in
// time), on an hour so that hourly windows are whole.
func DefaultStart(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(time.Hour)
}
