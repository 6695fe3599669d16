package uplink_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink"
)

// lowest and highest are jitter sources that always draw the least and the
// greatest value allowed, so that a backoff's bounds can be checked exactly.
func lowest(t *testing.T) func(int64) int64 {
	return func(n int64) int64 {
		if n <= 0 {
			t.Fatalf("jitter(%d): n must be positive", n)
		}
		return 0
	}
}

func highest(t *testing.T) func(int64) int64 {
	return func(n int64) int64 {
		if n <= 0 {
			t.Fatalf("jitter(%d): n must be positive", n)
		}
		return n - 1
	}
}

func TestBackoffBounds(t *testing.T) {
	const lo, hi = 500 * time.Millisecond, time.Minute
	for _, tc := range []struct {
		attempt int
		bound   time.Duration
	}{
		{0, 0},
		{1, 500 * time.Millisecond},
		{2, time.Second},
		{3, 2 * time.Second},
		{7, 32 * time.Second},
		{8, time.Minute}, // 64s, capped
		{64, time.Minute},
		{math.MaxInt, time.Minute},
	} {
		if got := uplink.Backoff(lo, hi, tc.attempt, lowest(t)); got != tc.bound/2 {
			t.Errorf("attempt %d: shortest wait %v, want %v", tc.attempt, got, tc.bound/2)
		}
		if got := uplink.Backoff(lo, hi, tc.attempt, highest(t)); got != tc.bound {
			t.Errorf("attempt %d: longest wait %v, want %v", tc.attempt, got, tc.bound)
		}
	}
}

func TestBackoffNeverOverflows(t *testing.T) {
	const huge = time.Duration(math.MaxInt64)
	for _, attempt := range []int{1, 2, 62, 63, 64, 1000} {
		for _, j := range []func(int64) int64{lowest(t), highest(t)} {
			if got := uplink.Backoff(time.Second, huge, attempt, j); got < 0 || got > huge {
				t.Errorf("attempt %d: wait %v out of range", attempt, got)
			}
		}
	}
	if got := uplink.Backoff(time.Second, time.Second, 5, highest(t)); got != time.Second {
		t.Errorf("min = max: wait %v, want 1s", got)
	}
}

// TestBackoffJitterSpread draws from a seeded source: every wait lies in
// [bound/2, bound], and the waits spread over the whole range rather than
// bunching, which is what keeps a fleet from reconnecting in step.
func TestBackoffJitterSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const lo, hi, draws = 100 * time.Millisecond, 10 * time.Second, 2000
	for attempt := 1; attempt <= 10; attempt++ {
		bound := min(lo<<(attempt-1), hi)
		var quarters [4]int
		for range draws {
			d := uplink.Backoff(lo, hi, attempt, r.Int64N)
			if d < bound/2 || d > bound {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt, d, bound/2, bound)
			}
			q := min(int(4*(d-bound/2)/(bound-bound/2+1)), 3)
			quarters[q]++
		}
		for q, n := range quarters {
			if n < draws/8 { // a uniform draw puts draws/4 in each
				t.Errorf("attempt %d: only %d of %d waits in quarter %d of the range: %v", attempt, n, draws, q, quarters)
			}
		}
	}
}

// TestBackoffFromOptions checks that the uplink's backoff follows
// ReconnectMin and ReconnectMax, and their defaults.
func TestBackoffFromOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		attempt  int
		bound    time.Duration
	}{
		{"first attempt", 100 * time.Millisecond, time.Second, 0, 0},
		{"second", 100 * time.Millisecond, time.Second, 1, 100 * time.Millisecond},
		{"doubled", 100 * time.Millisecond, time.Second, 3, 400 * time.Millisecond},
		{"capped", 100 * time.Millisecond, time.Second, 5, time.Second},
		{"default min", 0, 0, 1, 500 * time.Millisecond},
		{"default max", 0, 0, 20, time.Minute},
		{"max defaults to at least min", 2 * time.Minute, 0, 3, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := uplink.New(uplink.Options{URL: "mqtt://127.0.0.1:1883", Topic: testTopic,
				ReconnectMin: tc.min, ReconnectMax: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			uplink.SetJitter(u, lowest(t))
			if got := uplink.ReconnectDelay(u, tc.attempt); got != tc.bound/2 {
				t.Errorf("shortest wait %v, want %v", got, tc.bound/2)
			}
			uplink.SetJitter(u, highest(t))
			if got := uplink.ReconnectDelay(u, tc.attempt); got != tc.bound {
				t.Errorf("longest wait %v, want %v", got, tc.bound)
			}
		})
	}
}

// TestBackoffAfterFlap: the first attempt after a connection that
// lasted only a moment waits like a second attempt, so a broker that accepts
// and drops at once is not hammered.
func TestBackoffAfterFlap(t *testing.T) {
	u, err := uplink.New(uplink.Options{URL: "mqtt://127.0.0.1:1883", Topic: testTopic,
		ReconnectMin: time.Second, ReconnectMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	uplink.SetJitter(u, highest(t))
	uplink.SetConnectedAt(u, time.Now().Add(-time.Hour))
	if got := uplink.ReconnectDelay(u, 0); got != 0 {
		t.Errorf("after a long connection: first wait %v, want 0", got)
	}
	uplink.SetConnectedAt(u, time.Now())
	if got := uplink.ReconnectDelay(u, 0); got != time.Second {
		t.Errorf("after a flap: first wait %v, want 1s", got)
	}
}
