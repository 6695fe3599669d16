package uplink

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/flowgate/flowgate/event"
)

// badgerRecords counts the records (guard keys left out) Badger holds.
func badgerRecords(t *testing.T, o *outbox) int {
	t.Helper()
	n := 0
	err := o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{recordTag}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) >= 8 && binary.BigEndian.Uint64(k[len(k)-8:]) != guardSeq {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func journalFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, journalDir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// appendWalk appends records r<from>… up to r<to>, in the lanes checkWalk
// expects, accepted at at, and commits them.
func appendWalk(t *testing.T, o *outbox, from, to int, at time.Time) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := o.Append(i%2, fmt.Appendf(nil, "r%d", i), at); err != nil {
			t.Fatal(err)
		}
	}
	commitAll(t, o)
}

// An event the cloud acknowledges while it is hot costs Badger nothing:
// not its record, not a tombstone; its journal file goes once it is no
// longer written.
func TestHotRecordsNeverReachBadger(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, func(o *Options) { o.MaxBytes = 16 << 20 }) // journal files of 256 kB
	const n = 5000
	appendWalk(t, o, 1, n, time.Now())
	if got := badgerRecords(t, o); got != 0 {
		t.Fatalf("Badger holds %d records right after the commit; want 0 (all hot)", got)
	}
	checkWalk(t, o, n, 0)
	for seq := uint64(1); seq <= n; seq++ {
		o.Delete(makeID(int(seq%2), seq))
	}
	commitAll(t, o)
	appendWalk(t, o, n+1, n+1, time.Now()) // a second commit removes the files freed by the first
	commitAll(t, o)
	if got := badgerRecords(t, o); got != 0 {
		t.Errorf("Badger holds %d records after the acknowledgements; want 0", got)
	}
	if files := journalFiles(t, dir); len(files) != 1 {
		t.Errorf("journal files %v; want only the one being written", files)
	}
	if o.Len() != 1 || len(o.hot) != 1 || o.hotBytes != int64(len(o.hot[0].val)) {
		t.Errorf("Len %d, hot %d (%d bytes); want the one new record", o.Len(), len(o.hot), o.hotBytes)
	}
}

// A record not acknowledged within hotFor spills to Badger, in sequence
// order; deleting it afterwards writes a tombstone like any stored record.
func TestHotRecordsSpillAfterHotFor(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	appendWalk(t, o, 1, 10, time.Now().Add(-2*hotFor)) // accepted long ago
	if !o.spillDue(time.Now()) {
		t.Fatal("spillDue = false with records older than hotFor")
	}
	appendWalk(t, o, 11, 20, time.Now()) // this commit spills the old ones
	if got := badgerRecords(t, o); got != 10 || o.spills != 10 {
		t.Fatalf("Badger holds %d records, %d counted spilled; want the 10 old ones", got, o.spills)
	}
	if o.hotFrom != 11 || len(o.hot) != 10 || idSeq(o.hot[0].id) != 11 {
		t.Fatalf("hotFrom %d, %d hot from %d; want 11, 10 from 11", o.hotFrom, len(o.hot), idSeq(o.hot[0].id))
	}
	checkWalk(t, o, 20, 0) // read across Badger and the hot records
	o.Delete(makeID(1, 3))
	commitAll(t, o)
	if got := badgerRecords(t, o); got != 9 {
		t.Errorf("Badger holds %d records after a delete; want 9", got)
	}
	checkWalk(t, o, 20, 1)
}

// After a crash, opening the store writes what the journal holds into
// Badger: every record not acknowledged is there, in order, and new
// sequence numbers continue above every one the journal used.
func TestJournalReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	const n = 3000
	appendWalk(t, o, 1, n, time.Now())
	for li := range 2 {
		o.Next(li, 0) // the sender reads each lane from its start
	}
	for seq := uint64(1); seq <= 100; seq++ { // acknowledged in order: the low marks pass them
		o.Delete(makeID(int(seq%2), seq))
	}
	commitAll(t, o)
	o.batch() // a commit that writes the low marks
	commitAll(t, o)
	// The crash: Badger closed (as the kernel would keep its files), the
	// journal neither spilled nor removed.
	if err := o.db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(journalFiles(t, dir)) == 0 {
		t.Fatal("no journal file left to replay")
	}
	o = newTestOutbox(t, dir, nil)
	checkWalk(t, o, n, 100)
	if got := badgerRecords(t, o); got != n-100 {
		t.Errorf("Badger holds %d records after the replay; want %d", got, n-100)
	}
	if files := journalFiles(t, dir); len(files) != 0 {
		t.Errorf("journal files %v left after the replay", files)
	}
	if id, err := o.Append(0, []byte("new"), time.Now()); err != nil || idSeq(id) != n+1 {
		t.Errorf("Append after the replay = seq %d, %v; want %d", idSeq(id), err, n+1)
	}
}

