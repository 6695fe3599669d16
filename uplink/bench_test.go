package uplink_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// BenchmarkUplinkPublish measures events from Enqueue to PUBACK through a
// real Mosquitto on loopback (its default Receive Maximum is 20). The
// window=1 case is the reference: one publish at a time, as a blocking
// Publish loop would do.
func BenchmarkUplinkPublish(b *testing.B) {
	m := uplinktest.StartMosquitto(b)
	for _, bc := range []struct {
		name        string
		maxInflight int
	}{
		{"window=1", 1},
		{"window=broker", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// Enqueue waits while the queue is full instead of dropping the
			// oldest: every event counts, as the check below wants.
			u := newUplink(b, uplink.Options{URL: m.URL(), MaxInflight: bc.maxInflight, WhenFull: uplink.Reject})
			done := make(chan error, 1)
			go func() { done <- u.Run(context.Background()) }()
			evs := makeEvents(b.N)
			eventually(b, "connection", func() bool { return u.Stats().Connected })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			b.ReportAllocs()
			b.ResetTimer()
			for _, ev := range evs {
				if err := u.Enqueue(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			err := u.Close(ctx) // returns once every event is acknowledged
			b.StopTimer()

			if err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if s := u.Stats(); s.Forwarded != uint64(b.N) {
				b.Fatalf("Stats = %+v, want %d forwarded", s, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
