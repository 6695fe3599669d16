package uplink_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/flowgate/flowgate/uplink"
)

// enqueuers is how many goroutines enqueue at once in the store benchmarks.
const enqueuers = 64

// inFlight is how many events each enqueuer of BenchmarkDurableEnqueue
// has submitted and not yet seen synced: 1,024 in all, as a fleet of
// devices keeps publishes in flight.
const inFlight = 16

// rawBatch is the batch size of the raw Badger reference: about what the
// store's group commits carry with 1,024 events in flight.
const rawBatch = enqueuers * inFlight / 2

// BenchmarkDurableEnqueue measures durable enqueues with group commit: 64
// goroutines submit ~300-byte events, each keeping inFlight of them
// waiting for their sync, as the gateway does with devices' publishes. No
// broker: nothing is delivered or deleted meanwhile.
//   - "journal" is the store as it runs with the cloud away: the journal
//     holds its hot bytes before the timer starts, so every timed event
//     also pushes an older one into Badger (spilled/event is 1).
//   - "badger" is the store without the journal: every event written into
//     Badger at its commit.
//   - "hot" is the journal alone, with room for every event (spilled/event
//     is 0): the store's side of a gateway whose cloud keeps up, where no
//     event touches Badger. Acknowledging them (forgetting hot records,
//     removing journal files) is not part of it. A run longer than hotFor
//     (3s) would spill by age, and fails.
func BenchmarkDurableEnqueue(b *testing.B) {
	b.Run("journal", func(b *testing.B) { benchEnqueue(b, uplink.Options{}, true) })
	b.Run("badger", func(b *testing.B) { benchEnqueue(b, uplink.WithoutJournal(uplink.Options{}), true) })
	b.Run("hot", func(b *testing.B) { benchEnqueue(b, uplink.WithHotBytes(uplink.Options{}, 1<<40), false) })
}

func benchEnqueue(b *testing.B, opts uplink.Options, filled bool) {
	rec, _ := uplink.Encode(newUplink(b, uplink.Options{URL: offline}), makeEvents(1)[0])
	fill := 0
	if filled {
		// Before the timer, as many events as the journal holds hot: from
		// the first timed event on, the store is in its steady state, each
		// event pushing an older one into Badger, however short the run.
		fill = uplink.HotMax / uplink.HotValueLen(rec)
	}
	evs := makeEvents(fill + b.N)
	opts.URL, opts.StoreDir, opts.QueueSize = offline, b.TempDir(), fill+b.N+1
	u := newUplink(b, opts)
	if err := u.Open(); err != nil {
		b.Fatal(err)
	}
	last := uplink.Durable{}
	for _, ev := range evs[:fill] {
		d, err := u.Submit(context.Background(), ev, "")
		if err != nil {
			b.Fatal(err)
		}
		last = d
	}
	if err := last.Wait(context.Background()); err != nil {
		b.Fatal(err)
	}
	before := u.Stats()
	var next atomic.Int64
	next.Store(int64(fill))
	b.SetParallelism((enqueuers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each enqueuer keeps inFlight events submitted and not yet
		// synced, as a device keeps publishes in flight, and waits for the
		// oldest before submitting past that.
		var ring [inFlight]uplink.Durable
		n := 0
		for ; pb.Next(); n++ {
			if err := ring[n%inFlight].Wait(context.Background()); err != nil {
				b.Error(err)
				return
			}
			d, err := u.Submit(context.Background(), evs[next.Add(1)-1], "")
			if err != nil {
				b.Error(err)
				return
			}
			ring[n%inFlight] = d
		}
		for _, d := range ring {
			if err := d.Wait(context.Background()); err != nil {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	s := u.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(s.Enqueued-before.Enqueued)/float64(max(s.Syncs-before.Syncs, 1)), "events/sync")
	b.ReportMetric(float64(len(rec)), "B/event")
	b.ReportMetric(float64(s.Spilled-before.Spilled)/float64(b.N), "spilled/event")
	if !filled && s.Spilled > before.Spilled {
		b.Errorf("%d events spilled: the run outlasted hotFor, and measured Badger too", s.Spilled-before.Spilled)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_ = u.Close(ctx) // ErrUndelivered: nothing was sent
}

// BenchmarkRawBadgerBatch is the reference for BenchmarkDurableEnqueue: the
// same records, with the same Badger options, written by one goroutine in
// batches of rawBatch, one sync per batch. "explicit" is what the store does
// (SyncWrites off, WriteBatch, then db.Sync); "sync_writes" is the
// alternative of SyncWrites on and one transaction per batch.
func BenchmarkRawBadgerBatch(b *testing.B) {
	b.Run("explicit", func(b *testing.B) {
		benchRawBadger(b, false, func(db *badger.DB, keys, recs [][]byte) error {
			wb := db.NewWriteBatch()
			for i := range keys {
				if err := wb.Set(keys[i], recs[i]); err != nil {
					wb.Cancel()
					return err
				}
			}
			if err := wb.Flush(); err != nil {
				return err
			}
			return db.Sync()
		})
	})
	b.Run("sync_writes", func(b *testing.B) {
		benchRawBadger(b, true, func(db *badger.DB, keys, recs [][]byte) error {
			return db.Update(func(txn *badger.Txn) error {
				for i := range keys {
					if err := txn.Set(keys[i], recs[i]); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

func benchRawBadger(b *testing.B, syncWrites bool, write func(db *badger.DB, keys, recs [][]byte) error) {
	evs := makeEvents(b.N)
	u := newUplink(b, uplink.Options{URL: offline})
	recs := make([][]byte, b.N)
	keys := make([][]byte, b.N)
	for i, ev := range evs {
		recs[i], _ = uplink.Encode(u, ev)
		keys[i] = binary.BigEndian.AppendUint64(nil, uint64(i+1))
	}
	opts := uplink.BadgerOptions(b.TempDir(), slog.New(slog.DiscardHandler)).WithSyncWrites(syncWrites)
	db, err := badger.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += rawBatch {
		j := min(i+rawBatch, b.N)
		if err := write(db, keys[i:j], recs[i:j]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOpenBacklog measures opening a store that holds a million
// events (FLOWGATE_BENCH_BACKLOG changes the number), filled through
// Enqueue so that it is laid out as the outbox lays it out. Open checks the
// store's files (each table's index, the write-ahead logs), then reads the
// meta record and counts only what was written after it: nothing reads the
// backlog itself.
func BenchmarkOpenBacklog(b *testing.B) {
	n := backlogSize(b, defaultBacklog)
	dir := b.TempDir()
	fillBacklog(b, dir, n)
	b.ReportAllocs()
	for b.Loop() {
		u := newUplink(b, uplink.Options{URL: offline, StoreDir: dir, QueueSize: benchQueue})
		if err := u.Open(); err != nil {
			b.Fatal(err)
		}
		if got := u.Stats().Queued; got != n {
			b.Fatalf("Queued %d after opening, want %d", got, n)
		}
		b.StopTimer()
		_ = closeOK(b, u)
		b.StartTimer()
	}
}
