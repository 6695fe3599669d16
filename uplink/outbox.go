package uplink

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"log/slog"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The outbox holds accepted events, encoded, until the broker acknowledges
// them: reading a record does not consume it, only Delete does
// (ack-then-delete). It is a Badger store, on disk (Options.StoreDir) or in
// memory, so that lanes, expiry and caps work the same either way.
//
// Records are kept in lanes, one per class (Options.Classes), in the order
// they were accepted. A record is named by an id that carries its lane in
// the top byte and its sequence number in the rest: sequence numbers grow
// across all lanes, so within a lane they give the order of acceptance.
//
// Records reach the store in groups. Append only queues a record in the
// pending batch; the committer (commit.go) writes each batch, with a sync on
// disk, outside the Uplink's mutex. Next returns only records at or below
// durable, the last sequence number known to be written: the cloud never
// sees an event whose Enqueue has not returned.
//
// The backlog is not held in memory. Each lane reads a window of up to
// raSize records from Badger (the read-ahead), and records just committed
// are added to that window while it is short, so that live events are sent
// without a read. Deletes are batched too, and not synced: a delete lost in
// a crash only means the event is sent again with the same id.
//
// The Uplink calls every method with its mutex held: the outbox needs no
// locking of its own.
type outbox struct {
	db     *badger.DB
	dir    string // "" for a store in memory
	log    *slog.Logger
	limit  int   // most records held (Options.QueueSize)
	segMax int64 // segment size (segment.go)
	lanes  []*lane

	n        int     // records held: pending, or written and not deleted
	bytes    int64   // their size, as counted against the byte budget
	budget   int64   // most bytes held; 0: no byte cap (see maintain.go)
	avgUsage float64 // the store's size on disk, averaged over recent turns
	next     uint64  // sequence number of the next Append
	durable  uint64  // every record at or below this is written
	err      error   // set once a write failed, or the store closed: Append refuses
	closed   bool    // the store is closed: Next and Delete do nothing
	hadMeta  bool    // the store had a meta record when opened

	pend    *batch          // appended, deleted or quarantined since the committer's last turn
	writing *batch          // the batch the committer is writing: taken, not yet written
	dels    map[uint64]bool // deleted in memory, not yet written: Next skips them
	meta    meta            // what the store holds once every batch taken is written; the committer's

	// The journal (journal.go, hot.go); jr is nil for a store in memory.
	jr        *journal
	hot       []record       // hot records, ascending; val is nil once deleted, never the first's
	hotBytes  int64          // bytes of the hot records not deleted
	hotMax    int64          // hot bytes past which the oldest spill
	hotFrom   uint64         // Badger holds every stored record below; the journal those at or above
	spillTo   uint64         // records in [hotFrom, spillTo) are being written to Badger
	jlive     map[uint32]int // hot records, by journal file
	jcur      uint32         // the journal file of the last commit
	jfree     []uint32       // journal files with no hot record, to remove
	unsynced  []uint32       // the committer's: journal files of records spilled since Badger's last sync
	synced    time.Time      // the committer's: Badger's last sync after a spill
	unsyncedN int            // len(unsynced) after the last commit
	deferSync bool           // spills wait up to spillSyncEvery for a sync (hot.go)

	redrop  []segRef          // segments whose drop did not finish (segment.go)
	drops   map[string]uint64 // events dropped, by reason
	quarant uint64            // records moved to quarantine
	spills  uint64            // records spilled from the journal into Badger

	wake   chan struct{} // buffered: tells the committer there is work
	quit   chan struct{} // closed to stop the committer once it has written everything
	exited chan struct{} // closed by the committer when it returns
}

// lane is the records of one class.
type lane struct {
	Class
	idx    int
	prefix []byte // 'r', len(name), name: every key of the lane starts with it
	n      int
	bytes  int64
	low    uint64 // every record held has a sequence number at or above low

	segs      []segment // ascending; the last is open for appends (segment.go)
	openBytes int64     // appended to the open segment

	ra           []record // every written record held with raFrom <= seq < raTo, ascending
	raFrom, raTo uint64
}

// record is one stored value (header and encoded event), its id and the
// segment its key is in.
type record struct {
	id  uint64
	seg uint32
	jf  uint32 // the journal file of a hot record
	val []byte
}

// The id of a record: lane in the top byte, sequence number below.
const seqBits = 56

