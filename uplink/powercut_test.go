package uplink

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// commitLosing commits what is pending, as commitAll does, but the spilled
// records lose says are never written to Badger: what a power cut that
// kept later writes of Badger's and not these leaves (the journal has them).
func commitLosing(t *testing.T, o *outbox, lose func(seq uint64) bool) {
	t.Helper()
	b := o.take()
	if b == nil {
		t.Fatal("nothing to commit")
	}
	b.spill = slices.DeleteFunc(b.spill, func(r record) bool { return lose(idSeq(r.id)) })
	err := o.write(b)
	o.written(b, err)
	if err != nil {
		t.Fatal(err)
	}
}

// commitMeta commits with nothing pending: the meta it writes carries
// what the commit before left in memory (low marks, Synced).
func commitMeta(t *testing.T, o *outbox) {
	t.Helper()
	o.batch()
	commitAll(t, o)
}

// crash stops o as a dying process would, its journal and Badger's files
// left as they are; rebooted makes the next open see another boot, as
// after a power cut.
func crash(t *testing.T, o *outbox, dir string, rebooted bool) {
	t.Helper()
	_ = o.jr.close()
	if err := o.db.Close(); err != nil {
		t.Fatal(err)
	}
	if rebooted {
		if err := os.WriteFile(filepath.Join(dir, journalDir, bootFile), []byte("another boot"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// walkAll is every record Next returns, by sequence number.
func walkAll(t *testing.T, o *outbox) []uint64 {
	t.Helper()
	var got []uint64
	for li := range o.lanes {
		for from := uint64(0); ; {
			id, rec, ok := o.Next(li, from)
			if !ok {
				break
			}
			if string(rec) != fmt.Sprintf("r%d", idSeq(id)) {
				t.Fatalf("record %d holds %q", idSeq(id), rec)
			}
			got = append(got, idSeq(id))
			from = idSeq(id) + 1
		}
	}
	slices.Sort(got)
	return got
}

// seqs is from…to but skip.
func seqs(from, to uint64, skip ...uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		if !slices.Contains(skip, i) {
			s = append(s, i)
		}
	}
	return s
}

// checkCounts compares every count in memory, and in the meta on disk if
// onDisk (it is written at the next commit, or when a recount changed it),
// with the records Next returns.
func checkCounts(t *testing.T, o *outbox, what string, onDisk bool) {
	t.Helper()
	disk, _, err := readMeta(o.db)
	if err != nil {
		t.Fatal(err)
	}
	n, size := 0, int64(0)
	for li, l := range o.lanes {
		ln, lb := 0, int64(0)
		for from := uint64(0); ; {
			r, ok := o.nextRecord(li, from)
			if !ok {
				break
			}
			ln, lb = ln+1, lb+recordCost(l, r.val)
			from = idSeq(r.id) + 1
		}
		for _, c := range []struct {
			where string
			n     int
			b     int64
		}{{"lane", l.n, l.bytes}, {"meta", o.meta.Lanes[l.Name].N, o.meta.Lanes[l.Name].Bytes}, {"meta on disk", disk.Lanes[l.Name].N, disk.Lanes[l.Name].Bytes}} {
			if (c.n != ln || c.b != lb) && (onDisk || c.where != "meta on disk") {
				t.Errorf("%s: class %s: %s counts %d events, %d B; Next returns %d, %d B", what, l.Name, c.where, c.n, c.b, ln, lb)
			}
		}
		n, size = n+ln, size+lb
	}
	if o.n != n || o.bytes != size {
		t.Errorf("%s: the outbox counts %d events, %d B; Next returns %d, %d B", what, o.n, o.bytes, n, size)
	}
}

// spillTwice leaves records 1–10 spilled and synced, 11–20 spilled in the
// last commit, with Badger not synced since (but for those lose says were
// lost), and, if hot, 21 hot. The store's own timing is set aside: the
// sync of the second spill waits an hour.
func spillTwice(t *testing.T, o *outbox, hot bool, lose func(uint64) bool) {
	t.Helper()
	o.deferSync = true
	old := time.Now().Add(-2 * hotFor)
	appendWalk(t, o, 1, 10, old)
	appendWalk(t, o, 11, 20, old) // spills 1–10, and syncs Badger: never synced before
	o.synced = time.Now().Add(time.Hour)
	if !hot {
		o.batch()
	} else if _, err := o.Append(1, []byte("r21"), time.Now()); err != nil {
		t.Fatal(err)
	}
	commitLosing(t, o, lose) // spills 11–20
	if o.meta.Synced != 10 {
		t.Fatalf("meta's Synced is %d; want 10", o.meta.Synced)
	}
	for li := range 2 {
		o.Next(li, 0)
	}
}

// A power cut that keeps a later spill into Badger and loses an earlier
// one: the journal, whose files stay until Badger is synced, puts the lost
// records back when the store opens in the next boot. Record 17,
// acknowledged out of order, stays acknowledged (Badger holds its delete);
// the counts agree with what is there, then and after a clean restart.
func TestPowerCutLossPutBack(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	o := newTestOutbox(t, dir, nil)
	spillTwice(t, o, true, func(s uint64) bool { return s >= 12 && s <= 15 })
	o.Delete(makeID(1, 1))  // in order: the low mark passes it
	o.Delete(makeID(1, 17)) // out of order: its delete is written
	commitAll(t, o)
	commitMeta(t, o)
	crash(t, o, dir, true)
	o = newTestOutbox(t, dir, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if got, want := walkAll(t, o), seqs(2, 21, 17); !slices.Equal(got, want) {
		t.Errorf("records %v; want %v", got, want)
	}
	if !strings.Contains(logs.String(), "power cut") || !strings.Contains(logs.String(), "events=4") {
		t.Errorf("the log does not tell of the 4 events put back:\n%s", logs.String())
	}
	checkCounts(t, o, "after the power cut", true)
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	o = newTestOutbox(t, dir, nil)
	if got, want := walkAll(t, o), seqs(2, 21, 17); !slices.Equal(got, want) {
		t.Errorf("after a clean restart: records %v; want %v", got, want)
	}
	checkCounts(t, o, "after a clean restart", true)
}

// Nothing lost but records at or below meta's Synced: a compaction took
// record 7 with its delete (acknowledged out of order), and it stays
// acknowledged, as Badger was synced past it before the power cut.
func TestPowerCutSyncedRecordsSkipped(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	spillTwice(t, o, true, func(uint64) bool { return false })
	o.Delete(makeID(1, 7))
	commitAll(t, o)
	commitMeta(t, o)
	crash(t, o, dir, true)
	db, err := badger.Open(badgerOptions(dir, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	k := recordKey(&lane{prefix: lanePrefix(DefaultClasses[1].Name)}, 0, 7)
	var before int
	_ = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: k})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			before++
		}
		return nil
	})
	if err := db.DropPrefix(k); err != nil { // as a compaction that drops a delete and its record
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if before == 0 {
		t.Fatal("record 7 was not in Badger to begin with: the test's key is wrong")
	}
	o = newTestOutbox(t, dir, nil)
	if got, want := walkAll(t, o), seqs(1, 21, 7); !slices.Equal(got, want) {
		t.Errorf("records %v; want %v", got, want)
	}
	checkCounts(t, o, "after the power cut", false)
}

// The records lost are all there is to replay: none above the last record
// Badger holds.
func TestPowerCutOnlyLostRecords(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	spillTwice(t, o, false, func(s uint64) bool { return s >= 12 && s <= 14 })
	commitMeta(t, o)
	crash(t, o, dir, true)
	o = newTestOutbox(t, dir, nil)
	if got, want := walkAll(t, o), seqs(1, 20); !slices.Equal(got, want) {
		t.Errorf("records %v; want %v", got, want)
	}
	checkCounts(t, o, "after the power cut", true)
	if id, err := o.Append(0, []byte("r21"), time.Now()); err != nil || idSeq(id) != 21 {
		t.Errorf("Append = %d, %v; want sequence number 21", idSeq(id), err)
	}
}

// A process that dies without the machine restarting leaves Badger every
// write in the page cache: the records at or below Badger's last are not
// looked up. One acknowledged while hot (never in Badger) or set aside
// from hot into the quarantine stays gone, and nothing is blamed on a
// power cut.
func TestPlainCrashLooksNothingUp(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id here: every start counts as after a power cut")
	}
	dir := t.TempDir()
	var logs bytes.Buffer
	log := func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }
	o := newTestOutbox(t, dir, log)
	o.deferSync = true
	old := time.Now().Add(-2 * hotFor)
	appendWalk(t, o, 1, 10, old)
	appendWalk(t, o, 11, 20, old) // spills and syncs 1–10
	o.synced = time.Now().Add(time.Hour)
	for li := range 2 {
		o.Next(li, 0)
	}
	o.Delete(makeID(1, 13))                    // hot, out of order: no trace in Badger
	o.quarantine(makeID(0, 14), errUnparsable) // hot, into the quarantine
	if _, err := o.Append(1, []byte("r21"), time.Now()); err != nil {
		t.Fatal(err)
	}
	commitAll(t, o) // spills 11–20 but for 13, unsynced
	o.batch()
	commitAll(t, o)
	crash(t, o, dir, false)
	o = newTestOutbox(t, dir, log)
	if got, want := walkAll(t, o), seqs(1, 21, 13, 14); !slices.Equal(got, want) {
		t.Errorf("records %v; want %v", got, want)
	}
	if strings.Contains(logs.String(), "power cut") {
		t.Errorf("a crash without a restart of the machine is taken for a power cut:\n%s", logs.String())
	}
	checkCounts(t, o, "after the crash", false)
}

