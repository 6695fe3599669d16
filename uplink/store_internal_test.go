package uplink

import (
	"fmt"
	"log/slog"
	"testing"
)

// commitAll writes what d has pending, as the committer would.
func commitAll(t *testing.T, d *diskOutbox) {
	t.Helper()
	if b := d.take(); b != nil {
		err := d.write(b)
		d.written(b, err)
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

func TestDiskOutboxReadAheadAndHoles(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	d, err := openStore(dir, 10000, log)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3*raSize + 10
	for i := 1; i <= n; i++ {
		if seq, err := d.Append(fmt.Appendf(nil, "r%d", i)); err != nil || seq != uint64(i) {
			t.Fatalf("Append %d = %d, %v", i, seq, err)
		}
		if i == 5 {
			if _, _, ok := d.Next(0); ok {
				t.Fatal("Next returned a record not yet committed")
			}
			commitAll(t, d) // the first records go to the read-ahead directly
		}
	}
	commitAll(t, d) // the rest are read from Badger
	// Holes, deleted in memory but not yet written, inside and beyond the
	// read-ahead: Next must skip them, and a second Delete must not count.
	for _, seq := range []uint64{3, raSize + 7, 2*raSize + 1} {
		d.Delete(seq)
		d.Delete(seq)
	}
	d.Delete(n + 1) // unknown
	checkWalk(t, d, n, 3)
	commitAll(t, d) // deletes written
	checkWalk(t, d, n, 3)

	_ = d.db.Close()
	d, err = openStore(dir, 10000, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d.db.Close()
	checkWalk(t, d, n, 3)
	if seq, _ := d.Append([]byte("new")); seq != n+1 {
		t.Errorf("Append after reopening = %d, want %d", seq, n+1)
	}
}

// checkWalk walks d with Next and checks it finds records 1..n less the
// deleted ones, each with its own bytes, and that Len agrees.
func checkWalk(t *testing.T, d *diskOutbox, n, deleted int) {
	t.Helper()
	got := 0
	for from := uint64(0); ; {
		seq, rec, ok := d.Next(from)
		if !ok {
			break
		}
		if want := fmt.Sprintf("r%d", seq); string(rec) != want {
			t.Fatalf("Next(%d) = %d, %q; want %q", from, seq, rec, want)
		}
		got++
		from = seq + 1
	}
	if got != n-deleted || d.Len() != n-deleted {
		t.Errorf("walked %d records, Len %d; want %d", got, d.Len(), n-deleted)
	}
}