func makeID(lane int, seq uint64) uint64 { return uint64(lane)<<seqBits | seq }
func idLane(id uint64) int               { return int(id >> seqBits) }
func idSeq(id uint64) uint64             { return id & (1<<seqBits - 1) }

// Stored values start with a header: a version byte and the time the event
// was accepted (Unix milliseconds), used for TTLs and the backlog's age.
const (
	valVersion = 1
	headerSize = 9
)

func makeValue(rec []byte, at time.Time) []byte {
	v := make([]byte, headerSize, headerSize+len(rec))
	v[0] = valVersion
	binary.BigEndian.PutUint64(v[1:], uint64(at.UnixMilli()))
	return append(v, rec...)
}

// parseValue splits a stored value; ok is false for one this version cannot read.
func parseValue(v []byte) (rec []byte, at time.Time, ok bool) {
	if len(v) <= headerSize || v[0] != valVersion {
		return nil, time.Time{}, false
	}
	return v[headerSize:], time.UnixMilli(int64(binary.BigEndian.Uint64(v[1:]))), true
}

// raSize bounds each lane's read-ahead, and so the memory the outbox uses
// for records already written: about 300 kB for 300-byte events.
const raSize = 1024

// recordCost is what a record counts against the byte budget: its key and
// value, as Badger stores them.
func recordCost(l *lane, val []byte) int64 { return keyCost(l) + int64(len(val)) }

func keyCost(l *lane) int64 { return int64(len(l.prefix) + 12) }

// Append queues rec in lane li, accepted at time at, for the next group
// commit, and returns its id. It returns errFull when the outbox holds
// QueueSize records or its byte budget would be exceeded.
func (o *outbox) Append(li int, rec []byte, at time.Time) (uint64, error) {
	if o.err != nil {
		return 0, o.err
	}
	l := o.lanes[li]
	val := makeValue(rec, at)
	cost := recordCost(l, val)
	if o.n >= o.limit || (o.budget > 0 && o.bytes+cost > o.budget && o.n > 0) {
		return 0, errFull
	}
	seg := l.appendSeg(o.next, cost, o.segMax)
	id := makeID(li, o.next)
	o.next++
	o.batch().recs = append(o.pend.recs, record{id: id, seg: seg, val: val})
	o.n++
	o.bytes += cost
	l.n++
	l.bytes += cost
	o.poke()
	return id, nil
}

// batch returns the pending batch, starting one if there is none.
func (o *outbox) batch() *batch {
	if o.pend == nil {
		o.pend = &batch{done: make(chan struct{})}
	}
	return o.pend
}

// pending is the batch the last Append joined.
func (o *outbox) pending() *batch { return o.pend }

// Next returns the oldest written record of lane li with sequence number at
// least from: its id, the encoded event and when it was accepted.
func (o *outbox) Next(li int, from uint64) (uint64, []byte, bool) {
	r, ok := o.nextRecord(li, from)
	if !ok {
		return 0, nil, false
	}
	return r.id, r.val[headerSize:], true
}

func (o *outbox) nextRecord(li int, from uint64) (record, bool) {
	l := o.lanes[li]
	from = max(from, l.low)
	for !o.closed && from <= o.durable && l.n > 0 {
		if from >= l.raFrom && from < l.raTo {
			i, _ := slices.BinarySearchFunc(l.ra, from, cmpSeq)
			if i < len(l.ra) {
				return l.ra[i], true
			}
			from = l.raTo
			continue
		}
		if !o.readAhead(l, from) {
			break
		}
	}
	return record{}, false
}

func cmpSeq(r record, seq uint64) int { return cmp.Compare(idSeq(r.id), seq) }

