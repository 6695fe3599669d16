package uplink

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/y"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// What Badger does with a damaged store, recorded (the evidence behind
// salvage_files.go and the store's options), and the checks that guard
// against it: checkBeforeOpen, run before Badger opens a store, and
// CheckStore, behind `flowgate store check`.

// TestCheckBeforeOpen: the check the gateway can run before Badger opens a
// store tells the damage Badger would turn into a loss or a crash from what
// a crash leaves behind, which Badger handles.
func TestCheckBeforeOpen(t *testing.T) {
	for _, c := range []struct {
		name    string
		make    func(t *testing.T) string
		damaged string // what the error names; "" for no error
	}{
		{"healthy", func(t *testing.T) string { return makeStore(t, 100) }, ""},
		{"power cut", func(t *testing.T) string { return crashCopy(t, 100) }, ""},
		{"write cut short", func(t *testing.T) string {
			dir := crashCopy(t, 100)
			mem := uplinktest.OnlyFile(t, dir, "*.mem")
			data, _ := os.ReadFile(mem)
			end := committedEnd(data)
			overwriteZero(t, mem, int64(end-10), 10) // the last entry's end never reached the disk
			return dir
		}, ""},
		{"table left over", func(t *testing.T) string {
			dir := makeStore(t, 100)
			copyFileOK(t, uplinktest.OnlyFile(t, dir, "*.sst"), filepath.Join(dir, "000099.sst"))
			return dir
		}, ""},
		{"flush left over", func(t *testing.T) string {
			// A crash after a memtable was written as a table, before the
			// MANIFEST listed it: the table and its write-ahead log.
			before := crashCopy(t, 100)
			after := t.TempDir()
			uplinktest.CopyStore(t, before, after)
			db, err := badger.Open(quietOptions(after))
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Close() // replays the log and flushes it: a table
			copyFileOK(t, uplinktest.OnlyFile(t, after, "*.sst"), filepath.Join(before, "000009.sst"))
			return before
		}, ""},
		{"MANIFEST cut short", func(t *testing.T) string {
			dir := makeStore(t, 100)
			_ = os.Truncate(filepath.Join(dir, "MANIFEST"), 8)
			return dir
		}, "000001.sst: not listed in the MANIFEST"},
		{"table footer", func(t *testing.T) string {
			dir := makeStore(t, 100)
			sst := uplinktest.OnlyFile(t, dir, "*.sst")
			fi, _ := os.Stat(sst)
			flipAt(t, sst, fi.Size()-4, 4)
			return dir
		}, "000001.sst: cannot be opened"},
		{"log damaged in the middle", func(t *testing.T) string {
			dir := crashCopy(t, 100)
			mem := uplinktest.OnlyFile(t, dir, "*.mem")
			data, _ := os.ReadFile(mem)
			flipAt(t, mem, int64(committedEnd(data)/2), 8)
			return dir
		}, ".mem: bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.make(t)
			before := digest(t, dir)
			err := checkBeforeOpen(dir)
			if c.damaged == "" && err != nil || c.damaged != "" && (!errors.Is(err, ErrDamaged) ||
				!strings.Contains(err.Error(), c.damaged) || !strings.Contains(err.Error(), "flowgate store salvage")) {
				t.Errorf("checkBeforeOpen: %v; want %q", err, c.damaged)
			}
			if !mapsEqual(before, digest(t, dir)) {
				t.Error("checkBeforeOpen changed the store")
			}
		})
	}
}

func overwriteZero(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
}

func copyFileOK(t *testing.T, src, dst string) {
	t.Helper()
	if err := copyFile(src, dst, 1<<62); err != nil {
		t.Fatal(err)
	}
}

