package uplink

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Recovery of a store the gateway cannot open, and inspection of a closed
// store (what `flowgate store` runs).
//
// Neither ever changes the store's directory. Salvage reads every record it
// can and writes them into a fresh store, in their order, with their
// acceptance times, and with the old store's quarantine carried over. It
// first checks every file (salvage_files.go). If all are intact it reads
// through Badger, opened read-only on a snapshot of the directory (links to
// the tables and value logs, copies of the rest), because Badger changes
// even a store opened read-only. Otherwise it reads the files directly:
// every table, block by block, merged with the write-ahead logs by key and
// version, as Badger would, so that it finds what a damaged MANIFEST no
// longer lists and what lies beyond damage in a table or a log.

// ErrStoreInUse is returned when another process, normally the gateway,
// holds the store.
var ErrStoreInUse = errors.New("uplink: the store is in use by another process (stop the gateway first)")

// SalvageReport is what Salvage did.
type SalvageReport struct {
	Method      string         // "badger" (read through Badger) or "files" (read from the files directly)
	Recovered   map[string]int // records written to the fresh store, by class
	Quarantined int            // records of the old store's quarantine, carried over
	Unreadable  int            // records found whose value cannot be used: set aside in the fresh store's quarantine
	Problems    []FileProblem  // what could not be read, and why
}

// Salvage reads every record it can from the store in damagedDir, which it
// does not change, and writes them to a new store in freshDir, which must
// not exist or be empty. classes are the configured classes (nil: the
// defaults); records of other classes keep their class, sent last.
func Salvage(damagedDir, freshDir string, classes []Class, log *slog.Logger) (SalvageReport, error) {
	rep := SalvageReport{Recovered: make(map[string]int)}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkFresh(damagedDir, freshDir); err != nil {
		return rep, err
	}
	files, err := examine(damagedDir)
	if err != nil {
		return rep, err
	}
	r, err := openReader(files, log)
	rep.Problems = files.problems
	if err != nil {
		return rep, err
	}
	defer r.close()
	rep.Method = r.method()
	s, err := newSalvager(freshDir, classes, &rep, log)
	if err != nil {
		return rep, err
	}
	s.rebooted = rebootedSince(filepath.Join(damagedDir, journalDir))
	err = s.run(r)
	if err == nil {
		err = s.journal(damagedDir)
	}
	if cerr := s.ob.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("uplink: salvage: close %s: %w", freshDir, cerr)
	}
	return rep, err
}

func checkFresh(damagedDir, freshDir string) error {
	a, _ := filepath.Abs(damagedDir)
	b, _ := filepath.Abs(freshDir)
	if a == b {
		return fmt.Errorf("uplink: salvage: the fresh store must be another directory than %s", damagedDir)
	}
	if entries, err := os.ReadDir(freshDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("uplink: salvage: %s is not empty", freshDir)
	}
	return nil
}

// StoreCheck is what CheckStore found in a store.
type StoreCheck struct {
	// Method is "badger" when the files are intact and the store was read
	// through Badger, counted as the gateway counts it; "files" when they
	// are damaged and the records were counted from the files directly:
	// what Salvage would recover.
	Method      string
	Classes     []ClassStats  // queued events and their bytes, by class
	Quarantined int           // records in the store's quarantine
	Problems    []FileProblem // damage found in its files
}

// CheckStore reports what the store in dir holds and the damage in its
// files, reading every block and log entry. The error is why it cannot be
// read at all, naming the directory.
func CheckStore(dir string, classes []Class) (StoreCheck, error) {
	c := StoreCheck{Method: "badger"}
	files, err := examine(dir)
	if err != nil {
		return c, err
	}
	c.Problems = files.problems
	if classes == nil {
		classes = DefaultClasses
	}
	quiet := slog.New(slog.DiscardHandler)
	if len(files.problems) > 0 { // Badger's view would hide what it would lose
		return countFiles(files, classes, c.Problems)
	}
	r, err := openSnapshot(files, quiet)
	if err != nil {
		return c, err
	}
	defer r.close()
	ob := &outbox{db: r.db, dir: dir, log: quiet}
	if err := ob.load(classes); err != nil {
		return c, fmt.Errorf("uplink: read store %s: %w", dir, err)
	}
	// What opening the store would replay from the journal (hot.go).
	recs, doubt, problems, err := ob.readReplay(dir)
	c.Problems = append(c.Problems, problems...)
	if err == nil {
		err = ob.countReplay(recs, doubt)
	}
	if err != nil {
		return c, fmt.Errorf("uplink: read store %s: journal: %w", dir, err)
	}
	for _, l := range ob.lanes {
		c.Classes = append(c.Classes, ClassStats{Name: l.Name, Queued: l.n, Bytes: l.bytes})
	}
	err = r.scan([]byte{quarantineTag}, func(_, _ []byte, _ error) error { c.Quarantined++; return nil })
	return c, err
}

