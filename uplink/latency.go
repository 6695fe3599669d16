package uplink

import "time"

// Latency is a histogram of durations, as Stats reports them: how many
// took at most each of LatencyBounds (cumulative counts, as Prometheus
// wants them), how many in all, and their sum.
type Latency struct {
	Counts []uint64 // Counts[i]: how many took at most LatencyBounds[i]
	Count  uint64
	Sum    time.Duration
}

// LatencyBounds are the upper bounds of Latency's buckets: from a fast
// disk's fsync to a cloud broker across a slow mobile link.
var LatencyBounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// latencyHist counts durations into LatencyBounds; the Uplink's mutex
// guards it.
type latencyHist struct {
	counts [len(LatencyBounds) + 1]uint64 // per bucket, the last for those above every bound
	count  uint64
	sum    time.Duration
}

func (h *latencyHist) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	h.counts[i]++
	h.count++
	h.sum += d
}

func (h *latencyHist) snapshot() Latency {
	l := Latency{Counts: make([]uint64, len(LatencyBounds)), Count: h.count, Sum: h.sum}
	var n uint64
	for i := range LatencyBounds {
		n += h.counts[i]
		l.Counts[i] = n
	}
	return l
}