// readAhead replaces l's read-ahead with up to raSize written records from
// from on. Records that cannot be read are moved to quarantine (see
// quarantine.go). It returns false if nothing could be read.
func (o *outbox) readAhead(l *lane, from uint64) bool {
	ra := make([]record, 0, min(raSize, max(l.n, 0)))
	var bad []badRecord
	damaged := false
	end := o.durable // the last record Badger may hold
	if o.jr != nil {
		end = min(end, o.hotFrom-1)
	}
	err := o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
		defer it.Close()
		next, done, last := from, false, []byte(nil)
		for it.Seek(recordKey(l, l.segOf(from), from)); ; {
			for ; it.Valid() && len(ra) < raSize; it.Next() {
				item := it.Item()
				last = append(last[:0], item.Key()...)
				seg, seq, ok := parseKey(l, item.Key())
				if !ok || seq < from || seq == guardSeq {
					continue
				}
				next = seq + 1
				if seq > end {
					done = true
					break
				}
				id := makeID(l.idx, seq)
				if _, gone := o.dels[id]; gone {
					continue
				}
				val, err := item.ValueCopy(nil)
				if _, _, ok := parseValue(val); err != nil || !ok {
					bad = append(bad, badRecord{record: record{id: id, seg: seg, val: val}, size: keyCost(l) + item.ValueSize(), err: err})
					continue
				}
				ra = append(ra, record{id: id, seg: seg, val: val})
			}
			// Badger's iterator also ends, without an error, at a table
			// block it cannot read: look past it before taking it for the end.
			if done || it.Valid() || len(ra) >= raSize || next > end || !seekPast(it, l, last, next, end) {
				return nil
			}
			damaged = true
		}
	})
	if damaged {
		o.recount(l)
	}
	if err != nil {
		o.log.Error("cannot read queued events from the store", "dir", o.dir, "class", l.Name, "err", err)
		return false
	}
	ra = o.hotAhead(ra, l, from)
	o.quarantineAll(bad)
	l.ra, l.raFrom, l.raTo = ra, from, o.durable+1
	if len(ra) == raSize {
		l.raTo = idSeq(ra[len(ra)-1].id) + 1
	}
	switch {
	case from > l.low:
	case len(ra) == 0:
		l.low = max(l.low, o.durable+1) // nothing written is held from from on
	default:
		l.low = idSeq(ra[0].id) // nothing is held between from and the first record read
	}
	return true
}

// Delete removes a written record: from memory now, from the store at the
// next commit, unsynced. An unknown id is ignored. Records deleted oldest
// first, as they are acknowledged, are not deleted one by one: the lane's
// low mark, below which nothing is held, is written instead.
func (o *outbox) Delete(id uint64) {
	if o.closed || idLane(id) >= len(o.lanes) || idSeq(id) > o.durable {
		return
	}
	if _, gone := o.dels[id]; gone {
		return
	}
	l := o.lanes[idLane(id)]
	low := l.low
	r, ok := o.remove(l, idSeq(id))
	if !ok {
		return
	}
	cost := recordCost(l, r.val)
	o.dels[id] = true
	// A delete that moves the lane's low mark needs no tombstone: the mark,
	// in meta, says the record is gone, and its segment is dropped later.
	// Whether the record is in Badger is decided when the batch is taken
	// (hot.go).
	jf, journalled := o.unhot(id)
	o.batch().dels = append(o.pend.dels, delRef{id: id, seg: r.seg, cost: cost, below: l.low > low, jf: jf, journalled: journalled})
	o.forget(l, cost)
	o.poke()
}

// forget takes one record of cost bytes off the counts.
func (o *outbox) forget(l *lane, cost int64) {
	if l.n == 1 || cost > l.bytes {
		cost = l.bytes // a damaged record's cost is Badger's estimate: never count below empty
	}
	o.n--
	o.bytes -= cost
	l.n--
	l.bytes -= cost
}

// remove finds written record seq of lane l and drops it from the read-ahead.
func (o *outbox) remove(l *lane, seq uint64) (record, bool) {
	if seq >= l.raFrom && seq < l.raTo {
		i, ok := slices.BinarySearchFunc(l.ra, seq, cmpSeq)
		if !ok {
			return record{}, false
		}
		r := l.ra[i]
		if i == 0 { // the usual case: acknowledged oldest first
			l.ra = l.ra[1:]
			if l.raFrom <= l.low {
				l.low, l.raFrom = seq+1, seq+1
			}
		} else {
			l.ra = slices.Delete(l.ra, i, i+1)
		}
		return r, true
	}
	if r, ok := o.hotRecord(makeID(l.idx, seq)); ok {
		return r, true
	}
	var r record
	err := o.db.View(func(txn *badger.Txn) error {
		seg := l.segOf(seq)
		item, err := txn.Get(recordKey(l, seg, seq))
		if err != nil {
			return err
		}
		r.id, r.seg = makeID(l.idx, seq), seg
		r.val, err = item.ValueCopy(nil)
		return err
	})
	return r, err == nil
}

