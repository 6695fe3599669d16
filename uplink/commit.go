package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
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

// Open opens the store in Options.StoreDir (or in memory) and starts the
// committer. It is called by Run and Enqueue, and may be called earlier to
// find out whether the store can be opened; further calls do nothing. After
// Close it returns ErrClosed. If the store cannot be opened the error names
// the directory and wraps Badger's reason; nothing is deleted, and a later
// call tries again.
func (u *Uplink) Open() error {
	if u.storeOpen.Load() {
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
	ob, err := openOutbox(&u.opts)
	if err != nil {
		return err
	}
	ob.budget = initialBudget(&u.opts, ob)
	u.mu.Lock()
	u.ob = ob
	u.defLane = len(u.opts.Classes) - 1
	u.mu.Unlock()
	u.storeOpen.Store(true)
	u.maint.Add(1)
	go u.commitLoop(ob)
	go u.maintain(ob)
	return nil
}

// batch is the unit of group commit: the records appended, deleted and
// quarantined since the committer last took one.
type batch struct {
	recs  []record
	dels  []delRef
	bad   []badRecord
	drop  []segRef      // segments to drop, all their records deleted
	again []segRef      // of drop, those not yet gone: to drop again
	lows  []uint64      // each lane's low mark when the batch was taken
	lost  []lostRef     // records a recount found unreadable (outbox.go)
	done  chan struct{} // closed once recs are written, or failed to be
	err   error         // set before done is closed

	top     uint64   // every record up to this was durable when the batch was taken
	jf      uint32   // the journal file recs were written to
	spill   []record // hot records to write to Badger (hot.go)
	spillTo uint64   // every hot record below is in spill, or deleted
	jfree   []uint32 // journal files to remove

	release  []uint32 // journal files of spilled records this batch synced
	unsynced int      // spilled records left to sync
}

// take hands the pending batch to the committer, or returns nil if there
// is none.
func (o *outbox) take() *batch {
	b := o.pend
	o.pend, o.writing = nil, b
	if b != nil {
		b.lows = make([]uint64, len(o.lanes))
		for i, l := range o.lanes {
			b.lows[i] = l.low
		}
		if o.jr != nil {
			b.top = o.durable
			o.takeRemovedHot(b)
		}
		o.takeSpill(b, time.Now(), false)
	}
	return b
}

// commitLoop is the committer: it writes batches until told to quit, and
// then until nothing is pending.
func (u *Uplink) commitLoop(o *outbox) {
	defer close(o.exited)
	quitting := false
	for {
		u.mu.Lock()
		b := o.take()
		stopped := o.err // a write failed: nothing more is written
		u.mu.Unlock()
		if b != nil {
			u.commit(o, b, stopped)
			continue
		}
		if quitting {
			return
		}
		select {
		case <-o.wake:
		case <-o.quit:
			quitting = true
		}
	}
}

// lostRef is what a recount found lost in one lane: events and bytes.
type lostRef struct {
	lane  int
	n     int
	bytes int64
}

// delRef is a record to delete: its id, segment and size.
type delRef struct {
	id         uint64
	seg        uint32
	cost       int64
	below      bool   // below the lane's new low mark: no tombstone needed
	journalled bool   // it was a hot or spilling record (hot.go)
	jf         uint32 // then: its journal file
	hot        bool   // set when taken: not in Badger, nothing to write
}

// commit writes one batch and tells its Enqueue calls how it went.
func (u *Uplink) commit(o *outbox, b *batch, stopped error) {
	start := time.Now()
	err := stopped
	if err == nil {
		err = o.write(b)
	}
	took := time.Since(start)

	u.mu.Lock()
	o.written(b, err)
	if len(b.recs) > 0 && err == nil {
		u.stats.Enqueued += uint64(len(b.recs))
		if o.dir != "" {
			u.stats.Syncs++
			u.commitTimes.observe(took)
			if took > u.opts.CommitInterval {
				u.stats.SlowCommits++
			}
		}
		u.work.notify()
	}
	u.space.notify() // written records may be dropped to make room; failed ones no longer count
	u.mu.Unlock()

	if err != nil {
		u.log.Error("store write failed", "dir", o.dir, "events", len(b.recs), "deletes", len(b.dels), "err", err)
		b.err = fmt.Errorf("uplink: enqueue: store %s: %w", o.dir, err)
	}
	if b.done != nil {
		close(b.done)
	}
}

// write puts b in the store, then syncs once if b holds records (removals
// alone are not synced). It runs on the committer only, which owns o.meta.
//
// The meta record must agree with the store after a crash at any point.
// Removals (deletes, quarantine moves, low marks) are written first, in
// transactions of at most maxRemovalsPerTxn, each carrying the meta that is
// true once it is applied; Badger applies a transaction whole or not at
// all. Records are written after, in as many transactions as they need,
// without meta: meta counts records up to its Last, and opening the store
// counts those beyond it (countTail).
func (o *outbox) write(b *batch) error {
	m := o.meta.clone()
	again, err := o.dropSegments(b.drop, &m)
	if err != nil {
		return err
	}
	b.again = again
	if err := o.writeRemovals(b, &m); err != nil {
		return err
	}
	if o.jr != nil {
		return o.writeJournalled(b, &m)
	}
	if err := o.writeRecords(b.recs, &m); err != nil {
		return err
	}
	o.meta = m
	if len(b.recs) == 0 {
		return nil
	}
	return o.syncStore()
}

// syncStore makes every write Badger has taken durable. db.Sync syncs only
// the active memtable's log; one Badger has just rotated is synced when
// its flush to a table ends, and until then a power cut would lose what
// it holds. So each memtable log is synced too (fsync writes back pages
// written through Badger's mapping), and each value log: db.Sync syncs the
// current one only, and a value above the threshold written before it
// rotated would wait for the kernel.
func (o *outbox) syncStore() error {
	if o.dir == "" {
		return nil
	}
	if err := o.db.Sync(); err != nil {
		return err
	}
	mems, err := filepath.Glob(filepath.Join(o.dir, "*.mem"))
	if err != nil {
		return err
	}
	vlogs, err := filepath.Glob(filepath.Join(o.dir, "*.vlog"))
	if err != nil {
		return err
	}
	for _, p := range append(mems, vlogs...) {
		// One flushed to a table and deleted meanwhile needs nothing.
		if err := syncPath(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeJournalled appends b's records to the journal, and writes its spill
// into Badger: a sync of each makes them durable.
func (o *outbox) writeJournalled(b *batch, m *meta) error {
	for _, q := range b.bad {
		if q.hot { // its copy in the quarantine is not synced yet
			o.unsynced = append(o.unsynced, q.jf)
		}
	}
	for _, n := range b.jfree {
		if err := o.jr.remove(n); err != nil {
			o.log.Warn("cannot remove a journal file; it is replayed at the next start", "err", err)
		}
	}
	// Badger's part of a commit, the spill and, when due, the sync that
	// lets journal files go, runs while the new records are written and
	// synced to the journal: the two touch different files, and the new
	// records are durable by the journal alone. Whichever fails fails the
	// batch, after both ended; what either left on disk is what a crash
	// between them would leave, which opening the store reads.
	syncDue := (len(o.unsynced) > 0 || len(b.spill) > 0) && (!o.deferSync || time.Since(o.synced) >= spillSyncEvery)
	var storeErr error
	stored := make(chan struct{})
	if len(b.spill) > 0 || syncDue {
		go func() {
			defer close(stored)
			if len(b.spill) > 0 {
				storeErr = o.writeRecords(b.spill, m)
			}
			if storeErr == nil && syncDue {
				storeErr = o.syncStore()
			}
		}()
	} else {
		close(stored)
	}
	var err error
	if len(b.recs) > 0 {
		b.jf, err = o.jr.append(b.recs, o.lanes)
	}
	<-stored
	if err := errors.Join(err, storeErr); err != nil {
		return err
	}
	for _, r := range b.spill {
		o.unsynced = append(o.unsynced, r.jf)
	}
	if syncDue {
		m.Synced = m.Last // written with the next meta, after the sync
	}
	o.meta = *m
	if syncDue {
		b.release, o.unsynced, o.synced = o.unsynced, nil, time.Now()
	}
	b.unsynced = len(o.unsynced)
	return nil
}

// maxRemovalsPerTxn keeps each transaction of removals well within what
// Badger takes in one, however many events a turn of expiry drops.
const maxRemovalsPerTxn = 1000

// writeRemovals writes b's deletes, quarantine moves and low marks, with
// meta, and applies them to m.
func (o *outbox) writeRemovals(b *batch, m *meta) error {
	for i, low := range b.lows {
		m.setLow(o.lanes[i].Name, low)
	}
	m.Top = max(m.Top, b.top)
	for _, lr := range b.lost {
		name := o.lanes[lr.lane].Name
		lm := m.Lanes[name]
		lm.N, lm.Bytes = lm.N-lr.n, lm.Bytes-lr.bytes
		m.Lanes[name] = lm
	}
	ops := make([]func(*badger.Txn, *meta) error, 0, len(b.dels)+len(b.bad))
	for _, d := range b.dels {
		ops = append(ops, func(txn *badger.Txn, m *meta) error { return o.deleteRecord(txn, d, m) })
	}
	for _, q := range b.bad {
		ops = append(ops, func(txn *badger.Txn, m *meta) error { return o.setAside(txn, q, m) })
	}
	for first := true; first || len(ops) > 0; first = false {
		chunk := ops[:min(len(ops), maxRemovalsPerTxn)]
		ops = ops[len(chunk):]
		err := o.db.Update(func(txn *badger.Txn) error {
			for _, op := range chunk {
				if err := op(txn, m); err != nil {
					return err
				}
			}
			return txn.Set(metaKey, m.encode())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteRecord writes the delete of d, unless the low mark covers it.
func (o *outbox) deleteRecord(txn *badger.Txn, d delRef, m *meta) error {
	l := o.lanes[idLane(d.id)]
	if d.hot {
		return nil // never in Badger, nor counted in meta
	}
	m.add(l.Name, -d.cost)
	if d.below {
		return nil
	}
	return txn.Delete(recordKey(l, d.seg, idSeq(d.id)))
}

// writeRecords writes b's records, and the guard key of each new segment,
// splitting them over transactions as Badger requires, and counts them in m.
func (o *outbox) writeRecords(recs []record, m *meta) error {
	txn := o.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	set := func(k, v []byte) error {
		err := txn.Set(k, v)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			txn = o.db.NewTransaction(true)
			err = txn.Set(k, v)
		}
		return err
	}
	for _, r := range recs {
		l := o.lanes[idLane(r.id)]
		if m.noteSegment(l.Name, r.seg, idSeq(r.id)) {
			if err := set(recordKey(l, r.seg, guardSeq), nil); err != nil {
				return err
			}
		}
		if err := set(recordKey(l, r.seg, idSeq(r.id)), r.val); err != nil {
			return err
		}
		m.add(l.Name, recordCost(l, r.val))
		m.Last = max(m.Last, idSeq(r.id))
	}
	return txn.Commit()
}

func (m meta) clone() meta {
	c := meta{Last: m.Last, Top: m.Top, Synced: m.Synced, Lanes: make(map[string]laneMeta, len(m.Lanes))}
	for k, v := range m.Lanes {
		v.Segs = slices.Clip(v.Segs) // appends copy: the committer's meta and the clone do not share
		c.Lanes[k] = v
	}
	return c
}

// add counts one record of cost bytes in (cost > 0) or out (cost < 0).
func (m *meta) add(name string, cost int64) {
	lm := m.Lanes[name]
	if cost >= 0 {
		lm.N++
	} else {
		lm.N--
	}
	lm.Bytes += cost
	if lm.N <= 0 || lm.Bytes < 0 {
		lm.Bytes = 0 // a damaged record's cost is Badger's estimate: never count below empty
	}
	m.Lanes[name] = lm
}

// setLow raises lane name's low mark in m to low.
func (m *meta) setLow(name string, low uint64) {
	if lm := m.Lanes[name]; low > lm.Low {
		lm.Low = low
		m.Lanes[name] = lm
	}
}

func (m meta) encode() []byte {
	b, _ := json.Marshal(m) // plain data: cannot fail
	return b
}

// written records the outcome of writing b: its records become sendable, or,
// if the write failed, are forgotten (their Enqueue fails) and the outbox
// refuses new ones from then on.
func (o *outbox) written(b *batch, err error) {
	o.writing = nil
	o.redrop = append(o.redrop, b.again...)
	if err != nil {
		// What the store holds is no longer known for sure: it takes
		// nothing more (Append refuses, the committer writes nothing),
		// and what it holds on disk is read again at the next start.
		o.spillTo = o.hotFrom
		for _, r := range b.recs {
			o.forget(o.lanes[idLane(r.id)], recordCost(o.lanes[idLane(r.id)], r.val))
		}
		if o.err == nil {
			o.err = fmt.Errorf("uplink: store %s: write failed: %w", o.dir, err)
		}
		if o.jr != nil {
			forgetBoot(filepath.Join(o.dir, journalDir))
		}
		return // b's removals stay in dels: Next keeps skipping them
	}
	for _, d := range b.dels {
		delete(o.dels, d.id)
	}
	for _, q := range b.bad {
		delete(o.dels, q.id)
	}
	if len(b.spill) > 0 {
		o.spilled(b)
		o.spills += uint64(len(b.spill))
	}
	for _, jf := range b.release {
		o.release(jf)
	}
	o.unsyncedN = b.unsynced
	if len(b.recs) == 0 {
		return
	}
	if o.jr != nil {
		o.addHot(b.recs, b.jf)
	}
	o.extendReadAheads(b.recs)
}

// extendReadAheads adds records just written to the read-aheads of their
// lanes, where a read-ahead reaches up to everything written before them
// and has room: live events are then sent without reading the store.
func (o *outbox) extendReadAheads(recs []record) {
	prev := o.durable
	o.durable = idSeq(recs[len(recs)-1].id)
	grow := make([]bool, len(o.lanes))
	for i, l := range o.lanes {
		grow[i] = l.raTo == prev+1
	}
	for _, r := range recs {
		li := idLane(r.id)
		l := o.lanes[li]
		if !grow[li] {
			continue
		}
		if len(l.ra) >= raSize {
			grow[li] = false
			l.raTo = idSeq(r.id) // this record and later ones are not cached
			continue
		}
		l.ra = append(l.ra, r)
	}
	for i, l := range o.lanes {
		if grow[i] {
			l.raTo = o.durable + 1
		}
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
	if !u.storeOpen.Load() {
		return nil
	}
	u.mu.Lock()
	o := u.ob
	u.mu.Unlock()
	close(o.quit)
	<-o.exited
	u.maint.Wait()

	u.mu.Lock()
	o.closed = true // a Run that outlived Close's deadline reads no more
	if o.err == nil {
		o.err = errStoreClosed
	}
	u.mu.Unlock()
	if err := o.close(); err != nil {
		u.storeCloseErr = fmt.Errorf("uplink: close store %s: %w", o.dir, err)
	}
	return u.storeCloseErr
}

// close spills the hot records (hot.go) and closes Badger; the committer
// has stopped. After a failed write the journal stays as it is, for the
// next start to replay.
func (o *outbox) close() error {
	if o.err != nil && !errors.Is(o.err, errStoreClosed) {
		o.log.Warn("the store failed: its journal is replayed at the next start", "dir", o.dir, "err", o.err)
	} else if err := o.closeHot(); err != nil {
		o.log.Warn("events left in the journal; they are replayed at the next start", "dir", o.dir, "err", err)
	}
	return o.db.Close()
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
