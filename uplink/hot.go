package uplink

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Hot records: the outbox's side of the journal (journal.go).

const (
	// hotFor is how long a record may stay hot: one the cloud has not
	// acknowledged by then spills to Badger. It is long enough for a
	// gateway that fell a moment behind (a burst, a thousand devices
	// connecting at once) to catch up without spilling: a spill costs
	// CPU and memory (Badger's memtables, its level 0 tables) and so
	// makes the gateway fall further behind. With 1,000 devices at 10
	// msg/s each, 1s spilled almost every event and held 400-550 MB;
	// 3s spilled none and held about 200 MB (BENCHMARKS.md).
	hotFor = 3 * time.Second
	// hotMax bounds the bytes of hot records: past it the oldest spill.
	hotMax = 16 << 20
	// spillSyncEvery is how often Badger is synced while records spill:
	// the journal keeps a spilled record until then, so the spill needs no
	// sync of its own.
	spillSyncEvery = 100 * time.Millisecond
)

// journalLimits are the journal's file size and the hot records' bytes for
// a store capped at maxBytes (0: no cap): small enough that the journal is
// a small part of the cap, which counts it.
func journalLimits(maxBytes int64) (fileMax, hot int64) {
	if maxBytes <= 0 {
		return journalFileBytes, hotMax
	}
	return min(max(maxBytes/128, 256<<10), journalFileBytes), min(max(maxBytes/64, 512<<10), hotMax)
}

// hotIndex finds record id among the hot and spilling records.
func (o *outbox) hotIndex(id uint64) (int, bool) {
	if o.jr == nil || idSeq(id) < o.hotFrom {
		return 0, false
	}
	i, ok := slices.BinarySearchFunc(o.hot, idSeq(id), cmpSeq)
	if !ok || o.hot[i].val == nil || o.hot[i].id != id {
		return 0, false
	}
	return i, true
}

// hotRecord returns hot or spilling record id.
func (o *outbox) hotRecord(id uint64) (record, bool) {
	i, ok := o.hotIndex(id)
	if !ok {
		return record{}, false
	}
	return o.hot[i], true
}

// unhot takes record id, deleted or quarantined, off the hot and spilling
// records, and returns its journal file. Whether the store has anything to
// delete for it is decided when its batch is taken (takeRemovedHot): by
// then a spill in flight has succeeded or failed.
func (o *outbox) unhot(id uint64) (jf uint32, ok bool) {
	i, ok := o.hotIndex(id)
	if !ok {
		return 0, false
	}
	jf = o.hot[i].jf
	o.hotBytes -= int64(len(o.hot[i].val))
	o.hot[i].val = nil
	o.trimHot()
	return jf, true
}

// takeRemovedHot decides, for the records b deletes or quarantines that
// were in the journal, whether they are in Badger: not if they are at or
// above hotFrom (no spill is in flight while a batch is taken). Those are
// "hot": nothing to delete, and nothing in meta's counts. A deleted one
// frees its place in its journal file at once; a quarantined one once its
// copy in the quarantine is synced.
func (o *outbox) takeRemovedHot(b *batch) {
	for i := range b.dels {
		if d := &b.dels[i]; d.journalled && idSeq(d.id) >= o.hotFrom {
			d.hot = true
			o.release(d.jf)
		}
	}
	for i := range b.bad {
		if q := &b.bad[i]; q.journalled && idSeq(q.id) >= o.hotFrom {
			q.hot = true
		}
	}
}

// trimHot drops deleted records off the front of the hot records. It
// reslices rather than copies (records are acknowledged at the front, one
// by one); append moves the rest to a new array when it grows.
func (o *outbox) trimHot() {
	i := 0
	for i < len(o.hot) && o.hot[i].val == nil {
		i++
	}
	clear(o.hot[:i]) // the values, for the collector
	o.hot = o.hot[i:]
}

// release counts one record of journal file jf as acknowledged or spilled;
// a file with none left, and no longer written, is removed at the next
// commit.
func (o *outbox) release(jf uint32) {
	o.jlive[jf]--
	if o.jlive[jf] > 0 {
		return
	}
	delete(o.jlive, jf)
	if jf != o.jcur {
		o.jfree = append(o.jfree, jf)
	}
}

// addHot makes the records just journalled in file jf hot.
func (o *outbox) addHot(recs []record, jf uint32) {
	if jf != o.jcur {
		if _, live := o.jlive[o.jcur]; !live && o.jcur != 0 {
			o.jfree = append(o.jfree, o.jcur)
		}
		o.jcur = jf
	}
	for _, r := range recs {
		r.jf = jf
		o.hot = append(o.hot, r)
		o.hotBytes += int64(len(r.val))
	}
	o.jlive[jf] += len(recs)
}

