package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// How the outbox is laid out in Badger.
//
//	'r' len(name) name seg(4) seq(8)  a record of class name: header and encoded event (segment.go)
//	'q' <record key>                  a record that could not be read, set aside (quarantine.go)
//	'm'                               meta: what the store holds, written with every batch
//
// Sequence numbers are big-endian, so within a lane key order is the order
// of acceptance. The meta record is written in the same transaction as the
// deletes of its batch, so after a crash it agrees with them; records of a
// batch too large for one transaction may precede it, and opening finds
// those by looking past meta's last sequence number in each lane. Opening
// therefore reads a few keys per lane, however long the backlog.
var metaKey = []byte{'z'}

const (
	recordTag     = 'r'
	quarantineTag = 'q'
)

// meta is the store's own account of what it holds.
type meta struct {
	Last  uint64              `json:"last"`          // the highest sequence number written to Badger
	Top   uint64              `json:"top,omitempty"` // the highest journalled (hot.go): a low mark may pass Last
	Lanes map[string]laneMeta `json:"lanes"`         // by class name
	// Synced is a Last that Badger had synced before this meta was
	// written: whatever a power cut did to later writes, every record up
	// to it is in Badger, or was deleted (hot.go, replayable).
	Synced uint64 `json:"synced,omitempty"`
}

// end is the highest sequence number m knows of.
func (m meta) end() uint64 { return max(m.Last, m.Top) }

type laneMeta struct {
	N     int       `json:"n"`
	Bytes int64     `json:"bytes"`
	Segs  []segment `json:"segs"`
	Low   uint64    `json:"low"` // no record below this sequence number is held
}

func lanePrefix(name string) []byte {
	return append([]byte{recordTag, byte(len(name))}, name...)
}

// openOutbox opens or creates the store (in memory if o.StoreDir is empty)
// and finds what it holds without reading the backlog. It never deletes
// anything; if the store cannot be opened the error says where and wraps
// Badger's reason.
func openOutbox(o *Options) (*outbox, error) {
	dir := o.StoreDir
	if dir != "" {
		// Badger turns some damage into a loss or a crash when it opens a
		// store (salvage_files.go): refuse it first, changing nothing.
		if err := checkBeforeOpen(dir); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(storeOptions(o))
	if err != nil {
		return nil, fmt.Errorf("uplink: open store %s: %w (see `flowgate store` in the README for recovery)", dir, err)
	}
	ob := &outbox{
		db: db, dir: dir, log: o.Logger, limit: o.QueueSize,
		dels:   make(map[uint64]bool),
		segMax: segmentBytes(o.MaxBytes),
		drops:  make(map[string]uint64),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	if err := ob.load(o.Classes); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("uplink: read store %s: %w", dir, err)
	}
	if !ob.hadMeta {
		n, err := ob.migrateV0(len(ob.lanes) - 1)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("uplink: store %s: migrating records of the first store version: %w", dir, err)
		}
		if n > 0 {
			ob.log.Info("moved the records of the first store version into the last class", "dir", dir, "events", n)
		}
	}
	if dir != "" && !o.noJournal {
		if err := ob.openHot(dir, o.MaxBytes); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("uplink: store %s: journal: %w", dir, err)
		}
		if o.hotBytes > 0 {
			ob.hotMax = o.hotBytes
		}
	}
	if ob.n > 0 {
		ob.log.Info("store opened with a backlog", "dir", dir, "queued", ob.n, "bytes", ob.bytes)
	}
	return ob, nil
}

// load reads meta, sets up the lanes, and counts records written after it.
func (ob *outbox) load(classes []Class) error {
	m, found, err := readMeta(ob.db)
	if err != nil {
		return err
	}
	ob.hadMeta = found
	if err := m.check(); err != nil {
		return err
	}
	for _, c := range classes {
		ob.addLane(c)
	}
	names, err := laneNames(ob.db)
	if err != nil {
		return err
	}
	for _, name := range names {
		if ob.laneOf(name) < 0 {
			ob.log.Warn("the store holds events of a class no longer configured; they are sent last", "class", name)
			ob.addLane(Class{Name: name})
		}
	}
	last := m.Last
	for _, l := range ob.lanes {
		lm := m.Lanes[l.Name]
		l.n, l.bytes, l.segs, l.low = lm.N, lm.Bytes, slices.Clone(lm.Segs), lm.Low
		tailLast, err := ob.countTail(l, m.Last+1)
		if err != nil {
			return err
		}
		last = max(last, tailLast)
		ob.n += l.n
		ob.bytes += l.bytes
		m.Lanes[l.Name] = laneMeta{l.n, l.bytes, slices.Clone(l.segs), l.low}
	}
	m.Last = last
	ob.meta = m
	ob.next, ob.durable = max(last, m.Top)+1, last
	for _, l := range ob.lanes {
		l.raFrom, l.raTo = last+1, last+1 // nothing cached: the first Next reads
	}
	return nil
}

func (ob *outbox) addLane(c Class) {
	ob.lanes = append(ob.lanes, &lane{Class: c, idx: len(ob.lanes), prefix: lanePrefix(c.Name)})
}

