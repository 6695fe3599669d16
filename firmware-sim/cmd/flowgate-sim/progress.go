package main

import (
	"fmt"
	"io"
	"time"

	sim "github.com/flowgate/flowgate/firmware-sim"
)

// progress redraws one status line on w every half second while show,
// until done closes.
func progress(r *sim.Runner, w io.Writer, show bool, done <-chan struct{}) {
	if !show {
		<-done
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-done:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-tick.C:
			sent := r.Stats.Sent.Load()
			rate := float64(sent-last) / now.Sub(lastAt).Seconds()
			last, lastAt = sent, now
			fmt.Fprintf(w, "\r\033[K%d/%d connected · %d sent · %.0f msg/s · %d errors · %d dropped · sim %s",
				r.Stats.Connected.Load(), r.Stats.Devices, sent, rate, r.Stats.Errors.Load(), r.Stats.Dropped.Load(),
				r.Clock.SimAt(now).Format("2006-01-02 15:04"))
		}
	}
}

// summary is what a run did, printed at the end.
type summary struct {
	Scenario   string  `json:"scenario"`
	Devices    int64   `json:"devices"`
	Planned    int     `json:"planned"`
	Sent       int64   `json:"sent"`
	Malformed  int64   `json:"malformed"`
	Errors     int64   `json:"errors"`
	Dropped    int64   `json:"dropped"`
	Reconnects int64   `json:"reconnects"`
	Bytes      int64   `json:"bytes"`
	Truth      int     `json:"truth"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"rate"`
	SimStart   string  `json:"sim_start"`
	SimEnd     string  `json:"sim_end"`
}

func summarize(r *sim.Runner, p *sim.Plan, took time.Duration) summary {
	s := summary{Scenario: p.Scenario, Devices: r.Stats.Devices, Planned: p.Count(), Sent: r.Stats.Sent.Load(),
		Malformed: r.Stats.Broken.Load(), Errors: r.Stats.Errors.Load(), Dropped: r.Stats.Dropped.Load(),
		Reconnects: r.Stats.Reconnects.Load(), Bytes: r.Stats.Bytes.Load(), Truth: len(p.Truth),
		Seconds: took.Seconds(), SimStart: p.Start.Format(time.RFC3339), SimEnd: p.End.Format(time.RFC3339)}
	if took > 0 {
		s.Rate = float64(s.Sent) / took.Seconds()
	}
	return s
}

func (s summary) String() string {
	return fmt.Sprintf("flowgate-sim: %s: %d devices sent %d of %d messages (%d malformed) in %.1fs, %.0f msg/s; "+
		"%d errors, %d dropped, %d reconnects; %d notable events expected (%s to %s)",
		s.Scenario, s.Devices, s.Sent, s.Planned, s.Malformed, s.Seconds, s.Rate, s.Errors, s.Dropped, s.Reconnects,
		s.Truth, s.SimStart, s.SimEnd)
}