// takeSpill moves into b the oldest hot records that must spill: those
// older than hotFor and those beyond hotMax bytes, or all of them.
func (o *outbox) takeSpill(b *batch, now time.Time, all bool) {
	if o.jr == nil {
		return
	}
	b.jfree, o.jfree = o.jfree, nil
	over := o.hotBytes - o.hotMax
	for _, r := range o.hot {
		if r.val == nil {
			continue
		}
		if !all && over <= 0 {
			if _, at, _ := parseValue(r.val); now.Sub(at) < hotFor {
				break
			}
		}
		over -= int64(len(r.val))
		b.spill = append(b.spill, r)
	}
	if len(b.spill) > 0 {
		o.spillTo = idSeq(b.spill[len(b.spill)-1].id) + 1
		b.spillTo = o.spillTo
	}
}

// spillDue reports whether a hot record must spill, or spilled records
// wait for a sync of Badger.
func (o *outbox) spillDue(now time.Time) bool {
	if o.jr == nil || o.hotBytes > o.hotMax || o.unsyncedN > 0 {
		return o.jr != nil
	}
	if len(o.hot) == 0 {
		return false
	}
	_, at, _ := parseValue(o.hot[0].val) // trimHot keeps the first one held
	return now.Sub(at) >= hotFor
}

// spilled records that b's spilled records are in Badger now; their
// journal files keep them until a sync of Badger (b.release).
func (o *outbox) spilled(b *batch) {
	o.hotFrom = b.spillTo
	i := 0
	for ; i < len(o.hot) && idSeq(o.hot[i].id) < o.hotFrom; i++ {
		o.hotBytes -= int64(len(o.hot[i].val))
	}
	clear(o.hot[:i])
	o.hot = o.hot[i:]
	o.trimHot()
}

// openHot opens the journal of a store on disk, writes into Badger the
// records of the files a crash left, and removes those files.
func (o *outbox) openHot(dir string, maxBytes int64) error {
	jr, files, err := openJournal(filepath.Join(dir, journalDir))
	if err != nil {
		return err
	}
	jr.max, o.hotMax = journalLimits(maxBytes)
	// Until Badger is synced a spilled event is on disk twice, in the
	// journal and in Badger: under a small byte cap that share shows.
	o.deferSync = maxBytes <= 0 || maxBytes >= 256<<20
	recs, doubt, problems, err := o.readReplay(dir)
	if err != nil {
		return err
	}
	lost, err := o.missing(doubt)
	if err != nil {
		return err
	}
	for _, p := range problems {
		kept, err := keepDamaged(filepath.Join(dir, p.File))
		o.log.Error("journal file damaged: the events after the damage are not replayed; file kept", "file", kept, "problem", p.Problem)
		if err != nil {
			return err
		}
	}
	if err := o.replay(append(recs, lost...)); err != nil {
		return err
	}
	if len(lost) > 0 {
		// meta may have counted them before they were lost: count again.
		o.log.Warn("events the store lost in a power cut (or acknowledged without a trace before it) were put back from the journal",
			"dir", o.dir, "events", len(lost))
		if err := o.recountAll(); err != nil {
			return err
		}
	}
	// What Badger held when it opened, a crashed process's unsynced
	// writes included, and the replay: durable before the journal goes.
	if err := o.syncStore(); err != nil {
		return err
	}
	o.meta.Synced = o.meta.Last
	if err := noteBoot(filepath.Join(dir, journalDir)); err != nil {
		// Without the note the next start looks up more than it needs to.
		o.log.Warn("cannot note this boot in the store's journal", "dir", o.dir, "err", err)
	}
	for _, n := range files { // a damaged one is gone already: kept under its new name
		if err := jr.remove(n); err != nil {
			return err
		}
	}
	o.jr, o.jlive = jr, map[uint32]int{}
	o.hotFrom, o.spillTo = o.next, o.next
	return nil
}

// keepDamaged renames the damaged journal file at path, out of the
// journal's way, to a name no earlier damaged file has; it returns it.
func keepDamaged(path string) (string, error) {
	for i := range 1000 {
		name := path + ".damaged"
		if i > 0 {
			name = fmt.Sprintf("%s.damaged.%d", path, i)
		}
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name, os.Rename(path, name)
		}
	}
	return path, fmt.Errorf("uplink: journal: no name left to keep %s under", path)
}

// readReplay reads the journal of the store in dir: the records to put
// into Badger, and those to look up in it first (replayable).
func (o *outbox) readReplay(dir string) (recs, doubt []record, problems []FileProblem, err error) {
	rebooted := rebootedSince(filepath.Join(dir, journalDir))
	problems, err = readJournalDir(dir, func(jr journalRecord) error {
		switch r, verdict := o.replayable(jr, rebooted); verdict {
		case replayIt:
			recs = append(recs, r)
		case lookItUp:
			doubt = append(doubt, r)
		}
		return nil
	})
	return recs, doubt, problems, err
}

