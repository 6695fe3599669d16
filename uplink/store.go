package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// diskOutbox is the durable outbox: records live in a Badger store under
// 8-byte big-endian sequence number keys, so that key order is send order and
// a restart finds them all again.
//
// Records reach the disk in groups. Append only queues a record in the
// pending batch; the committer (commit.go) writes each batch with one Badger
// write and one sync, outside the Uplink's mutex. Next returns only records
// at or below durable, the last sequence number known to be synced: the
// cloud never sees an event whose Enqueue has not returned.
//
// The backlog is not held in memory. Next reads a window of up to raSize
// records from Badger (the read-ahead), and records just committed are added
// to that window while it is short, so that live events are sent without a
// read. Deletes are batched too, and not synced: a delete lost in a crash
// only means the event is sent again with the same id.
//
// Like every outbox, its methods are called with the Uplink's mutex held.
type diskOutbox struct {
	db    *badger.DB
	dir   string
	log   *slog.Logger
	limit int

	n       int    // records held: pending, or on disk and not deleted
	next    uint64 // sequence number of the next Append
	durable uint64 // every record at or below this is on disk
	err     error  // set once a write failed, or the store closed: Append refuses

	pend     *batch          // appended, not yet taken by the committer
	pendDels []uint64        // deleted, not yet taken by the committer
	dels     map[uint64]bool // deleted in memory, not yet written: Next skips them

	ra           []record // every record held with raFrom <= seq < raTo, ascending
	raFrom, raTo uint64

	wake   chan struct{} // buffered: tells the committer there is work
	quit   chan struct{} // closed to stop the committer once it has written everything
	exited chan struct{} // closed by the committer when it returns
	closed bool          // the store is closed: Next and Delete do nothing
}

// record is one encoded event and its sequence number.
type record struct {
	seq uint64
	rec []byte
}

// batch is the unit of group commit: the records appended, and the deletes
// made, since the committer last took one.
type batch struct {
	recs []record
	dels []uint64
	done chan struct{} // closed once recs are synced, or failed to be
	err  error         // set before done is closed
}

// raSize bounds the read-ahead, and so the memory the outbox uses for
// records already on disk: about 300 kB for 300-byte events.
const raSize = 1024

// seqKey is the Badger key of sequence number seq.
func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// openStore opens or creates the store in dir and finds the records it holds
// (a key-only scan: it counts them). It never deletes anything; if the store
// cannot be opened the error says where and wraps Badger's reason.
func openStore(dir string, limit int, log *slog.Logger) (*diskOutbox, error) {
	db, err := badger.Open(badgerOptions(dir, log))
	if err != nil {
		return nil, fmt.Errorf("uplink: open store %s: %w", dir, err)
	}
	first, last, n, err := scanStore(db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("uplink: read store %s: %w", dir, err)
	}
	if n > 0 {
		log.Info("store opened with a backlog", "dir", dir, "queued", n, "first_seq", first, "last_seq", last)
	}
	return &diskOutbox{
		db: db, dir: dir, log: log, limit: limit,
		n: n, next: last + 1, durable: last,
		dels:   make(map[uint64]bool),
		raFrom: last + 1, raTo: last + 1, // nothing cached: the next commit starts the read-ahead
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}, nil
}

// scanStore counts the records in db and returns the first and last
// sequence numbers (0, 0 if there are none). It reads keys only.
func scanStore(db *badger.DB) (first, last uint64, n int, err error) {
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 8 {
				continue // not a record: nothing else is stored yet
			}
			seq := binary.BigEndian.Uint64(k)
			if n == 0 {
				first = seq
			}
			last = seq
			n++
		}
		return nil
	})
	return first, last, n, err
}

// badgerOptions are chosen for a gateway on a Raspberry Pi class device: a
// few hundred MB of RAM, an SD card or eMMC, a queue that is written once,
// read once and deleted.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		// Writes are not synced one by one: the committer syncs each group
		// with db.Sync (see commit.go), which is what makes group commit work.
		WithSyncWrites(false).
		// Small memtables (the default is five of 64 MB) bound RAM. A
		// memtable's write-ahead log is what db.Sync makes durable.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// Events (~300 B) stay below the value threshold, so they live in
		// the LSM tree itself: compaction drops deleted events, and no value
		// log garbage collection is needed. The value log then holds only
		// the rare event above 1 MB; 64 MB files instead of 1 GB ones.
		WithValueThreshold(1 << 20).
		WithValueLogFileSize(64 << 20).
		// Snappy shrinks JSON several times; a small block cache is enough
		// for a queue read front to back.
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2).
		// No transactions compete: one committer writes, so conflict
		// detection is memory for nothing. No expvar metrics (global state).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{log}).
		WithLoggingLevel(badger.WARNING)
}

// badgerLogger passes Badger's warnings and errors to slog; its info and
// debug lines are dropped (Badger filters levels only in its own logger).
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, v ...any) {
	b.l.Error(trimNewline(fmt.Sprintf(f, v...)), "source", "badger")
}

func (b badgerLogger) Warningf(f string, v ...any) {
	b.l.Warn(trimNewline(fmt.Sprintf(f, v...)), "source", "badger")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

func trimNewline(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		return s[:n-1]
	}
	return s
}

