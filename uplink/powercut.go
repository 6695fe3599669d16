package uplink

import (
	"bytes"
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// What a power cut can do to the store, and how opening it repairs that.
//
// Records spill into Badger unsynced (hot.go); Badger is synced every
// spillSyncEvery, and a journal file goes only once every record of it
// spilled is synced. A process that dies leaves Badger's writes in the
// kernel's page cache, whole: at the next start Badger holds every spill,
// and the journal's records at or below the last one Badger holds are
// skipped. A power cut (or the kernel's crash) loses the page cache, and
// not in order: Badger replays each memtable's log on its own, and the
// disk took unsynced pages in any order, so a later spill can survive an
// earlier one. So the store notes the boot it was opened in (bootFile);
// opened in another, it looks up every such record above meta's Synced (a
// Last that Badger had synced before that meta was written), and puts
// back from the journal those Badger holds no trace of.
//
// A record acknowledged while hot, or whose delete a compaction took with
// it, leaves no trace either: after a power cut it is sent again, with its
// id, as a duplicate. Counts are then taken again from Badger, which reads
// every key of the store.
//
// The boot is what tells a lost page cache here. A failed write or sync
// of the store removes the note (forgetBoot). Other losses of the page
// cache within one boot go unseen, and what they took of the records
// spilled since the last sync is lost: a disk that resets and is mounted
// again, a network store that drops its own cache, a snapshot of the
// device restored in the same boot.

// bootFile, in the journal's directory, holds the boot id of the machine's
// boot in which the store was last opened.
const bootFile = "boot"

// bootID is this boot's id on Linux, or "" where it cannot be read.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rebootedSince reports whether the machine may have restarted since the
// store in whose journal directory dir is was last opened: the page cache
// Badger's unsynced writes were in may be gone.
func rebootedSince(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, bootFile))
	id := bootID()
	return err != nil || id == "" || string(b) != id
}

// noteBoot records this boot as the one the store was opened in, and
// removes what a crash while noting an earlier one left.
func noteBoot(dir string) error {
	leftovers, _ := filepath.Glob(filepath.Join(dir, "."+bootFile+".*"))
	for _, p := range leftovers {
		_ = os.Remove(p)
	}
	id := bootID()
	if id == "" {
		return nil
	}
	return writeFileSynced(dir, bootFile, []byte(id))
}

// forgetBoot removes the note of this boot after a write or sync of the
// store failed: the kernel may then have dropped pages it had not written
// (a failed write-back marks them clean), so the next start, in this boot
// or not, looks up what Badger may have lost.
func forgetBoot(dir string) {
	_ = os.Remove(filepath.Join(dir, bootFile))
}

// missing returns those of recs Badger holds no trace of: not the record,
// not the delete of an acknowledged one, not its copy in the quarantine.
func (o *outbox) missing(recs []record) ([]record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var lost []record
	err := o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true}) // a delete is a version too
		defer it.Close()
		has := func(k []byte) bool {
			it.Seek(k)
			return it.Valid() && bytes.Equal(it.Item().Key(), k)
		}
		for _, r := range recs {
			k := recordKey(o.lanes[idLane(r.id)], r.seg, idSeq(r.id))
			if !has(k) && !has(append([]byte{quarantineTag}, k...)) {
				lost = append(lost, r)
			}
		}
		return nil
	})
	return lost, err
}

// countReplay adds to the counts what opening the store would put back
// from the journal, without writing: recs, and those of doubt Badger holds
// no trace of, after which it counts Badger's records again (CheckStore).
func (o *outbox) countReplay(recs, doubt []record) error {
	lost, err := o.missing(doubt)
	if err != nil || len(lost) > 0 {
		err = errors.Join(err, o.db.View(func(txn *badger.Txn) error {
			o.n, o.bytes = 0, 0
			for _, l := range o.lanes {
				o.recountLane(txn, l)
			}
			return nil
		}))
	}
	for _, r := range append(recs, lost...) {
		l := o.lanes[idLane(r.id)]
		l.n, l.bytes = l.n+1, l.bytes+recordCost(l, r.val)
		o.n, o.bytes = o.n+1, o.bytes+recordCost(l, r.val)
	}
	return err
}

// recountAll counts every lane's records in Badger again, lists again
// segments meta lost track of (a put-back record may start one), and
// writes the counts and segments into meta.
func (o *outbox) recountAll() error {
	o.n, o.bytes = 0, 0
	var guards [][]byte
	err := o.db.View(func(txn *badger.Txn) error {
		for _, l := range o.lanes {
			guards = append(guards, o.recountLane(txn, l)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return o.db.Update(func(txn *badger.Txn) error {
		for _, k := range guards {
			if err := txn.Set(k, nil); err != nil {
				return err
			}
		}
		return txn.Set(metaKey, o.meta.encode())
	})
}

// recountLane counts l's records in txn, adds the segments it finds that
// l does not list, and returns the guard keys those need.
func (o *outbox) recountLane(txn *badger.Txn, l *lane) (guards [][]byte) {
	l.n, l.bytes = 0, 0
	found := map[uint32]uint64{} // segment: its first record
	it := txn.NewIterator(badger.IteratorOptions{Prefix: l.prefix})
	for it.Rewind(); it.Valid(); it.Next() {
		seg, seq, ok := parseKey(l, it.Item().Key())
		if !ok || seq == guardSeq {
			continue
		}
		if first, seen := found[seg]; !seen || seq < first {
			found[seg] = seq
		}
		if seq >= l.low {
			l.n++
			l.bytes += keyCost(l) + it.Item().ValueSize()
		}
	}
	it.Close()
	for seg, first := range found {
		if !slices.ContainsFunc(l.segs, func(s segment) bool { return s.Num == seg }) {
			l.segs = append(l.segs, segment{Num: seg, First: first})
		}
		guards = append(guards, recordKey(l, seg, guardSeq)) // a listed one's may have been lost too
	}
	slices.SortFunc(l.segs, func(a, b segment) int { return cmp.Compare(a.Num, b.Num) })
	o.n, o.bytes = o.n+l.n, o.bytes+l.bytes
	lm := o.meta.Lanes[l.Name]
	lm.N, lm.Bytes, lm.Segs = l.n, l.bytes, slices.Clone(l.segs)
	o.meta.Lanes[l.Name] = lm
	return guards
}
