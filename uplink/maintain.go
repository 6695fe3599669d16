package uplink

import (
	"os"
	"path/filepath"
	"time"
)

// Maintenance: expiry and the byte cap.
//
// A goroutine owned by the Uplink (started by Open, waited for by
// closeStore) wakes every maintainEvery. It drops events older than their
// class's TTL, and, with a byte cap on a store on disk, measures the store
// and steers the outbox's byte budget so that the disk stays at the cap.
//
// Expiry goes oldest first: within a lane, events are in the order they
// were accepted, and a class has one TTL, so the first event of a lane that
// has not expired ends the search. An event in flight is left to its PUBACK.

// maintainEvery is the period of maintenance: expiry happens within it of
// an event's deadline, and the disk is measured that often.
const maintainEvery = 250 * time.Millisecond

// maxDropsPerTurn bounds the work done under the Uplink's mutex in one turn;
// the next turn goes on.
const maxDropsPerTurn = 20000

func (u *Uplink) maintain(o *outbox) {
	defer u.maint.Done()
	t := time.NewTicker(u.maintEvery)
	defer t.Stop()
	logged := map[string]uint64{} // drops already logged, by reason
	var forwarded uint64          // events acknowledged by the cloud, at the last turn
	for {
		select {
		case <-o.quit:
			return
		case <-t.C:
		}
		var usage int64
		if o.dir != "" {
			usage = dirUsage(o.dir)
		}
		u.mu.Lock()
		u.expire(time.Now())
		draining := u.stats.Forwarded > forwarded
		forwarded = u.stats.Forwarded
		if usage > 0 {
			u.stats.StoreBytes = usage
			if u.opts.MaxBytes > 0 {
				o.steer(usage, u.opts.MaxBytes, draining)
			}
		}
		u.enforceBudget()
		if o.spillDue(time.Now()) {
			o.batch()
			o.poke()
		}
		o.emptySegments()
		u.logDrops(logged)
		u.mu.Unlock()
	}
}

// expire drops the events whose class's TTL has passed.
func (u *Uplink) expire(now time.Time) {
	drops := 0
	for li, l := range u.ob.lanes {
		if l.TTL <= 0 {
			continue
		}
		for from := uint64(0); drops < maxDropsPerTurn; {
			r, ok := u.ob.nextRecord(li, from)
			if !ok {
				break
			}
			if _, at, _ := parseValue(r.val); now.Sub(at) < l.TTL {
				break
			}
			from = idSeq(r.id) + 1
			if u.win.busy(r.id) {
				continue
			}
			u.drop(r.id, DropExpired)
			drops++
		}
	}
}

// logDrops logs the drops since the last turn, once per reason and turn,
// so that a full outbox does not flood the log.
func (u *Uplink) logDrops(logged map[string]uint64) {
	for reason, n := range u.ob.drops {
		if d := n - logged[reason]; d > 0 {
			u.log.Warn("dropped undelivered events", "reason", reason, "events", d, "total", n,
				"queued", u.ob.n, "queued_bytes", u.ob.bytes)
			logged[reason] = n
		}
	}
}

// drop deletes an undelivered event and counts it.
func (u *Uplink) drop(id uint64, reason string) {
	u.ob.Delete(id)
	u.ob.drops[reason]++
	u.space.notify()
}

// dropOldest drops the oldest event, not in flight, of the lowest class
// that holds one, going no higher than lane li. It reports whether it
// dropped one.
func (u *Uplink) dropOldest(li int, reason string) bool {
	for j := len(u.ob.lanes) - 1; j >= li; j-- {
		for from := uint64(0); ; {
			r, ok := u.ob.nextRecord(j, from)
			if !ok {
				break
			}
			if !u.win.busy(r.id) {
				u.drop(r.id, reason)
				return true
			}
			from = idSeq(r.id) + 1
		}
	}
	return false
}

// enforceBudget drops oldest events, lowest class first, while the outbox
// holds more bytes than its budget and the policy allows dropping.
func (u *Uplink) enforceBudget() {
	o := u.ob
	for drops := 0; o.budget > 0 && o.bytes > o.budget && drops < maxDropsPerTurn; drops++ {
		if u.opts.WhenFull != DropOldest || !u.dropOldest(0, DropFull) {
			return
		}
	}
}

// initialBudget is the byte budget an outbox starts with. In memory it is
// the cap itself. On disk, what Badger stores for the events differs from
// their size (compression, indexes, deleted events not yet compacted, its
// write-ahead logs), so the budget starts below the cap by the size of the
// logs, and steer moves it by what the disk shows.
func initialBudget(opts *Options, o *outbox) int64 {
	if opts.MaxBytes <= 0 {
		return 0
	}
	if o.dir == "" {
		return opts.MaxBytes
	}
	mt := storeOptions(opts).MemTableSize
	return max(opts.MaxBytes-3*mt-segmentBytes(opts.MaxBytes)/2, opts.MaxBytes/2)
}

// steer moves the byte budget so that the store's size on disk settles at
// the cap. What Badger needs besides the events (write-ahead logs, indexes,
// a deleted segment not yet dropped, tables being compacted) comes and goes,
// so steering follows the average size over the last few turns, and moves
// the budget by a quarter of the gap, converted from disk bytes to event
// bytes at their current ratio: it settles rather than swings. It grows the
// budget only while the outbox is near full, when there is something to
// learn; and it cuts at once if the disk is about to pass the cap's +5%,
// except while draining (the cloud acknowledged events since the last turn)
// and the disk is, on average, within a quarter above the cap: then it
// drops nothing that is queued.
func (o *outbox) steer(usage, maxBytes int64, draining bool) {
	if o.avgUsage == 0 {
		o.avgUsage = float64(usage)
	}
	o.avgUsage += (float64(usage) - o.avgUsage) / 4
	full := o.bytes >= o.budget-o.budget/20
	if o.bytes <= 0 || (o.avgUsage <= float64(maxBytes) && !full) {
		return
	}
	perByte := o.avgUsage / float64(o.bytes)
	delta := (float64(maxBytes) - o.avgUsage) / perByte / 4
	if over := usage - maxBytes - maxBytes/25; over > 0 {
		delta = min(delta, -float64(over)/perByte)
	}
	if draining && o.avgUsage <= float64(maxBytes+maxBytes/4) {
		// The queue is being delivered: the disk follows once Badger
		// compacts what was deleted. Cutting the budget below what is
		// queued now would drop events the drain is about to free anyway.
		// The average, not the last reading: a compaction writes its new
		// tables before it deletes the old ones, a peak of a turn or two.
		delta = max(delta, float64(o.bytes-o.budget))
	}
	o.budget = max(o.budget+int64(delta), minBudget)
}

// minBudget keeps a budget that steering shrank from reaching zero, which
// would mean no cap at all.
const minBudget = 1 << 20

// dirUsage is the space the files in dir, its journal and state files
// included, take on disk: allocated blocks where the system reports them
// (Badger preallocates its logs sparsely), sizes elsewhere. Errors count as
// nothing: the next turn measures again.
func dirUsage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range entries {
		if e.IsDir() { // the journal's and the state files'
			total += dirUsage(filepath.Join(dir, e.Name()))
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		total += allocated(fi)
	}
	return total
}
