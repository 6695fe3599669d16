package sensors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/sensors"
	"github.com/flowgate/flowgate/sensors/sensorstest"
)

var t0 = time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var errIO = errors.New("i2c: remote I/O error")

// flaky is a sensor whose opens and reads follow a script: each entry is
// the outcome of one attempt, in order.
type flaky struct {
	steps  []error // nil: success; for an open, the sensor opens
	next   atomic.Int32
	opened atomic.Int32
	closed atomic.Int32
}

func (f *flaky) step() error {
	i := int(f.next.Add(1)) - 1
	if i >= len(f.steps) {
		return nil
	}
	return f.steps[i]
}

func (f *flaky) open() (sensors.Sensor, error) {
	if err := f.step(); err != nil {
		return nil, err
	}
	f.opened.Add(1)
	return &sensorstest.Sensor{
		ReadFunc: func(context.Context) (sensors.Reading, error) {
			if err := f.step(); err != nil {
				return sensors.Reading{}, err
			}
			return sensors.Reading{Kind: sensors.KindEnv, Env: sensors.Env{Temperature: 20}}, nil
		},
		CloseFunc: func() error { f.closed.Add(1); return nil },
	}, nil
}

// run starts a supervisor and returns what it emits and reports, and a
// function that stops it and waits for Run to return.
func run(t *testing.T, s *sensors.Supervisor) (chan sensors.Reading, chan sensors.Status, func()) {
	readings, reports := make(chan sensors.Reading, 100), make(chan sensors.Status, 100)
	s.Emit = func(r sensors.Reading) { readings <- r }
	s.Report = func(st sensors.Status) { reports <- st }
	s.Log = discard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	return readings, reports, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// A failing sensor is retried after a doubling backoff, reported failing
// on its third failure in a row (once), and reported back when it reads
// again, then read at its interval.
func TestSupervisorRetryBackoffRecovery(t *testing.T) {
	clk := sensorstest.NewClock(t0)
	f := &flaky{steps: []error{
		nil, nil, // open, read: a reading
		errIO,      // read fails: close, 1st failure
		errIO,      // open fails: 2nd
		nil, errIO, // open, read fails: 3rd, reported failing
		nil, errIO, // 4th
		nil, sensors.ErrNoReading, // open, nothing to read: recovered
	}}
	s := &sensors.Supervisor{Name: "cab-env", Open: f.open, Interval: 10 * time.Second, Clock: clk}
	readings, reports, stop := run(t, s)
	want := []struct {
		wait    time.Duration
		failing bool
	}{{10 * time.Second, false}, {time.Second, false}, {2 * time.Second, false}, {4 * time.Second, true},
		{8 * time.Second, true}, {10 * time.Second, false}, {10 * time.Second, false}}
	for i, w := range want {
		d := clk.NextWait(t)
		if d != w.wait || s.Stats().Failing != w.failing {
			t.Errorf("wait %d: %s failing %v, want %s failing %v", i, d, s.Stats().Failing, w.wait, w.failing)
		}
		clk.Advance(d)
	}
	clk.NextWait(t)
	stop()
	if st := <-reports; st.State != sensors.StateFailing || st.Failures != 3 || !errors.Is(st.Err, errIO) ||
		!st.Since.Equal(t0.Add(13*time.Second)) {
		t.Errorf("first report %+v", st)
	}
	if st := <-reports; st.State != sensors.StateOK || st.Err != nil || !st.Since.Equal(t0.Add(25*time.Second)) {
		t.Errorf("second report %+v", st)
	}
	if len(reports) != 0 || len(readings) != 3 {
		t.Errorf("%d more reports, %d readings", len(reports), len(readings))
	}
	if st := s.Stats(); st != (sensors.Stats{Readings: 3, Errors: 4, Reports: 1}) {
		t.Errorf("stats %+v", st)
	}
	if f.opened.Load() != 4 || f.closed.Load() != 4 {
		t.Errorf("opened %d, closed %d: every opened sensor must be closed", f.opened.Load(), f.closed.Load())
	}
}

// The backoff stops doubling at its ceiling, and a missing bus is reported
// at once, not after a few attempts.
func TestSupervisorCeilingAndMissingBus(t *testing.T) {
	clk := sensorstest.NewClock(t0)
	noBus := fmt.Errorf("gateway: %w: I²C bus %q", sensors.ErrNoBus, "1")
	open := func() (sensors.Sensor, error) { return nil, noBus }
	s := &sensors.Supervisor{Name: "cab-env", Open: open, Interval: time.Second, Clock: clk,
		MinBackoff: time.Second, MaxBackoff: 5 * time.Second}
	_, reports, stop := run(t, s)
	for i, want := range []time.Duration{1, 2, 4, 5, 5} {
		d := clk.NextWait(t)
		if d != want*time.Second {
			t.Errorf("backoff %d: %s, want %ds", i, d, want)
		}
		if i == 0 && (len(reports) != 1 || !s.Stats().Failing) {
			t.Errorf("missing bus not reported at the first failure")
		}
		clk.Advance(d)
	}
	clk.NextWait(t)
	stop()
	if st := s.Stats(); st.Errors != 6 || st.Reports != 1 || st.Readings != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Stopping a supervisor in the middle of a read closes the sensor.
func TestSupervisorStopsDuringRead(t *testing.T) {
	clk := sensorstest.NewClock(t0)
	reading, closed := make(chan struct{}), make(chan struct{})
	open := func() (sensors.Sensor, error) {
		return &sensorstest.Sensor{
			ReadFunc: func(ctx context.Context) (sensors.Reading, error) {
				close(reading)
				<-ctx.Done()
				return sensors.Reading{}, ctx.Err()
			},
			CloseFunc: func() error { close(closed); return nil },
		}, nil
	}
	s := &sensors.Supervisor{Name: "gps", Open: open, Clock: clk}
	_, _, stop := run(t, s)
	<-reading
	stop()
	select {
	case <-closed:
	default:
		t.Error("sensor not closed")
	}
	if st := s.Stats(); st.Errors != 0 {
		t.Errorf("a stop counted as a failure: %+v", st)
	}
}
