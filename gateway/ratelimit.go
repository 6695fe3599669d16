package gateway

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// connLimiter is a token bucket per remote address: an address may open
// burst connections at once, then rate per second. Addresses in exempt
// are not limited.
//
// An IPv4 address (an IPv4-mapped IPv6 one included) has a bucket of its
// own; IPv6 addresses share one per /64, the smallest network a site is
// given, since a single host may take any address in its /64 and would
// otherwise get a fresh bucket with every one.
type connLimiter struct {
	rate, burst float64
	exempt      []netip.Prefix
	now         func() time.Time

	mu      sync.Mutex
	buckets map[netip.Prefix]*list.Element // of *bucket
	lru     list.List                      // most recently used first
}

type bucket struct {
	key    netip.Prefix
	tokens float64
	last   time.Time
}

// maxBuckets bounds the addresses tracked at once. When the table is full
// a new address takes the bucket of the one least recently seen, which
// starts again with a full burst when it comes back. The other choice,
// refusing new addresses until buckets are freed, would let whoever holds
// 65,536 /64s (a single /48) lock out every device that has not connected
// lately, a whole fleet reconnecting after a power cut among them;
// eviction only lets such a sender escape the limit, and
// broker.max_clients still holds.
const maxBuckets = 1 << 16

// newConnLimiter returns a limiter, or nil (allowing everything) when rate
// is 0.
func newConnLimiter(rate float64, burst int, exempt []string, now func() time.Time) *connLimiter {
	if rate <= 0 {
		return nil
	}
	l := &connLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[netip.Prefix]*list.Element{}}
	for _, s := range exempt {
		if p, err := netip.ParsePrefix(s); err == nil { // validated with the config
			l.exempt = append(l.exempt, p.Masked())
		}
	}
	return l
}

// limitKey is the bucket of ip: the address itself for IPv4, its /64 for
// IPv6.
func limitKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits) // cannot fail: bits fits the address
	return p
}

// allow takes a token from addr's bucket and reports whether there was
// one. An address that is not an IP (a pipe, in tests) is allowed.
func (l *connLimiter) allow(addr net.Addr) bool {
	if l == nil {
		return true
	}
	ip, ok := addrIP(addr)
	if !ok {
		return true
	}
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(limitKey(ip), now)
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// addrIP is addr's IP address, unmapped and without a zone.
func addrIP(addr net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	if ta, ok := addr.(*net.TCPAddr); ok { // what a listener gives: no parsing, no allocation
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), ip.IsValid()
}

// bucket returns key's bucket, marked most recently used; a new one is
// full, and takes the place of the least recently used if the table is.
func (l *connLimiter) bucket(key netip.Prefix, now time.Time) *bucket {
	if e, ok := l.buckets[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket)
	}
	if len(l.buckets) >= maxBuckets {
		old := l.lru.Back()
		delete(l.buckets, old.Value.(*bucket).key)
		l.lru.Remove(old)
	}
	b := &bucket{key: key, tokens: l.burst, last: now}
	l.buckets[key] = l.lru.PushFront(b)
	return b
}