// A low mark past every record Badger holds (all acknowledged while hot)
// is kept by meta's top: the store opens, and sequence numbers go on above
// it instead of starting again below the low marks.
func TestAllHotAcknowledgedThenReopen(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	appendWalk(t, o, 1, 50, time.Now())
	checkWalk(t, o, 50, 0)
	for seq := uint64(1); seq <= 50; seq++ {
		o.Delete(makeID(int(seq%2), seq))
	}
	commitAll(t, o)
	o.batch()
	commitAll(t, o)
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	o = newTestOutbox(t, dir, nil)
	if o.Len() != 0 {
		t.Fatalf("Len %d after reopening; want 0", o.Len())
	}
	id, err := o.Append(1, []byte("r51"), time.Now())
	if err != nil || idSeq(id) != 51 {
		t.Fatalf("Append = seq %d, %v; want 51", idSeq(id), err)
	}
	commitAll(t, o)
	if got, rec, ok := o.Next(1, 0); !ok || got != id || string(rec) != "r51" {
		t.Errorf("Next = %d, %q, %v; want the new record", idSeq(got), rec, ok)
	}
}

// A damaged journal file that is not the last is kept aside, renamed, and
// the store opens with what the other files hold.
func TestJournalDamagedFileKept(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, func(o *Options) { o.MaxBytes = 16 << 20 })
	o.hotMax = 1 << 30 // nothing spills: every record is only in the journal
	for range 3 {      // one journal file per commit: frames of more than 256 kB
		for i := 0; i < 300; i++ {
			if _, err := o.Append(0, make([]byte, 1000), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		commitAll(t, o)
	}
	if err := o.db.Close(); err != nil {
		t.Fatal(err)
	}
	files := journalFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("journal files %v; want 3", files)
	}
	overwriteAt(t, files[0], 100, []byte("damage"))
	o = newTestOutbox(t, dir, nil)
	if o.Len() != 600 {
		t.Errorf("Len %d after opening; want the 600 records of the two intact files", o.Len())
	}
	if _, err := os.Stat(files[0] + ".damaged"); err != nil {
		t.Errorf("damaged file not kept: %v", err)
	}
}

func overwriteAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Recounting a lane (after a damaged table block) counts its hot records
// as held, not lost: they are in memory and the journal, not in Badger.
func TestRecountCountsHotRecords(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	appendWalk(t, o, 1, 10, time.Now())
	for li, l := range o.lanes {
		n, q := l.n, o.quarant
		o.recount(l)
		if l.n != n || o.quarant != q {
			t.Errorf("lane %d: recount took n %d to %d, quarantined %d to %d; want unchanged", li, n, l.n, q, o.quarant)
		}
	}
	commitAll(t, o)
	checkWalk(t, o, 10, 0)
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	o = newTestOutbox(t, dir, nil)
	checkWalk(t, o, 10, 0)
}

