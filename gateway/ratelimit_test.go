package gateway

import (
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