// errStoreClosed is what Append returns once the store has been closed; the
// Uplink refuses with ErrClosed before it gets there.
var errStoreClosed = errors.New("uplink: store closed")

// Append queues rec for the next group commit. The caller waits for
// pending() to be done before reporting the record accepted.
func (d *diskOutbox) Append(rec []byte) (uint64, error) {
	switch {
	case d.err != nil:
		return 0, d.err
	case d.n >= d.limit:
		return 0, errFull
	}
	if d.pend == nil {
		d.pend = &batch{done: make(chan struct{})}
	}
	seq := d.next
	d.next++
	d.pend.recs = append(d.pend.recs, record{seq, rec})
	d.n++
	d.poke()
	return seq, nil
}

// pending is the batch the last Append joined.
func (d *diskOutbox) pending() *batch { return d.pend }

// Next returns the oldest durable record at or after from.
func (d *diskOutbox) Next(from uint64) (uint64, []byte, bool) {
	for !d.closed && from <= d.durable {
		if from >= d.raFrom && from < d.raTo {
			i, _ := slices.BinarySearchFunc(d.ra, from, func(r record, s uint64) int { return cmpUint(r.seq, s) })
			if i < len(d.ra) {
				return d.ra[i].seq, d.ra[i].rec, true
			}
			from = d.raTo
			continue
		}
		if !d.readAhead(from) {
			break
		}
	}
	return 0, nil, false
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readAhead replaces the read-ahead with up to raSize durable records from
// from on. A read error is logged and reported as nothing to send.
func (d *diskOutbox) readAhead(from uint64) bool {
	ra := make([]record, 0, min(raSize, d.n))
	err := d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Seek(seqKey(from)); it.Valid() && len(ra) < raSize; it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != 8 {
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			if seq > d.durable {
				break
			}
			if d.dels[seq] {
				continue
			}
			rec, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("record %d: %w", seq, err)
			}
			ra = append(ra, record{seq, rec})
		}
		return nil
	})
	if err != nil {
		d.log.Error("cannot read queued events from the store", "dir", d.dir, "err", err)
		return false
	}
	d.ra, d.raFrom, d.raTo = ra, from, d.durable+1
	if len(ra) == raSize {
		d.raTo = ra[len(ra)-1].seq + 1
	}
	return true
}

// Delete removes a durable record: from memory now, from the disk at the
// next commit, unsynced.
func (d *diskOutbox) Delete(seq uint64) {
	if d.closed || seq > d.durable || d.dels[seq] || !d.holds(seq) {
		return
	}
	d.dels[seq] = true
	d.pendDels = append(d.pendDels, seq)
	d.n--
	d.poke()
}

// holds reports whether durable record seq exists, and drops it from the
// read-ahead if it is there.
func (d *diskOutbox) holds(seq uint64) bool {
	if seq >= d.raFrom && seq < d.raTo {
		i, ok := slices.BinarySearchFunc(d.ra, seq, func(r record, s uint64) int { return cmpUint(r.seq, s) })
		switch {
		case ok && i == 0: // the usual case: acknowledged oldest first
			d.ra = d.ra[1:]
		case ok:
			d.ra = slices.Delete(d.ra, i, i+1)
		}
		return ok
	}
	err := d.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(seqKey(seq))
		return err
	})
	return err == nil
}

func (d *diskOutbox) Len() int { return d.n }

// poke wakes the committer.
func (d *diskOutbox) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// take hands the pending appends and deletes to the committer, or returns
// nil if there are none.
func (d *diskOutbox) take() *batch {
	b := d.pend
	if b == nil {
		if len(d.pendDels) == 0 {
			return nil
		}
		b = &batch{}
	}
	b.dels = d.pendDels
	d.pend, d.pendDels = nil, nil
	return b
}

// write puts b on disk: one Badger write batch, then one sync if b holds
// records (deletes alone are not synced).
func (d *diskOutbox) write(b *batch) error {
	wb := d.db.NewWriteBatch()
	for _, r := range b.recs {
		if err := wb.Set(seqKey(r.seq), r.rec); err != nil {
			wb.Cancel()
			return err
		}
	}
	for _, seq := range b.dels {
		if err := wb.Delete(seqKey(seq)); err != nil {
			wb.Cancel()
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if len(b.recs) == 0 {
		return nil
	}
	return d.db.Sync()
}

// written records the outcome of writing b: its records become sendable, or,
// if the write failed, are forgotten (their Enqueue fails) and the outbox
// refuses new ones from then on.
func (d *diskOutbox) written(b *batch, err error) {
	for _, seq := range b.dels {
		delete(d.dels, seq)
	}
	if len(b.recs) == 0 {
		return
	}
	if err != nil {
		d.n -= len(b.recs)
		if d.err == nil {
			d.err = fmt.Errorf("uplink: store %s: write failed: %w", d.dir, err)
		}
		return
	}
	d.durable = b.recs[len(b.recs)-1].seq
	if d.raTo == b.recs[0].seq { // the read-ahead reaches up to this batch: extend it
		for _, r := range b.recs {
			if len(d.ra) >= raSize {
				break
			}
			d.ra = append(d.ra, r)
			d.raTo = r.seq + 1
		}
	}
}
