package gateway

import (
	"log/slog"
	"runtime"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/flowgate/flowgate/gateway/config"
)

// TestBrokerClientMemory: a connection's outbound queue is bounded to
// broker.max_queued (mochi allocates it for every connection; its default
// of 8,192 pointers is 64 KiB, scanned by every GC), and a thousand clients
// of the broker as configured by default hold less than half the heap of
// mochi's defaults (measured, not assumed).
func TestBrokerClientMemory(t *testing.T) {
	c := config.Default().Broker
	b := newBroker(c, slog.New(slog.DiscardHandler))
	if got := b.Options.Capabilities.MaximumClientWritesPending; got != int32(c.MaxQueued) {
		t.Fatalf("MaximumClientWritesPending %d, want broker.max_queued %d", got, c.MaxQueued)
	}
	ours := heapPerClient(t, b)
	theirs := heapPerClient(t, mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)}))
	t.Logf("heap per client: %d B configured, %d B with mochi's defaults", ours, theirs)
	if ours*2 > theirs {
		t.Errorf("heap per client %d B, mochi's default %d B: want less than half", ours, theirs)
	}
}

func heapPerClient(t *testing.T, s *mqtt.Server) uint64 {
	t.Helper()
	const n = 1000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*mqtt.Client, n)
	for i := range clients {
		clients[i] = s.NewClient(nil, "tcp", "c", false)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(clients)
	return (after.HeapAlloc - before.HeapAlloc) / n
}
