package uplink_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// bulkyEvents returns n events of about size bytes of random, so
// incompressible, data: the worst case for a byte cap on disk.
func bulkyEvents(n, size int) []*event.Event {
	evs := make([]*event.Event, n)
	raw := make([]byte, size*3/4)
	for i := range evs {
		_, _ = rand.Read(raw)
		data, _ := json.Marshal(map[string]any{"seq": i, "blob": base64.StdEncoding.EncodeToString(raw)})
		evs[i] = &event.Event{ID: event.NewID(), Source: "/gateways/gw1/devices/cam-1", Type: "cam.frame",
			Subject: "cam-1", Time: time.Now(), DataContentType: "application/json", Data: data}
	}
	return evs
}

// enqueueParallel enqueues evs from workers goroutines, each keeping the
// order of its share.
func enqueueParallel(t testing.TB, u *uplink.Uplink, evs []*event.Event, workers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(evs); i += workers {
				if err := u.Enqueue(ctx, evs[i]); err != nil {
					errs <- fmt.Errorf("Enqueue %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestByteCapHoldsOnDisk fills a store with a byte cap three times over,
// with the cloud away, and checks that the store's size on disk settles at
// the cap, that the drop counter accounts for every event not kept, and
// that the events kept, the newest, are delivered when the cloud returns.
func TestByteCapHoldsOnDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 190 MB")
	}
	const capBytes = 64 << 20
	m := uplinktest.StartMosquitto(t, "max_queued_messages 0", "message_size_limit 0")
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u, gate := startOffline(t, m, uplink.Options{StoreDir: t.TempDir(), MaxBytes: capBytes, QueueSize: 1 << 20})
	evs := bulkyEvents(12000, 16<<10) // 16 KiB of random data each: 3 times the cap

	// Sample the store's size as the gateway measures it, once per
	// maintenance turn, from the moment it first reaches the cap.
	var samples []int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if s := u.Stats(); s.StoreBytes >= capBytes*95/100 || len(samples) > 0 {
				samples = append(samples, s.StoreBytes)
			}
		}
	}()
	for i := 0; i < len(evs); i += 1000 {
		enqueueParallel(t, u, evs[i:i+1000], 32)
	}
	close(stop)
	<-sampled

	mean, worst := stats(samples)
	t.Logf("store size over %d turns at the cap: mean %.3f of the cap, largest %.3f",
		len(samples), mean/capBytes, float64(worst)/capBytes)
	if len(samples) < 8 {
		t.Fatalf("only %d samples at the cap", len(samples))
	}
	if mean < capBytes*0.95 || mean > capBytes*1.05 {
		t.Errorf("mean store size %.1f MiB, want within 5%% of the cap, %d MiB", mean/(1<<20), capBytes>>20)
	}
	if worst > capBytes*5/4 {
		t.Errorf("store size reached %d MiB, a quarter above the cap", worst>>20)
	}

	s := u.Stats()
	kept, dropped := s.Queued, s.Dropped[uplink.DropFull]
	if s.Enqueued != uint64(len(evs)) || uint64(kept)+dropped != s.Enqueued || dropped < uint64(len(evs))/2 {
		t.Fatalf("Stats = %+v: want %d enqueued = queued + dropped, most dropped", s, len(evs))
	}
	gate.set(false)
	eventually(t, "every kept event acknowledged", func() bool { return u.Stats().Queued == 0 })
	// The store is still above the cap on disk when the cloud returns
	// (Badger compacts deleted events later), but while the cloud takes
	// events nothing queued is dropped for it, unless the disk passes a
	// quarter above the cap: what was kept is delivered (2% slack for
	// that), and every event is accounted for as forwarded or dropped.
	s = u.Stats()
	delivered := kept - int(s.Dropped[uplink.DropFull]-dropped)
	t.Logf("%d of the %d kept were dropped while the cloud drained the queue", kept-delivered, kept)
	if s.Forwarded+s.Dropped[uplink.DropFull] != s.Enqueued || delivered > kept || delivered < kept-kept/50 {
		t.Fatalf("after the drain Stats = %+v: want forwarded + dropped = enqueued, few dropped during the drain", s)
	}
	dropped = s.Dropped[uplink.DropFull]
	got := c.WaitN(t, delivered, waitTimeout)
	pos := make(map[string]int, len(evs))
	for i, ev := range evs {
		pos[ev.ID] = i
	}
	seen := make(map[string]bool, kept)
	for _, id := range ids(got) {
		// Drop-oldest keeps the newest; 32 writers blur the order a little.
		if i, ok := pos[id]; !ok || seen[id] || i < int(dropped)-1000 {
			t.Fatalf("delivered event %d (id %s, seen before %v); %d were dropped, the oldest", i, id, seen[id], dropped)
		}
		seen[id] = true
	}
}

// stats returns the mean and largest of samples.
func stats(samples []int64) (mean float64, largest int64) {
	for _, v := range samples {
		mean += float64(v)
		largest = max(largest, v)
	}
	return mean / float64(max(len(samples), 1)), largest
}