// countFiles counts what Salvage would recover from damaged files.
func countFiles(files *storeFiles, classes []Class, problems []FileProblem) (StoreCheck, error) {
	c := StoreCheck{Method: "files", Problems: problems}
	r, err := openReader(files, slog.New(slog.DiscardHandler))
	if err != nil {
		return c, err
	}
	defer r.close()
	s := &salvager{rep: &SalvageReport{}, low: make(map[string]uint64), held: make(map[uint64]bool),
		rebooted: rebootedSince(filepath.Join(files.dir, journalDir))}
	idx := make(map[string]int)
	for _, cl := range classes {
		idx[cl.Name] = len(c.Classes)
		c.Classes = append(c.Classes, ClassStats{Name: cl.Name})
	}
	count := func(name string, seq uint64, size int) {
		if seq == guardSeq {
			return
		}
		s.top = max(s.top, seq)
		s.hold(seq)
		if seq < s.low[name] {
			return
		}
		i, known := idx[name]
		if !known {
			i, idx[name] = len(c.Classes), len(c.Classes)
			c.Classes = append(c.Classes, ClassStats{Name: name})
		}
		c.Classes[i].Queued++
		c.Classes[i].Bytes += int64(size)
	}
	err = errors.Join(r.scan(metaKey, s.readMeta),
		r.scan([]byte{quarantineTag}, func(key, _ []byte, _ error) error {
			c.Quarantined++
			if _, seq, ok := (Quarantined{Key: key[min(1, len(key)):]}).ClassSeq(); ok {
				s.hold(seq)
			}
			return nil
		}),
		r.scan([]byte{recordTag}, func(key, val []byte, _ error) error {
			if name, seq, ok := (Quarantined{Key: key}).ClassSeq(); ok {
				count(name, seq, len(key)+len(val))
			}
			return nil
		}))
	if err == nil {
		err = s.holdDeleted(r)
	}
	if err == nil {
		var jp []FileProblem
		jp, err = readJournalDir(files.dir, func(jr journalRecord) error {
			if s.fromJournal(jr.seq) {
				count(jr.class, jr.seq, len(lanePrefix(jr.class))+12+len(jr.val))
			}
			return nil
		})
		s.rep.Problems = append(s.rep.Problems, jp...)
	}
	c.Problems = append(c.Problems, s.rep.Problems...)
	return c, err
}

// ReadStoreQuarantine calls fn for every record in the quarantine of the
// store in dir, which it does not change, in key order. It reads the files
// directly if Badger cannot open the store.
func ReadStoreQuarantine(dir string, fn func(Quarantined) error) error {
	files, err := examine(dir)
	if err != nil {
		return err
	}
	r, err := openReader(files, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer r.close()
	return r.scan([]byte{quarantineTag}, func(k, v []byte, _ error) error {
		return fn(Quarantined{Key: bytes.Clone(k[1:]), Value: bytes.Clone(v)})
	})
}

// ClassSeq names a quarantined record by its key: its class and sequence
// number. ok is false if the key is not a record's.
func (q Quarantined) ClassSeq() (class string, seq uint64, ok bool) {
	k := q.Key
	if len(k) < 2 || k[0] != recordTag || len(k) != 2+int(k[1])+12 {
		return "", 0, false
	}
	return string(k[2 : 2+int(k[1])]), binary.BigEndian.Uint64(k[len(k)-8:]), true
}

// Accepted is when the quarantined event was accepted, if its header can
// be read.
func (q Quarantined) Accepted() (time.Time, bool) {
	if len(q.Value) < headerSize || q.Value[0] != valVersion {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(q.Value[1:]))), true
}

// salvager writes what a reader finds into a fresh store.
type salvager struct {
	ob  *outbox
	rep *SalvageReport
	log *slog.Logger
	low map[string]uint64 // the old store's low marks: records below were sent
	top uint64            // the highest sequence number of a record read from Badger
	// synced is the old meta's Synced: every record up to it was in
	// Badger. Above it, held has those read from Badger; if the machine
	// restarted since the store was opened (rebooted), the journal's
	// others were lost in a power cut (powercut.go), or acknowledged.
	synced   uint64
	held     map[uint64]bool
	rebooted bool
}

// fromJournal reports whether the journal's record seq is one Badger did
// not hold.
func (s *salvager) fromJournal(seq uint64) bool {
	return seq > s.top || s.rebooted && seq > s.synced && !s.held[seq]
}

// holdDeleted notes the records deleted in Badger (acknowledged) as held:
// the journal's copy is not theirs to bring back.
func (s *salvager) holdDeleted(r *reader) error {
	if !s.rebooted {
		return nil // held is not asked
	}
	return r.scanDeleted([]byte{recordTag}, func(key []byte) {
		if _, seq, ok := (Quarantined{Key: key}).ClassSeq(); ok {
			s.hold(seq)
		}
	})
}

// hold notes that Badger held record seq.
func (s *salvager) hold(seq uint64) {
	if s.rebooted && seq > s.synced {
		s.held[seq] = true
	}
}