// Len is the number of records held.
func (o *outbox) Len() int { return o.n }

// poke wakes the committer.
func (o *outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// laneOf returns the lane of the class named name, or -1.
func (o *outbox) laneOf(name string) int {
	for _, l := range o.lanes {
		if l.Name == name {
			return l.idx
		}
	}
	return -1
}

// oldest returns when the oldest record held was accepted, if one is written.
func (o *outbox) oldest() (time.Time, bool) {
	var t time.Time
	for i := range o.lanes {
		if r, ok := o.nextRecord(i, 0); ok {
			if _, at, _ := parseValue(r.val); t.IsZero() || at.Before(t) {
				t = at
			}
		}
	}
	return t, !t.IsZero()
}

// fillStats adds the outbox's figures to s.
func (o *outbox) fillStats(s *Stats) {
	s.Queued, s.QueuedBytes = o.n, o.bytes
	s.Oldest, _ = o.oldest()
	s.Classes = make([]ClassStats, len(o.lanes))
	for i, l := range o.lanes {
		s.Classes[i] = ClassStats{Name: l.Name, Queued: l.n, Bytes: l.bytes}
	}
	s.Dropped = make(map[string]uint64, len(o.drops))
	for k, v := range o.drops {
		s.Dropped[k] = v
	}
	s.Quarantined = o.quarant
	s.Spilled = o.spills
}

// seekPast looks, where the iterator ended after key last, for a key of l
// past last: one of a record from lo on, up to hi, beyond a block Badger
// could not read. It probes lo+1, lo+2, lo+4 and so on, narrows down to the
// first probe that lands past last, and leaves the iterator there.
func seekPast(it *badger.Iterator, l *lane, last []byte, lo, hi uint64) bool {
	past := func(s uint64) bool {
		it.Seek(recordKey(l, l.segOf(s), s))
		return it.Valid() && bytes.Compare(it.Item().Key(), last) > 0
	}
	fail, found := lo, uint64(0)
	for step := uint64(1); found == 0; step *= 2 {
		switch s := min(lo+step, hi); {
		case past(s):
			found = s
		case s == hi:
			return false
		default:
			fail = s
		}
	}
	for found-fail > 1 {
		if mid := fail + (found-fail)/2; past(mid) {
			found = mid
		} else {
			fail = mid
		}
	}
	return past(found)
}

// recount counts the records of l that can still be read, stepping over
// damaged table blocks, and takes those that cannot off the counts, as
// quarantined: they are lost, and logged as such.
func (o *outbox) recount(l *lane) {
	n, bytes := 0, int64(0)
	for _, b := range []*batch{o.pend, o.writing} { // not yet written: above durable
		if b == nil {
			continue
		}
		for _, r := range b.recs {
			if idLane(r.id) == l.idx {
				n++
				bytes += recordCost(l, r.val)
			}
		}
	}
	end := o.durable // the last record Badger may hold; the hot ones are counted below
	if o.jr != nil {
		end = min(end, o.hotFrom-1)
		for _, r := range o.hot {
			if r.val != nil && idLane(r.id) == l.idx && idSeq(r.id) >= o.hotFrom {
				n++
				bytes += recordCost(l, r.val)
			}
		}
	}
	_ = o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
		defer it.Close()
		next, last := l.low, []byte(nil)
		for it.Seek(recordKey(l, l.segOf(next), next)); ; {
			for ; it.Valid(); it.Next() {
				last = append(last[:0], it.Item().Key()...)
				_, seq, ok := parseKey(l, it.Item().Key())
				if !ok || seq < l.low || seq == guardSeq || seq > end || o.dels[makeID(l.idx, seq)] {
					continue
				}
				n++
				bytes += keyCost(l) + it.Item().ValueSize()
				next = seq + 1
			}
			if next > end || !seekPast(it, l, last, next, end) {
				return nil
			}
		}
	})
	if lost := l.n - n; lost > 0 {
		o.log.Error("queued events cannot be read from the store (a damaged table block) and are lost",
			"dir", o.dir, "class", l.Name, "events", lost)
		o.n -= lost
		o.bytes -= l.bytes - bytes
		o.batch().lost = append(o.pend.lost, lostRef{l.idx, lost, l.bytes - bytes})
		l.n, l.bytes = n, bytes
		o.quarant += uint64(lost)
		o.poke()
	}
}
