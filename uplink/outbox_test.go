package uplink

import (
	"errors"
	"testing"
	"time"
)

func TestMemOutbox(t *testing.T) {
	ob := newMemOutbox(3)
	for i, rec := range []string{"a", "b", "c"} {
		seq, err := ob.Append([]byte(rec))
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("Append(%s) = %d, %v; want %d", rec, seq, err, i+1)
		}
	}
	if _, err := ob.Append([]byte("d")); !errors.Is(err, errFull) {
		t.Fatalf("Append to a full outbox: %v, want errFull", err)
	}
	ob.Delete(2) // a hole, as after an out-of-order PUBACK
	ob.Delete(9) // unknown: ignored
	if seq, rec, ok := ob.Next(2); !ok || seq != 3 || string(rec) != "c" {
		t.Fatalf("Next(2) = %d, %q, %v; want 3, c", seq, rec, ok)
	}
	ob.Delete(1)
	if seq, _, ok := ob.Next(0); !ok || seq != 3 || ob.Len() != 1 {
		t.Fatalf("after deleting 1 and 2: Next(0) = %d, %v, Len %d; want 3, 1", seq, ok, ob.Len())
	}
	if seq, err := ob.Append([]byte("d")); err != nil || seq != 4 {
		t.Fatalf("Append after deletes = %d, %v; want 4", seq, err)
	}
	ob.Delete(3)
	ob.Delete(4)
	if _, _, ok := ob.Next(0); ok || ob.Len() != 0 {
		t.Fatalf("emptied outbox still returns records (Len %d)", ob.Len())
	}
}

func TestWindowResendsInOrderAfterDrop(t *testing.T) {
	ob := newMemOutbox(10)
	for range 5 {
		_, _ = ob.Append([]byte("r"))
	}
	w := newWindow()
	now := time.Now()
	if _, _, ok := w.next(ob, now); ok {
		t.Fatal("next while disconnected returned a record")
	}
	w.open(3)
	sendAll(t, &w, ob, now, []uint64{1, 2, 3}) // the window is full after three
	if seq, ok := w.acked(7); ok {
		t.Fatalf("acked(unknown id) = %d, true", seq)
	}
	if seq, ok := w.acked(101); !ok || seq != 1 {
		t.Fatalf("acked(101) = %d, %v; want 1", seq, ok)
	}
	ob.Delete(1)
	sendAll(t, &w, ob, now, []uint64{4})

	if lost := w.close(); lost != 3 {
		t.Fatalf("close lost %d, want 3 in flight", lost)
	}
	w.open(10)
	resent := sendAll(t, &w, ob, now, []uint64{2, 3, 4, 5})
	if resent != 3 {
		t.Errorf("%d resends, want 3 (2, 3 and 4 were in flight)", resent)
	}
	if w.peak != 4 {
		t.Errorf("peak %d, want 4", w.peak)
	}
}

func TestWindowParksRejectedRecords(t *testing.T) {
	ob := newMemOutbox(10)
	for range 5 {
		_, _ = ob.Append([]byte("r"))
	}
	w := newWindow()
	w.open(2)
	now := time.Now()
	later := now.Add(time.Second)
	sendAll(t, &w, ob, now, []uint64{1, 2})
	seq, _ := w.acked(101) // rejected
	w.park(seq, later)
	sendAll(t, &w, ob, now, []uint64{3}) // the rest flows meanwhile

	w.close() // a drop does not unpark it
	w.open(2)
	sendAll(t, &w, ob, later, []uint64{2, 3}) // due, but others wait
	for _, pid := range []uint16{102, 103} {
		seq, _ := w.acked(pid)
		ob.Delete(seq)
	}
	sendAll(t, &w, ob, now, []uint64{4, 5}) // not due: stays parked
	for _, pid := range []uint16{104, 105} {
		seq, _ := w.acked(pid)
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
func sendAll(t *testing.T, w *window, ob outbox, now time.Time, want []uint64) (resent int) {
	t.Helper()
	for _, wantSeq := range want {
		seq, _, ok := w.next(ob, now)
		if !ok || seq != wantSeq {
			t.Fatalf("next = %d, %v; want %d", seq, ok, wantSeq)
		}
		if w.sent(seq, uint16(100+seq)) {
			resent++
		}
	}
	if seq, _, ok := w.next(ob, now); ok {
		t.Fatalf("next = %d after %v; want nothing (window %d, in flight %d)", seq, want, w.size, w.inflight())
	}
	return resent
}
