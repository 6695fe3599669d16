package load

import (
	"fmt"
	"io"
	"time"
)

// Print writes the result for a person: one line per figure.
func (r *Result) Print(w io.Writer) {
	c := r.Config
	rate := "as fast as possible"
	if c.Rate > 0 {
		rate = fmt.Sprintf("%.0f msg/s", c.Rate)
	}
	fmt.Fprintf(w, "load: %d publishers → %s, %d subscribers ← %s, QoS %d/%d, %d-byte payloads, %s, window %d\n",
		c.Publishers, c.Broker, c.Subscribers, c.SubBroker, c.QoS, c.SubQoS, c.Size, rate, c.Inflight)
	fmt.Fprintf(w, "sent      %10d  %10.0f msg/s over %v\n", r.Sent, r.SendRate(), round(r.SendTime))
	fmt.Fprintf(w, "acked     %10d  %10.0f msg/s over %v\n", r.Acked, r.AckRate(), round(r.AckTime))
	if c.Subscribers > 0 {
		fmt.Fprintf(w, "received  %10d  %10.0f msg/s over %v (all subscribers)\n", r.Received, r.RecvRate(), round(r.RecvTime))
		fmt.Fprintf(w, "lost      %10d  of %d expected; duplicates %d, unstamped %d\n", r.Lost, r.Expected, r.Duplicates, r.Unstamped)
		fmt.Fprintf(w, "latency   p50 %v  p99 %v  p99.9 %v  max %v\n", r.P50, r.P99, r.P999, r.Max)
		if c.Warmup > 0 {
			s := r.Steady
			fmt.Fprintf(w, "  steady  p50 %v  p99 %v  p99.9 %v  max %v (%d sent after the first %v)\n", s.P50, s.P99, s.P999, s.Max, s.Count, c.Warmup)
		}
	}
	if b := r.Broker; b != nil {
		fmt.Fprintf(w, "broker    pid %d: RSS max %.1f MB, mean %.1f MB, last %.1f MB (%d samples); CPU %v\n",
			c.PID, mb(b.RSSMax), mb(b.RSSMean), mb(b.RSSLast), b.Samples, round(b.CPU))
	}
	fmt.Fprintf(w, "generator CPU %v\n", round(r.LoadCPU))
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error     %s\n", e)
	}
	if r.Canceled {
		fmt.Fprintln(w, "interrupted: figures cover the run until then")
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}
