package uplink

import (
	"context"
	"fmt"
	"time"
)

// The store's lifecycle, and group commit.
//
// New does no I/O. The store in Options.StoreDir is opened by Open, which
// Run and Enqueue call themselves, so whichever comes first opens it; a
// caller that wants to fail fast on a bad directory calls Open after New.
// Opening starts the committer, a goroutine the Uplink owns and Close waits
// for. Close makes it write whatever is pending, then closes Badger.
//
// The committer takes everything appended and deleted since its last turn,
// writes it as one Badger write batch and syncs it once, then wakes the
// Enqueue calls that were waiting for that sync. It never holds a batch back
// on purpose: while one sync is in progress the next batch fills up by
// itself, so under load many events share a sync and at a trickle each
// event waits for one sync only. Options.CommitInterval is therefore a
// bound, not a delay: a commit that takes longer is counted in
// Stats.SlowCommits, as the events in it waited longer than promised.

// Open opens the store in Options.StoreDir, if there is one, and starts the
// committer. It is called by Run and Enqueue, and may be called earlier to
// find out whether the store can be opened; further calls do nothing. After
// Close it returns ErrClosed. If the store cannot be opened the error names
// the directory and wraps Badger's reason; nothing is deleted, and a later
// call tries again.
func (u *Uplink) Open() error {
	if u.opts.StoreDir == "" || u.storeOpen.Load() {
		return nil
	}
	u.openMu.Lock()
	defer u.openMu.Unlock()
	switch {
	case u.storeOpen.Load():
		return nil
	case u.storeShut:
		return ErrClosed
	}
	s, err := openStore(u.opts.StoreDir, u.opts.QueueSize, u.log)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.store, u.ob = s, s
	u.mu.Unlock()
	go u.commitLoop(s)
	u.storeOpen.Store(true)
	return nil
}

// commitLoop is the committer: it writes batches until told to quit, and
// then until nothing is pending.
func (u *Uplink) commitLoop(s *diskOutbox) {
	defer close(s.exited)
	quitting := false
	for {
		u.mu.Lock()
		b := s.take()
		u.mu.Unlock()
		if b != nil {
			u.commit(s, b)
			continue
		}
		if quitting {
			return
		}
		select {
		case <-s.wake:
		case <-s.quit:
			quitting = true
		}
	}
}

// commit writes one batch and tells its Enqueue calls how it went.
func (u *Uplink) commit(s *diskOutbox, b *batch) {
	start := time.Now()
	err := s.write(b)
	took := time.Since(start)

	u.mu.Lock()
	s.written(b, err)
	if len(b.recs) > 0 && err == nil {
		u.stats.Enqueued += uint64(len(b.recs))
		u.stats.Syncs++
		if took > u.opts.CommitInterval {
			u.stats.SlowCommits++
		}
		u.work.notify()
	}
	if len(b.recs) > 0 && err != nil {
		u.space.notify() // the failed records no longer count against QueueSize
	}
	u.mu.Unlock()

	if err != nil {
		u.log.Error("store write failed", "dir", s.dir, "events", len(b.recs), "deletes", len(b.dels), "err", err)
		b.err = fmt.Errorf("uplink: enqueue: store %s: %w", s.dir, err)
	}
	if b.done != nil {
		close(b.done)
	}
}

// closeStore stops the committer once it has written everything pending,
// then closes Badger. It is safe to call more than once, and when the store
// was never opened; later calls return the first one's error.
func (u *Uplink) closeStore() error {
	u.openMu.Lock()
	defer u.openMu.Unlock()
	if u.storeShut {
		return u.storeCloseErr
	}
	u.storeShut = true
	u.mu.Lock()
	s := u.store
	u.mu.Unlock()
	if s == nil {
		return nil
	}
	close(s.quit)
	<-s.exited

	u.mu.Lock()
	s.closed = true // a Run that outlived Close's deadline reads no more
	if s.err == nil {
		s.err = errStoreClosed
	}
	u.mu.Unlock()
	if err := s.db.Close(); err != nil {
		u.storeCloseErr = fmt.Errorf("uplink: close store %s: %w", s.dir, err)
	}
	return u.storeCloseErr
}

// waitDurable waits for the batch an Enqueue joined to be synced. If ctx
// ends first the event may still be stored and delivered; a retry is safe,
// as the cloud deduplicates by id.
func waitDurable(ctx context.Context, b *batch) error {
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("uplink: enqueue: gave up waiting for the store to sync (the event may still be delivered): %w", ctx.Err())
	}
}