// Lost records that began a segment meta did not list yet: the segment is
// listed again, so a delete finds them and the segment can be dropped.
func TestPowerCutLostSegment(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	o.deferSync = true
	o.segMax = 60 // about a record a segment
	old := time.Now().Add(-2 * hotFor)
	add := func(from, to int, at time.Time) {
		for i := from; i <= to; i++ {
			if _, err := o.Append(0, fmt.Appendf(nil, "r%d", i), at); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(1, 4, old)
	commitAll(t, o)
	add(5, 8, old)
	commitAll(t, o) // spills and syncs 1–4
	o.synced = time.Now().Add(time.Hour)
	o.batch()
	commitLosing(t, o, func(s uint64) bool { return s >= 5 && s <= 6 })
	commitMeta(t, o)
	crash(t, o, dir, true)
	o = newTestOutbox(t, dir, nil)
	if got, want := walkAll(t, o), seqs(1, 8); !slices.Equal(got, want) {
		t.Fatalf("records %v; want %v", got, want)
	}
	l := o.lanes[0]
	_ = o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
		defer it.Close()
		guarded, held := map[uint32]bool{}, map[uint32]bool{}
		for it.Rewind(); it.Valid(); it.Next() {
			seg, seq, ok := parseKey(l, it.Item().Key())
			switch {
			case !ok:
			case seq == guardSeq:
				guarded[seg] = true
			case l.segOf(seq) != seg:
				t.Errorf("record %d is in segment %d; the lane places it in %d (segments %+v)", seq, seg, l.segOf(seq), l.segs)
			default:
				held[seg] = true
			}
		}
		for seg := range held {
			if !guarded[seg] {
				t.Errorf("segment %d holds records and no guard key", seg)
			}
		}
		return nil
	})
	before := o.Len()
	o.Delete(makeID(0, 6))
	if o.Len() != before-1 {
		t.Errorf("the delete of put-back record 6 was lost: Len %d, then %d", before, o.Len())
	}
	commitAll(t, o)
	checkCounts(t, o, "after the power cut and a delete", true)
}