// TestBadgerBlockDamage records what Badger does with a table block whose
// bytes changed on disk, with and without checksum verification: the
// evidence behind the store's options and behind tableSource.
func TestBadgerBlockDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	o := newTestOutbox(t, dir, func(o *Options) { o.noJournal = true }) // the records in Badger's tables
	want := make(map[uint64][]byte)
	for i := range 1000 { // incompressible, so that changed bytes decompress to changed values
		rec := make([]byte, 300)
		for j := range rec {
			rec[j] = 'a' + byte(rng.IntN(26))
		}
		id, _ := o.Append(1, rec, testTime(i))
		want[idSeq(id)] = rec
	}
	commitAll(t, o)
	_ = o.db.Close()
	sst := uplinktest.OnlyFile(t, dir, "*.sst")
	fi, _ := os.Stat(sst)
	flipAt(t, sst, fi.Size()/5, 8)

	read := func(mode options.ChecksumVerificationMode) (n, changed, notFound int) {
		db, err := badger.Open(quietOptions(dir).WithChecksumVerificationMode(mode))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		l := &lane{prefix: lanePrefix("telemetry")}
		_ = db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				_, seq, _ := parseKey(l, it.Item().Key())
				if v, err := it.Item().ValueCopy(nil); seq != guardSeq && (err != nil || !bytes.Equal(v[headerSize:], want[seq])) {
					changed++
				}
				n++
			}
			for seq := range want {
				if _, err := txn.Get(recordKey(l, 0, seq)); errors.Is(err, badger.ErrKeyNotFound) {
					notFound++
				}
			}
			return nil
		})
		return n - 1, changed, notFound // less the segment's guard key
	}
	// Without verification, the damage is read back as data: a record
	// whose value silently changed.
	if n, changed, notFound := read(options.NoVerification); n != 1000 || changed != 1 || notFound != 0 {
		t.Errorf("no verification: %d read, %d changed, %d not found; want 1000, 1, 0", n, changed, notFound)
	}
	// With OnBlockRead, the block fails its checksum: the iterator stops
	// there without an error, and Get says its keys do not exist.
	n, changed, notFound := read(options.OnBlockRead)
	if n >= 1000 || changed != 0 || notFound == 0 || notFound > 20 {
		t.Errorf("OnBlockRead: %d read, %d changed, %d not found; want the iteration cut short at the block", n, changed, notFound)
	}
	t.Logf("OnBlockRead: the iterator stopped after %d of 1000 records; %d keys not found", n, notFound)
	// tableSource steps over the block and reads the rest.
	files, _ := listStore(dir)
	tb, err := files.openTable(1)
	if err != nil {
		t.Fatal(err)
	}
	s := newTableSource(tb)
	got := 0
	for s.Rewind(); s.Valid(); s.Next() {
		if _, seq, ok := parseKey(&lane{prefix: lanePrefix("telemetry")}, y.ParseKey(s.Key())); ok && seq != guardSeq {
			got++
		}
	}
	_ = s.Close()
	if got != 1000-notFound || len(s.bad) != 1 {
		t.Errorf("tableSource read %d keys, bad blocks %v; want all but the %d of the damaged block", got, s.bad, notFound)
	}
}

// TestBadgerCompactionDropsDamage records the worst of it: a compaction
// that reads a table with a block it cannot read (checksums verified) ends
// that table there, without an error, writes what it read, and deletes the
// old table. The intact records after the block are gone.
func TestBadgerCompactionDropsDamage(t *testing.T) {
	dir := makeStore(t, 3000)
	sst := uplinktest.OnlyFile(t, dir, "*.sst")
	fi, _ := os.Stat(sst)
	flipAt(t, sst, fi.Size()/5, 8)
	opts := Options{StoreDir: dir, QueueSize: 1 << 20, Logger: logTo(t)}.withDefaults()
	bo := storeOptions(&opts).WithChecksumVerificationMode(options.OnBlockRead)
	db, err := badger.Open(bo)
	if err != nil {
		t.Fatal(err)
	}
	// A second table overlapping the first: Badger compacts the two.
	err = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("r\x05alarm\x00\x00\x00\x00zzzzzzzz"), []byte{1}) })
	if err == nil {
		err = db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey, []byte("{}")) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // flushes the memtable: a second table
		t.Fatal(err)
	}
	if db, err = badger.Open(bo); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for compacted := false; !compacted; <-tick.C {
		for _, ti := range db.Tables() {
			compacted = compacted || ti.Level > 0
		}
		if time.Now().After(deadline) {
			t.Fatal("no compaction within 10s")
		}
	}
	_ = db.Close()
	if _, err := os.Stat(sst); !os.IsNotExist(err) {
		t.Errorf("the damaged table %s is still there (%v)", sst, err)
	}
	files, _ := listStore(dir)
	files.check(true)
	r, _ := openReader(files, logTo(t))
	defer r.close()
	n := 0
	_ = r.scan([]byte{recordTag}, func(_, _ []byte, _ error) error { n++; return nil })
	t.Logf("after the compaction: %d of 6000 records left, problems %v", n, files.problems)
	if n > 5900 {
		t.Errorf("%d of 6000 records left after compacting a table with a damaged block: Badger no longer drops the rest?", n)
	}
}

func TestCheckStore(t *testing.T) {
	dir := makeStore(t, 500)
	c, err := CheckStore(dir, nil)
	if err != nil || c.Method != "badger" || len(c.Problems) != 0 || len(c.Classes) != 2 ||
		c.Classes[0].Queued != 500 || c.Classes[1].Queued != 500 || c.Classes[1].Bytes == 0 {
		t.Errorf("CheckStore(healthy) = %+v, %v", c, err)
	}
	if err := os.Truncate(filepath.Join(dir, "MANIFEST"), 8); err != nil {
		t.Fatal(err)
	}
	d, err := CheckStore(dir, nil)
	// (Bytes may differ by 4 a record: store.go's countTail counts a key 4
	// bytes shorter than keyCost does.)
	sameCounts := len(d.Classes) == 2 && d.Classes[0].Queued == 500 && d.Classes[1].Queued == 500
	if err != nil || d.Method != "files" || len(d.Problems) != 1 || !sameCounts {
		t.Errorf("CheckStore(MANIFEST cut short) = %+v, %v; want the counts %+v, read from the files", d, err, c.Classes)
	}
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := CheckStore(dir, nil); err != nil || !hasProblem(d.Problems, "bad magic") {
		t.Errorf("CheckStore(MANIFEST replaced) = %+v, %v; want Badger's reason", d, err)
	}
	if _, err := CheckStore(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("CheckStore(no such directory): %v", err)
	}
}
