package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// newTestOutbox opens an outbox in memory (dir "") or on disk, with the
// given options on top of the defaults, and closes it at the end.
func newTestOutbox(t *testing.T, dir string, edit func(*Options)) *outbox {
	t.Helper()
	opts := Options{StoreDir: dir, QueueSize: 10000}
	if edit != nil {
		edit(&opts)
	}
	opts = opts.withDefaults()
	o, err := openOutbox(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.db.Close() })
	return o
}

// commitAll writes what o has pending, as the committer would.
func commitAll(t *testing.T, o *outbox) {
	t.Helper()
	if b := o.take(); b != nil {
		err := o.err // as the committer: after a failed write nothing is written
		if err == nil {
			err = o.write(b)
		}
		o.written(b, err)
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// appendAll appends recs to lane li, commits them and returns their ids.
func appendAll(t *testing.T, o *outbox, li int, recs ...string) []uint64 {
	t.Helper()
	var ids []uint64
	for _, r := range recs {
		id, err := o.Append(li, []byte(r), time.Now())
		if err != nil {
			t.Fatalf("Append(%d, %s): %v", li, r, err)
		}
		ids = append(ids, id)
	}
	commitAll(t, o)
	return ids
}

func TestOutboxLanes(t *testing.T) {
	o := newTestOutbox(t, "", func(o *Options) { o.QueueSize = 4 })
	tele := appendAll(t, o, 1, "t1", "t2")
	alarm := appendAll(t, o, 0, "a1")
	if _, err := o.Append(1, []byte("t3"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := o.Next(1, idSeq(tele[1])+1); ok {
		t.Fatal("Next returned a record not yet written")
	}
	commitAll(t, o)
	if _, err := o.Append(0, []byte("a2"), time.Now()); !errors.Is(err, errFull) {
		t.Fatalf("Append to a full outbox: %v, want errFull", err)
	}
	if id, rec, ok := o.Next(0, 0); !ok || id != alarm[0] || string(rec) != "a1" || idLane(id) != 0 {
		t.Fatalf("Next(alarm) = %x, %q, %v", id, rec, ok)
	}
	o.Delete(tele[0])
	o.Delete(tele[0]) // twice: counted once
	o.Delete(makeID(1, 99))
	if id, rec, ok := o.Next(1, 0); !ok || id != tele[1] || string(rec) != "t2" {
		t.Fatalf("Next(telemetry) after a delete = %x, %q, %v", id, rec, ok)
	}
	if o.Len() != 3 || o.lanes[1].n != 2 || o.lanes[0].n != 1 {
		t.Fatalf("Len %d, lanes %d/%d; want 3, 1/2", o.Len(), o.lanes[0].n, o.lanes[1].n)
	}
}

func TestOutboxReadAheadHolesAndReopen(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	const n = 3*raSize + 10
	for i := 1; i <= n; i++ {
		li := i % 2 // both lanes, interleaved
		if _, err := o.Append(li, fmt.Appendf(nil, "r%d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			commitAll(t, o) // the first records go to the read-ahead directly
		}
	}
	commitAll(t, o) // the rest are read from Badger
	// Holes, deleted in memory but not yet written, inside and beyond the
	// read-ahead: Next must skip them.
	for _, seq := range []uint64{3, raSize + 7, 2*raSize + 1} {
		o.Delete(makeID(int(seq%2), seq))
	}
	checkWalk(t, o, n, 3)
	commitAll(t, o) // deletes written
	checkWalk(t, o, n, 3)
	bytes := o.bytes

	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	o = newTestOutbox(t, dir, nil)
	checkWalk(t, o, n, 3)
	if o.bytes != bytes {
		t.Errorf("reopened with %d bytes counted, want %d", o.bytes, bytes)
	}
	if id, _ := o.Append(0, []byte("new"), time.Now()); idSeq(id) != n+1 {
		t.Errorf("Append after reopening = seq %d, want %d", idSeq(id), n+1)
	}
}

// checkWalk walks both lanes of o with Next and checks it finds records
// 1..n less the deleted ones, each in its lane with its own bytes, and that
// Len agrees.
func checkWalk(t *testing.T, o *outbox, n, deleted int) {
	t.Helper()
	got := 0
	for li := range 2 {
		for from := uint64(0); ; {
			id, rec, ok := o.Next(li, from)
			if !ok {
				break
			}
			seq := idSeq(id)
			if want := fmt.Sprintf("r%d", seq); string(rec) != want || int(seq%2) != li {
				t.Fatalf("Next(%d, %d) = %d, %q; want %q", li, from, seq, rec, want)
			}
			got++
			from = seq + 1
		}
	}
	if got != n-deleted || o.Len() != n-deleted {
		t.Errorf("walked %d records, Len %d; want %d", got, o.Len(), n-deleted)
	}
}

func TestWindowResendsInOrderAfterDrop(t *testing.T) {
	ob := newTestOutbox(t, "", nil)
	appendAll(t, ob, 0, "r", "r", "r", "r", "r")
	w := newWindow(newPacer(0, 0))
	now := time.Now()
	if _, _, ok := w.next(ob, now); ok {
		t.Fatal("next while disconnected returned a record")
	}
	w.open(3, 6)
	sendAll(t, &w, ob, now, []uint64{1, 2, 3}) // the window is full after three
	if seq, _, ok := w.acked(7); ok {
		t.Fatalf("acked(unknown id) = %d, true", seq)
	}
	if seq, at, ok := w.acked(101); !ok || seq != 1 || !at.Equal(now) {
		t.Fatalf("acked(101) = %d, sent at %v, %v; want 1, sent at %v", seq, at, ok, now)
	}
	ob.Delete(1)
	sendAll(t, &w, ob, now, []uint64{4})

	if lost := w.close(); lost != 3 {
		t.Fatalf("close lost %d, want 3 in flight", lost)
	}
	w.open(10, 6)
	resent := sendAll(t, &w, ob, now, []uint64{2, 3, 4, 5})
	if resent != 3 {
		t.Errorf("%d resends, want 3 (2, 3 and 4 were in flight)", resent)
	}
	if w.peak != 4 {
		t.Errorf("peak %d, want 4", w.peak)
	}
}

func TestWindowParksRejectedRecords(t *testing.T) {
	ob := newTestOutbox(t, "", nil)
	appendAll(t, ob, 0, "r", "r", "r", "r", "r")
	w := newWindow(newPacer(0, 0))
	w.open(2, 6)
	now := time.Now()
	later := now.Add(time.Second)
	sendAll(t, &w, ob, now, []uint64{1, 2})
	seq, _, _ := w.acked(101) // rejected
	w.park(seq, later)
	sendAll(t, &w, ob, now, []uint64{3}) // the rest flows meanwhile

	w.close() // a drop does not unpark it
	w.open(2, 6)
	sendAll(t, &w, ob, later, []uint64{2, 3}) // due, but others wait
	for _, pid := range []uint16{102, 103} {
		seq, _, _ := w.acked(pid)
		ob.Delete(seq)
	}
	sendAll(t, &w, ob, now, []uint64{4, 5}) // not due: stays parked
	for _, pid := range []uint16{104, 105} {
		seq, _, _ := w.acked(pid)
		ob.Delete(seq)
	}
	if seq, _, ok := w.next(ob, now); ok {
		t.Fatalf("next = %d before retryAt; want nothing", seq)
	}
	if resent := sendAll(t, &w, ob, later, []uint64{1}); resent != 1 {
		t.Errorf("%d resends, want 1", resent)
	}
	if len(w.parked) != 0 {
		t.Errorf("parked %v after resending it", w.parked)
	}
}

// sendAll sends what the window offers, with packet id 100+seq, checks it
// is want and that the window then offers nothing; it returns the resends.
func sendAll(t *testing.T, w *window, ob *outbox, now time.Time, want []uint64) (resent int) {
	t.Helper()
	for _, wantSeq := range want {
		seq, _, ok := w.next(ob, now)
		if !ok || seq != wantSeq {
			t.Fatalf("next = %d, %v; want %d", seq, ok, wantSeq)
		}
		if w.sent(seq, uint16(100+seq), 1, now) {
			resent++
		}
	}
	if seq, _, ok := w.next(ob, now); ok {
		t.Fatalf("next = %d after %v; want nothing (window %d, in flight %d)", seq, want, w.size, w.inflight())
	}
	return resent
}

// A store of the first version (bare 8-byte sequence number keys) opens
// with its records moved into the last class, in order.
func TestMigrateFirstVersion(t *testing.T) {
	dir := t.TempDir()
	opts := Options{StoreDir: dir}.withDefaults()
	db, err := badger.Open(storeOptions(&opts))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for i := uint64(1); i <= 3; i++ {
			if err := txn.Set(binary.BigEndian.AppendUint64(nil, i), fmt.Appendf(nil, "old%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || db.Close() != nil {
		t.Fatal(err)
	}
	for range 2 { // and a second open finds them where the first put them
		o := newTestOutbox(t, dir, nil)
		var got []string
		for from := uint64(0); ; {
			id, rec, ok := o.Next(1, from)
			if !ok {
				break
			}
			got = append(got, string(rec))
			from = idSeq(id) + 1
		}
		if strings.Join(got, ",") != "old1,old2,old3" || o.Len() != 3 {
			t.Fatalf("after migration: %q, Len %d", got, o.Len())
		}
		_ = o.db.Close()
	}
}