// CheckStore (through Badger or the files) counts what opening the store
// after the power cut holds, and Salvage recovers it: the lost records
// from the journal too, but not 17, acknowledged after it spilled.
func TestPowerCutCheckAndSalvage(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	spillTwice(t, o, true, func(s uint64) bool { return s >= 12 && s <= 15 })
	o.Delete(makeID(1, 17))
	commitAll(t, o)
	commitMeta(t, o)
	crash(t, o, dir, true)
	total := func(cs []ClassStats) (n int) {
		for _, c := range cs {
			n += c.Queued
		}
		return n
	}
	c, err := CheckStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := listStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := countFiles(files, DefaultClasses, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Salvage(dir, t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	salvaged := 0
	for _, n := range rep.Recovered {
		salvaged += n
	}
	o = newTestOutbox(t, dir, nil)
	if got := [...]int{total(c.Classes), total(cf.Classes), salvaged, o.Len()}; got != [...]int{20, 20, 20, 20} {
		t.Errorf("of the 20 events, CheckStore counts %d, from the files %d, Salvage recovers %d, the store opens with %d", got[0], got[1], got[2], got[3])
	}
}

// A failed write of the store forgets the boot: the next start looks up
// what Badger may have lost, even in this boot.
func TestFailedWriteForgetsBoot(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id here")
	}
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	boot := filepath.Join(dir, journalDir, bootFile)
	if _, err := os.Stat(boot); err != nil {
		t.Fatalf("no boot noted at open: %v", err)
	}
	appendWalk(t, o, 1, 1, time.Now()) // opens a journal file
	if _, err := o.Append(0, []byte("r2"), time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = o.jr.f.Close() // the next append fails, as on EIO
	b := o.take()
	o.written(b, o.write(b))
	if o.err == nil {
		t.Fatal("the write did not fail")
	}
	if _, err := os.Stat(boot); !os.IsNotExist(err) {
		t.Errorf("the boot is still noted after a failed write: %v", err)
	}
}

// The store opens when the boot cannot be noted; it says so.
func TestBootNotNotedStillOpens(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id here")
	}
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(dir, journalDir, bootFile)
	if err := os.Remove(boot); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(boot, "x"), 0o700); err != nil { // in the way of the note
		t.Fatal(err)
	}
	var logs bytes.Buffer
	o = newTestOutbox(t, dir, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if !strings.Contains(logs.String(), "cannot note this boot") {
		t.Errorf("nothing logged:\n%s", logs.String())
	}
	if id, err := o.Append(0, []byte("r1"), time.Now()); err != nil || idSeq(id) != 1 {
		t.Errorf("Append = %d, %v", idSeq(id), err)
	}
}
