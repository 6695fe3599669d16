package gateway

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func TestConnLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newConnLimiter(2, 3, []string{"10.0.0.0/8"}, func() time.Time { return now })
	a := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
	b := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 1}
	for i := range 3 {
		if !l.allow(a) {
			t.Fatalf("connection %d of a burst of 3 refused", i+1)
		}
	}
	if l.allow(a) {
		t.Error("4th connection at once allowed")
	}
	if !l.allow(b) {
		t.Error("another address is limited by the first's bucket")
	}
	now = now.Add(500 * time.Millisecond) // 2/s: one token back
	if !l.allow(a) || l.allow(a) {
		t.Error("after 0.5 s at 2/s exactly one more connection should pass")
	}
	for range 10 {
		if !l.allow(&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 1}) {
			t.Fatal("an exempt address was limited")
		}
	}
	if newConnLimiter(0, 0, nil, time.Now) != nil || !(*connLimiter)(nil).allow(a) {
		t.Error("rate 0 must not limit")
	}
}

// An IPv6 host cannot escape the limit by taking new addresses in its
// /64; an IPv4-mapped address is its IPv4 address.
func TestConnLimiterKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newConnLimiter(1, 3, nil, func() time.Time { return now })
	for i := range 3 {
		if !l.allow(&net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("2001:db8:1:2::%x", i+1)), Port: 1}) {
			t.Fatalf("connection %d of a burst of 3 refused", i+1)
		}
	}
	if l.allow(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 1}) {
		t.Error("a 4th address in the same /64 got a bucket of its own")
	}
	if !l.allow(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}) {
		t.Error("another /64 is limited by the first's bucket")
	}
	v4 := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1).To4(), Port: 1}
	mapped := &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1").To16(), Port: 1}
	for range 3 {
		l.allow(v4)
	}
	if l.allow(mapped) {
		t.Error("an IPv4-mapped address has a bucket apart from its IPv4 address")
	}
	if !l.allow(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 1}) {
		t.Error("IPv4 addresses share a bucket")
	}
}

// With the table full, a new address is still limited: it takes the
// bucket of the address least recently seen, and the others keep theirs.
func TestConnLimiterFullTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newConnLimiter(1, 3, nil, func() time.Time { return now })
	drained := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 1}
	for range 3 {
		l.allow(drained)
	}
	for i := 1; i < maxBuckets; i++ { // the oldest is the first of these
		l.allow(&net.TCPAddr{IP: net.IPv4(100, 64+byte(i>>16), byte(i>>8), byte(i)), Port: 1})
		if i == 1 {
			l.allow(drained) // refused, but seen again: no longer the least recent
		}
	}
	fresh := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 1}
	for i := range 3 {
		if !l.allow(fresh) {
			t.Fatalf("connection %d of a new address's burst refused", i+1)
		}
	}
	if l.allow(fresh) {
		t.Error("with the table full a new address is not limited")
	}
	if l.allow(drained) {
		t.Error("an address seen recently lost its bucket to a new one")
	}
	if len(l.buckets) != maxBuckets {
		t.Errorf("%d buckets, want %d", len(l.buckets), maxBuckets)
	}
}

// BenchmarkConnLimiterAllow is the check every new connection makes, over
// a table of many addresses.
func BenchmarkConnLimiterAllow(b *testing.B) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newConnLimiter(1e9, 1e9, nil, func() time.Time { return now })
	addrs := make([]net.Addr, 4096)
	for i := range addrs {
		addrs[i] = &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("2001:db8:%x::1", i)), Port: 1}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.allow(addrs[i%len(addrs)])
	}
}