// journal recovers the records of the old store's journal (journal.go)
// that Badger does not hold: those above every record it does, and those
// between meta's Synced and that a power cut took.
func (s *salvager) journal(dir string) error {
	problems, err := readJournalDir(dir, func(jr journalRecord) error {
		if !s.fromJournal(jr.seq) {
			return nil
		}
		l := lane{Class: Class{Name: jr.class}, prefix: lanePrefix(jr.class)}
		return s.record(recordKey(&l, jr.seg, jr.seq), jr.val, nil)
	})
	s.rep.Problems = append(s.rep.Problems, problems...)
	if err != nil {
		return fmt.Errorf("uplink: salvage: journal: %w", err)
	}
	return s.commit()
}

func newSalvager(freshDir string, classes []Class, rep *SalvageReport, log *slog.Logger) (*salvager, error) {
	opts := Options{StoreDir: freshDir, Classes: classes, QueueSize: math.MaxInt, Logger: log, noJournal: true}.withDefaults()
	ob, err := openOutbox(&opts)
	if err != nil {
		return nil, err
	}
	for _, l := range ob.lanes {
		rep.Recovered[l.Name] = 0
	}
	return &salvager{ob: ob, rep: rep, log: log, low: make(map[string]uint64), held: make(map[uint64]bool)}, nil
}

func (s *salvager) run(r *reader) error {
	if err := r.scan(metaKey, s.readMeta); err != nil {
		return err
	}
	if err := r.scan([]byte{quarantineTag}, s.carry); err != nil {
		return err
	}
	if err := r.scan([]byte{recordTag}, s.record); err != nil {
		return err
	}
	if err := r.scan([]byte{0}, s.recordV0); err != nil {
		return err
	}
	if err := s.holdDeleted(r); err != nil {
		return err
	}
	return s.commit()
}

func (s *salvager) readMeta(_, val []byte, verr error) error {
	var m meta
	err := errors.Join(verr, json.Unmarshal(val, &m))
	for name, lm := range m.Lanes {
		if err == nil && (m.end() >= 1<<seqBits || lm.Low > m.end()+1) {
			err = fmt.Errorf("implausible: last record %d, class %s's low mark %d", m.end(), name, lm.Low)
		}
	}
	if err != nil {
		s.rep.Problems = append(s.rep.Problems, FileProblem{"meta record",
			fmt.Sprintf("unreadable, so events already delivered may be sent again: %v", err)})
		return nil
	}
	for name, lm := range m.Lanes {
		s.low[name] = lm.Low
	}
	s.top = max(s.top, m.Last) // Badger held every record up to Last, but for a power cut's losses
	s.synced = m.Synced
	return nil
}

// carry keeps a record of the old store's quarantine.
func (s *salvager) carry(key, val []byte, _ error) error {
	s.rep.Quarantined++
	if _, seq, ok := (Quarantined{Key: key[min(1, len(key)):]}).ClassSeq(); ok {
		s.hold(seq)
	}
	return s.setAside(key, val)
}

func (s *salvager) setAside(qkey, val []byte) error {
	return s.ob.db.Update(func(txn *badger.Txn) error { return txn.Set(qkey, val) })
}

// record appends one record of the old store to its class in the fresh
// one, or sets it aside if it cannot be used.
func (s *salvager) record(key, val []byte, verr error) error {
	n := 0
	if len(key) > 1 {
		n = int(key[1])
	}
	if len(key) != 2+n+12 {
		s.rep.Unreadable++
		return s.setAside(append([]byte{quarantineTag}, key...), val)
	}
	name, seq := string(key[2:2+n]), binary.BigEndian.Uint64(key[2+n+4:])
	if seq == guardSeq {
		return nil
	}
	s.top = max(s.top, seq)
	s.hold(seq)
	if seq < s.low[name] {
		return nil
	}
	rec, at, ok := parseValue(val)
	if verr != nil || !ok {
		s.rep.Unreadable++
		s.log.Error("record cannot be read; set aside in the quarantine", "class", name, "seq", seq, "err", verr)
		return s.setAside(append([]byte{quarantineTag}, key...), val)
	}
	li := s.ob.laneOf(name)
	if li < 0 {
		s.ob.addLane(Class{Name: name})
		li = len(s.ob.lanes) - 1
	}
	if _, err := s.ob.Append(li, rec, at); err != nil {
		return err
	}
	s.rep.Recovered[name]++
	if len(s.ob.pend.recs) >= 1000 {
		return s.commit()
	}
	return nil
}

// recordV0 carries a record of the first store version (migrate.go) into
// the last class, as opening the store would.
func (s *salvager) recordV0(key, val []byte, verr error) error {
	if len(key) != 8 {
		return nil
	}
	li := len(s.ob.lanes) - 1
	if verr != nil {
		s.rep.Unreadable++
		return s.setAside(append([]byte{quarantineTag}, key...), val)
	}
	if _, err := s.ob.Append(li, val, time.Now()); err != nil {
		return err
	}
	s.rep.Recovered[s.ob.lanes[li].Name]++
	return nil
}

// commit writes what is pending, as the committer would.
func (s *salvager) commit() error {
	b := s.ob.take()
	if b == nil {
		return nil
	}
	err := s.ob.write(b)
	s.ob.written(b, err)
	if err != nil {
		return fmt.Errorf("uplink: salvage: write %s: %w", s.ob.dir, err)
	}
	return nil
}
