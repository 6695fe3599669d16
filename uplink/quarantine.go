package uplink

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Quarantine: a stored record that cannot be read (Badger reports an error
// for its value, its header is not one this version wrote, or the MQTT
// packet in it does not parse) is not sent and not retried forever. It is
// moved, as it is, under the quarantine prefix of the store, counted in
// Stats.Quarantined and logged with its key; everything else keeps flowing.
// Nothing is deleted: `flowgate store quarantine` writes the quarantined
// records out for inspection (see the README).

// badRecord is a record to set aside.
type badRecord struct {
	record       // val is what could be read of it; may be nil
	size   int64 // what it counted against the byte budget
	err    error // why it could not be used

	journalled bool   // it was a hot or spilling record (hot.go)
	jf         uint32 // then: its journal file
	hot        bool   // set when taken: not in Badger, nothing to delete
}

// Reasons a record is quarantined, besides Badger's own errors.
var (
	errBadHeader  = errors.New("not a record this version of Flowgate wrote")
	errUnparsable = errors.New("the MQTT packet in it does not parse")
)

// quarantineAll takes bad records off the counts, hides them from Next and
// queues them to be moved at the next commit.
func (o *outbox) quarantineAll(bad []badRecord) {
	for _, q := range bad {
		if q.err == nil {
			q.err = errBadHeader
		}
		l := o.lanes[idLane(q.id)]
		q.jf, q.journalled = o.unhot(q.id)
		o.dels[q.id] = true
		o.batch().bad = append(o.pend.bad, q)
		o.forget(l, q.size)
		o.quarant++
		o.log.Error("queued event cannot be read; moved to quarantine", "dir", o.dir, "class", l.Name,
			"seq", idSeq(q.id), "err", q.err)
	}
	if len(bad) > 0 {
		o.poke()
	}
}

// quarantine sets aside written record id, which could not be used for why.
func (o *outbox) quarantine(id uint64, why error) {
	if o.closed || idLane(id) >= len(o.lanes) {
		return
	}
	if _, gone := o.dels[id]; gone {
		return
	}
	l := o.lanes[idLane(id)]
	r, ok := o.remove(l, idSeq(id))
	if !ok {
		return
	}
	o.quarantineAll([]badRecord{{record: r, size: recordCost(l, r.val), err: why}})
}

// setAside writes the move of q into txn, and takes it off m.
func (o *outbox) setAside(txn *badger.Txn, q badRecord, m *meta) error {
	l := o.lanes[idLane(q.id)]
	key := recordKey(l, q.seg, idSeq(q.id))
	if err := txn.Set(append([]byte{quarantineTag}, key...), q.val); err != nil {
		return fmt.Errorf("quarantine %x: %w", key, err)
	}
	if q.hot {
		return nil
	}
	if err := txn.Delete(key); err != nil {
		return fmt.Errorf("quarantine %x: %w", key, err)
	}
	m.add(l.Name, -q.size)
	return nil
}

// Quarantined is one record found in a store's quarantine.
type Quarantined struct {
	Key   []byte // its key before it was set aside: class and sequence number
	Value []byte // what was stored, as it is
}
