package gateway

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// connLimiter is a token bucket per remote IP address: an address may
// open burst connections at once, then rate per second. Addresses in
// exempt are not limited.
type connLimiter struct {
	rate, burst float64
	exempt      []netip.Prefix
	now         func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the addresses tracked at once. Past it, the buckets
// that have filled up again are forgotten (they would allow a burst
// anyway); if every bucket is still in use, a new address is let through
// untracked rather than refused, and broker.max_clients still holds.
const maxBuckets = 1 << 16

// newConnLimiter returns a limiter, or nil (allowing everything) when rate
// is 0.
func newConnLimiter(rate float64, burst int, exempt []string, now func() time.Time) *connLimiter {
	if rate <= 0 {
		return nil
	}
	l := &connLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[netip.Addr]*bucket{}}
	for _, s := range exempt {
		if p, err := netip.ParsePrefix(s); err == nil { // validated with the config
			l.exempt = append(l.exempt, p.Masked())
		}
	}
	return l
}

// allow takes a token from addr's bucket and reports whether there was
// one. An address that is not an IP (a pipe, in tests) is allowed.
func (l *connLimiter) allow(addr net.Addr) bool {
	if l == nil {
		return true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return true
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets) >= maxBuckets && !l.prune(now) {
			return true
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets the buckets that are full again; it reports whether there
// is room now.
func (l *connLimiter) prune(now time.Time) bool {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, ip)
		}
	}
	return len(l.buckets) < maxBuckets
}
