package load

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts latencies in microseconds in log-linear buckets: exact
// below 128 µs, then 64 buckets per power of two (within 1.6% of the true
// value), up to about 2^57 µs. Adding is a few instructions and no
// allocation, so a subscriber can record every message.
type histogram struct {
	counts [64 * 64]uint64
	n      uint64
	max    int64
}

func bucketOf(us int64) int {
	if us < 0 {
		us = 0
	}
	v := uint64(us)
	if v < 128 {
		return int(v)
	}
	e := bits.Len64(v) - 7
	return 128 + (e-1)*64 + int(v>>e) - 64
}

// lowest is the smallest value that falls in bucket i, and width its width.
func bucketRange(i int) (lowest, width int64) {
	if i < 128 {
		return int64(i), 1
	}
	e := (i-128)/64 + 1
	m := int64((i-128)%64 + 64)
	return m << e, 1 << e
}

func (h *histogram) add(us int64) {
	i := bucketOf(us)
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile is the latency below which a fraction q of the values lie: the
// middle of the bucket holding that rank (the largest value for q = 1).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// The nearest rank: the ceil(q·n)-th smallest value (p99 of 100 values
	// is the 99th, not the largest), counted from 0.
	rank := uint64(math.Ceil(q*float64(h.n))) - 1
	if q <= 0 {
		rank = 0
	}
	if rank >= h.n-1 {
		return time.Duration(h.max) * time.Microsecond // the largest is known exactly
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			lo, w := bucketRange(i)
			return time.Duration(min(lo+w/2, h.max)) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}
