package sensors

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Supervisor defaults.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
	DefaultFailAfter  = 3
)

// State is a supervised sensor's health.
type State string

// The states a Supervisor reports.
const (
	StateOK      State = "ok"      // reading again after being reported failing
	StateFailing State = "failing" // failed FailAfter times in a row (or its bus is missing)
)

// Status is a change of a sensor's health, for Supervisor.Report.
type Status struct {
	Sensor   string
	State    State
	Failures int       // failures in a row so far; 0 once recovered
	Err      error     // the last failure; nil when recovered
	Since    time.Time // when the sensor entered State
}

// Stats are a supervisor's counters, safe to read while it runs.
type Stats struct {
	Readings uint64 // readings emitted
	Errors   uint64 // failed opens and reads
	Reports  uint64 // times reported failing
	Failing  bool   // reported failing and not yet recovered
}

// Supervisor runs one sensor: it opens it, reads it every Interval, and
// on a failure closes it and opens it again after a backoff (MinBackoff,
// doubling up to MaxBackoff). After FailAfter failures in a row it reports
// the sensor failing, and when a read succeeds again, recovered. It never
// gives up: hardware that comes back is read again.
type Supervisor struct {
	Name     string
	Open     func() (Sensor, error)
	Interval time.Duration // between reads; 0 reads again at once (a GPS paced by its receiver)
	Clock    Clock         // RealClock if nil
	Log      *slog.Logger  // discarded if nil
	Emit     func(Reading) // each reading, on the supervisor's goroutine
	Report   func(Status)  // health changes; may be nil

	MinBackoff, MaxBackoff time.Duration // defaults DefaultMinBackoff, DefaultMaxBackoff
	FailAfter              int           // default DefaultFailAfter

	readings, errs, reports atomic.Uint64
	failing                 atomic.Bool
}

// run is the state of one Run.
type run struct {
	sensor   Sensor
	failures int
	since    time.Time
}

// Run supervises the sensor until ctx is done, then closes it. It returns
// nil: failures are the sensor's, reported and retried, never the caller's.
func (s *Supervisor) Run(ctx context.Context) error {
	s.defaults()
	r := &run{}
	defer s.closeSensor(r)
	for {
		wait := s.step(ctx, r)
		if !s.sleep(ctx, wait) {
			return nil
		}
	}
}

func (s *Supervisor) defaults() {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Clock == nil {
		s.Clock = RealClock()
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = DefaultMinBackoff
	}
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = max(DefaultMaxBackoff, s.MinBackoff)
	}
	if s.FailAfter <= 0 {
		s.FailAfter = DefaultFailAfter
	}
}

// step opens the sensor if needed and reads it once; it returns how long
// to wait before the next step.
func (s *Supervisor) step(ctx context.Context, r *run) time.Duration {
	if r.sensor == nil {
		sensor, err := s.Open()
		if err != nil {
			return s.failed(r, err)
		}
		r.sensor = sensor
	}
	reading, err := r.sensor.Read(ctx)
	switch {
	case ctx.Err() != nil:
		return 0
	case err == nil:
		s.recovered(r)
		s.readings.Add(1)
		s.Emit(reading)
	case errors.Is(err, ErrNoReading):
		s.recovered(r)
	default:
		s.closeSensor(r)
		return s.failed(r, err)
	}
	return s.Interval
}

// failed counts a failure, reports the sensor failing when it has failed
// often enough, and returns the backoff before the next attempt.
func (s *Supervisor) failed(r *run, err error) time.Duration {
	r.failures++
	s.errs.Add(1)
	wait := s.backoff(r.failures)
	s.Log.Warn("sensor failed", "sensor", s.Name, "failures", r.failures, "retry_in", wait, "err", err)
	if !s.failing.Load() && (r.failures >= s.FailAfter || errors.Is(err, ErrNoBus)) {
		s.failing.Store(true)
		s.reports.Add(1)
		r.since = s.Clock.Now()
		s.Log.Error("sensor failing; retrying until it comes back", "sensor", s.Name, "failures", r.failures, "err", err)
		s.report(Status{Sensor: s.Name, State: StateFailing, Failures: r.failures, Err: err, Since: r.since})
	}
	return wait
}

// recovered ends a run of failures.
func (s *Supervisor) recovered(r *run) {
	r.failures = 0
	if !s.failing.Load() {
		return
	}
	s.failing.Store(false)
	now := s.Clock.Now()
	s.Log.Info("sensor recovered", "sensor", s.Name, "down_for", now.Sub(r.since).Round(time.Millisecond))
	r.since = now
	s.report(Status{Sensor: s.Name, State: StateOK, Since: now})
}

func (s *Supervisor) report(st Status) {
	if s.Report != nil {
		s.Report(st)
	}
}

// backoff is MinBackoff doubled for each failure after the first, capped
// at MaxBackoff.
func (s *Supervisor) backoff(failures int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < failures && d < s.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.MaxBackoff)
}

// sleep waits d on the supervisor's clock; false when ctx ended first.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-s.Clock.After(d):
		return true
	}
}

func (s *Supervisor) closeSensor(r *run) {
	if r.sensor == nil {
		return
	}
	if err := r.sensor.Close(); err != nil {
		s.Log.Warn("sensor close failed", "sensor", s.Name, "err", err)
	}
	r.sensor = nil
}

// Stats returns the supervisor's counters.
func (s *Supervisor) Stats() Stats {
	return Stats{Readings: s.readings.Load(), Errors: s.errs.Load(), Reports: s.reports.Load(),
		Failing: s.failing.Load()}
}