func readMeta(db *badger.DB) (m meta, found bool, err error) {
	m = meta{Lanes: make(map[string]laneMeta)}
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = true
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	})
	if err != nil {
		return m, found, fmt.Errorf("meta record: %w", err)
	}
	if m.Lanes == nil {
		m.Lanes = make(map[string]laneMeta)
	}
	return m, found, nil
}

// check refuses a meta record no version of the outbox writes: the
// outbox would misbehave on it (a sequence number about to overflow into
// the lane bits, negative counts, a low mark past every record).
func (m meta) check() error {
	if m.end() >= 1<<seqBits-1 {
		return fmt.Errorf("meta record: last sequence number %d out of range (damaged?)", m.end())
	}
	if m.Synced > m.Last {
		return fmt.Errorf("meta record: synced up to %d of %d records: inconsistent (damaged?)", m.Synced, m.Last)
	}
	for name, lm := range m.Lanes {
		if lm.N < 0 || lm.Bytes < 0 || lm.Low > m.end()+1 {
			return fmt.Errorf("meta record: class %q: %d events, %d bytes, low mark %d of %d: inconsistent (damaged?)",
				name, lm.N, lm.Bytes, lm.Low, m.Last)
		}
	}
	return nil
}

// laneNames lists the classes that have records, hopping from one lane's
// prefix to the next: one seek per lane.
func laneNames(db *badger.DB) ([]string, error) {
	var names []string
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{recordTag}})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()
			if len(k) < 2 || len(k) < 2+int(k[1]) {
				it.Next()
				continue
			}
			name := string(k[2 : 2+int(k[1])])
			names = append(names, name)
			it.Seek(prefixEnd(lanePrefix(name)))
		}
		return nil
	})
	return names, err
}

// prefixEnd is the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// countTail adds the records of l from sequence number from on to its
// counts, and segments not yet in its list, and returns the last one's
// sequence number (0 if none). The open segment starts out full: records
// appended from now on go into a new one.
func (ob *outbox) countTail(l *lane, from uint64) (uint64, error) {
	var last uint64
	err := ob.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
		defer it.Close()
		for it.Seek(recordKey(l, l.segOf(from), from)); it.Valid(); it.Next() {
			item := it.Item()
			seg, seq, ok := parseKey(l, item.Key())
			if !ok || seq < from || seq == guardSeq {
				continue
			}
			if n := len(l.segs); n == 0 || l.segs[n-1].Num < seg {
				l.segs = append(l.segs, segment{Num: seg, First: seq})
			}
			l.n++
			l.bytes += keyCost(l) + item.ValueSize()
			last = seq
		}
		return nil
	})
	l.openBytes = 1 << 62
	return last, err
}

// storeOptions are the Badger options for o: on disk in o.StoreDir, or in
// memory; with memtables scaled down for a small byte cap.
func storeOptions(o *Options) badger.Options {
	bo := badgerOptions(o.StoreDir, o.Logger)
	if o.StoreDir == "" {
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true)
	}
	if o.MaxBytes > 0 {
		// What Badger holds besides the events (memtables, level 0 tables
		// awaiting compaction, tables being rewritten) comes and goes with
		// the memtable size: keep it a small part of the cap. Badger writes a
		// transaction into one memtable, and values above the threshold to
		// the value log, which must fit one transaction.
		mt := min(bo.MemTableSize, max(o.MaxBytes/64, 1<<20))
		bo = bo.WithMemTableSize(mt).WithBaseTableSize(min(bo.BaseTableSize, mt)).
			WithValueThreshold(min(bo.ValueThreshold, mt/8)).
			WithNumLevelZeroTablesStall(4)
	}
	return bo
}

// badgerOptions are chosen for a gateway on a Raspberry Pi class device: a
// few hundred MB of RAM, an SD card or eMMC, a queue that is written once,
// read once and deleted.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		// Writes are not synced one by one: the committer syncs each group
		// with db.Sync (see commit.go), which is what makes group commit work.
		WithSyncWrites(false).
		// Small memtables (the default is five of 64 MB) bound RAM. Not
		// smaller: with 4 MB ones, level 0 compacts four times as often,
		// and a 1 M event backlog drains at 18,800 events/s, not 26,900.
		// A memtable's write-ahead log is what db.Sync makes durable.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		// Events (~300 B) stay below the value threshold, so they live in
		// the LSM tree itself: compaction drops deleted events, and no value
		// log garbage collection is needed. The value log then holds only
		// the rare event above 512 kB (a transaction must hold a value: 15%
		// of a memtable); 64 MB files instead of 1 GB ones.
		WithValueThreshold(512 << 10).
		WithValueLogFileSize(64 << 20).
		// Snappy shrinks JSON several times; a small block cache is enough
		// for a queue read front to back.
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2).
		WithMaxLevels(2).
		// No transactions compete: one committer writes, so conflict
		// detection is memory for nothing. No expvar metrics (global state).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		// Every block read is checked against its checksum, and so is every
		// value read from the value log: damage is then reported, not sent.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		// WithLoggingLevel would replace the logger with Badger's own, which
		// writes to stderr; badgerLogger drops Badger's info and debug lines.
		WithLogger(badgerLogger{log})
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