// What to do with a record read back from the journal.
const (
	skipIt   = iota // acknowledged, or in Badger
	replayIt        // beyond the last record Badger holds
	lookItUp        // in Badger, or acknowledged, unless a power cut lost it
)

// replayable returns the record of jr, read from the journal, and what to
// do with it. One at or below the last record Badger holds was spilled
// before the crash, or acknowledged while hot: Badger holds it, or it was
// acknowledged. Unless the machine restarted since the store was last
// opened (rebooted): a power cut may have kept a later spill and lost this
// one (powercut.go), so above meta's Synced it is looked up.
func (o *outbox) replayable(jr journalRecord, rebooted bool) (record, int) {
	li := o.laneOf(jr.class)
	if li < 0 {
		o.addLane(Class{Name: jr.class})
		li = len(o.lanes) - 1
	}
	r := record{id: makeID(li, jr.seq), seg: jr.seg, val: jr.val}
	switch {
	case jr.seq < o.lanes[li].low, jr.seq <= o.meta.Synced:
		return r, skipIt
	case jr.seq <= o.durable && rebooted:
		return r, lookItUp
	case jr.seq <= o.durable:
		return r, skipIt
	}
	return r, replayIt
}

// replay writes recs, read from the journal, into Badger and counts them.
func (o *outbox) replay(recs []record) error {
	if len(recs) == 0 {
		return nil
	}
	slices.SortFunc(recs, func(a, b record) int { return cmpSeq(a, idSeq(b.id)) })
	recs = slices.CompactFunc(recs, func(a, b record) bool { return a.id == b.id })
	m := o.meta.clone()
	if err := o.writeRecords(recs, &m); err != nil {
		return err
	}
	o.meta = m
	for _, r := range recs {
		l := o.lanes[idLane(r.id)]
		cost := recordCost(l, r.val)
		l.n++
		l.bytes += cost
		o.n++
		o.bytes += cost
	}
	last := idSeq(recs[len(recs)-1].id)
	o.next, o.durable = max(o.next, last+1), max(o.durable, last)
	for _, l := range o.lanes {
		l.raFrom, l.raTo = o.durable+1, o.durable+1
		l.segs = slices.Clone(m.Lanes[l.Name].Segs)
	}
	o.log.Info("replayed events from the journal into the store", "dir", o.dir, "events", len(recs))
	return nil
}

// hotAhead appends to ra, up to raSize, lane l's hot and spilling records
// from from on: readAhead read Badger only below hotFrom.
func (o *outbox) hotAhead(ra []record, l *lane, from uint64) []record {
	if o.jr == nil {
		return ra
	}
	i, _ := slices.BinarySearchFunc(o.hot, max(from, o.hotFrom), cmpSeq)
	for ; i < len(o.hot) && len(ra) < raSize; i++ {
		if r := o.hot[i]; r.val != nil && idLane(r.id) == l.idx && idSeq(r.id) <= o.durable {
			ra = append(ra, r)
		}
	}
	return ra
}

// closeHot spills every hot record, syncs Badger and removes the journal's
// files, so that a clean restart replays nothing. The committer has
// stopped. On an error the files stay, to be replayed.
func (o *outbox) closeHot() error {
	if o.jr == nil {
		return nil
	}
	if err := o.jr.close(); err != nil {
		return err
	}
	b := &batch{}
	o.takeSpill(b, time.Time{}, true)
	if len(b.spill) > 0 {
		m := o.meta.clone()
		if err := o.writeRecords(b.spill, &m); err != nil {
			return err
		}
		o.meta = m
	}
	// Also what earlier commits spilled or quarantined without a sync.
	if err := o.syncStore(); err != nil {
		return err
	}
	files, err := listJournal(o.jr.dir)
	if err != nil {
		return err
	}
	for _, n := range files {
		if err := o.jr.remove(n); err != nil {
			return err
		}
	}
	return nil
}

// readJournalDir calls fn for each record of the journal files in the
// store in dir, oldest first, without changing them (Salvage and
// CheckStore). A damaged frame ends its file; the damage is returned as a
// problem to report.
func readJournalDir(dir string, fn func(journalRecord) error) ([]FileProblem, error) {
	nums, err := listJournal(filepath.Join(dir, journalDir))
	if err != nil {
		return nil, err
	}
	var problems []FileProblem
	for i, n := range nums {
		name := filepath.Join(journalDir, journalFileName(n))
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return problems, err
		}
		err = readJournal(bufio.NewReader(f), fn)
		_ = f.Close()
		if errors.Is(err, errJournalCut) && i == len(nums)-1 {
			err = nil // the write a crash interrupted
		}
		if errors.Is(err, errJournalFrame) || errors.Is(err, errJournalCut) {
			problems = append(problems, FileProblem{name, err.Error() + "; the events after it are lost"})
			continue
		}
		if err != nil {
			return problems, err
		}
	}
	return problems, nil
}