// A commit that fails (here the journal's file is gone from under it) stops
// the store: Append refuses, nothing more is written, a spill it took is
// given back, and what is acknowledged meanwhile stays hidden from Next
// though its delete is never written. Closing leaves the journal as it is;
// the restart replays it: every record, the one acknowledged after the
// failure again (as after a crash), and the counts agree with Badger.
func TestFailedCommitStopsTheStore(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	appendWalk(t, o, 1, 10, time.Now().Add(-2*hotFor)) // old: the next commit spills them
	if _, err := o.Append(1, []byte("r11"), time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = o.jr.f.Close() // the next append fails, as on EIO
	b := o.take()
	if len(b.spill) != 10 {
		t.Fatalf("the batch spills %d records, want 10", len(b.spill))
	}
	err := o.write(b)
	o.written(b, err)
	if err == nil || o.err == nil || o.spillTo != o.hotFrom {
		t.Fatalf("write: %v, store error %v, spillTo %d, hotFrom %d", err, o.err, o.spillTo, o.hotFrom)
	}
	if _, err := o.Append(0, []byte("r12"), time.Now()); err == nil {
		t.Error("Append after a failed commit succeeded")
	}
	for li := range 2 {
		o.Next(li, 0)
	}
	o.Delete(makeID(1, 3)) // acknowledged after the failure
	if b := o.take(); b == nil || len(b.dels) != 1 || !b.dels[0].hot {
		t.Fatalf("the delete after the failure: %+v; want one, of a record not in Badger", b)
	} else {
		o.written(b, o.err) // as the committer: nothing written
	}
	for from := uint64(0); ; { // the acknowledged record is not read again
		id, _, ok := o.Next(1, from)
		if !ok {
			break
		}
		if idSeq(id) == 3 {
			t.Fatal("Next returned a record acknowledged after the failure")
		}
		from = idSeq(id) + 1
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	o = newTestOutbox(t, dir, nil)
	if got := badgerRecords(t, o); got != 10 {
		t.Errorf("after the restart Badger holds %d records; want the 10 of the journal", got)
	}
	checkWalk(t, o, 10, 0) // Next delivers each, and Len counts them
}

// SaveState refuses once a commit failed: the events submitted before it
// are not on disk, and a checkpoint that counts them must not be saved.
func TestSaveStateAfterFailedCommit(t *testing.T) {
	u, err := New(Options{StoreDir: t.TempDir(), Topic: "t/{type}", URL: "mqtt://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close(context.Background())
	ev := func() *event.Event {
		return &event.Event{ID: event.NewID(), Source: "/s", Type: "x", Time: time.Now(), DataContentType: "application/json", Data: json.RawMessage(`{}`)}
	}
	if err := u.Enqueue(context.Background(), ev()); err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	_ = u.ob.jr.f.Close() // the next append fails
	u.mu.Unlock()
	d, err := u.Submit(context.Background(), ev(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err == nil {
		t.Fatal("the commit did not fail")
	}
	if err := u.SaveState("rules", []byte("x")); err == nil {
		t.Error("SaveState succeeded after an event submitted before it failed to be stored")
	}
}

// After a failed commit the store writes nothing, deletes included: a
// record acknowledged then stays hidden from Next (its delete is kept in
// memory), and is not delivered again when the lane is read from Badger.
func TestStoppedStoreKeepsDeletesInMemory(t *testing.T) {
	o := newTestOutbox(t, t.TempDir(), nil)
	const n = 2200 // more than a read-ahead holds
	appendWalk(t, o, 1, n, time.Now().Add(-2*hotFor))
	appendWalk(t, o, n+1, n+1, time.Now()) // spills 1…n into Badger
	if got := badgerRecords(t, o); got != n {
		t.Fatalf("Badger holds %d records, want %d", got, n)
	}
	if _, err := o.Append(1, []byte("x"), time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = o.jr.f.Close()
	b := o.take()
	err := o.write(b)
	o.written(b, err)
	if o.err == nil {
		t.Fatal("the commit did not fail")
	}
	o.Next(1, 0)
	before := o.Len()
	o.Delete(makeID(1, 5)) // acknowledged, not the lane's first
	if b := o.take(); b != nil {
		o.written(b, o.err) // as the committer once stopped: nothing written
	}
	for from := uint64(0); ; { // the read-ahead moves on, past its window
		id, _, ok := o.Next(1, from)
		if !ok {
			break
		}
		from = idSeq(id) + 1
	}
	for from := uint64(0); ; { // a reconnect reads the lane again, from Badger
		id, _, ok := o.Next(1, from)
		if !ok || idSeq(id) > 5 {
			break
		}
		if idSeq(id) == 5 {
			t.Fatal("the record acknowledged after the failure was read again")
		}
		from = idSeq(id) + 1
	}
	if o.Len() != before-1 {
		t.Errorf("Len %d, want %d", o.Len(), before-1)
	}
}
