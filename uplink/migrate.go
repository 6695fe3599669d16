package uplink

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The first version of the store kept each record under its bare 8-byte
// sequence number, with no header and no meta. migrateV0 moves such records
// into the last class, in order, stamped as accepted now, so that an
// upgrade neither loses nor silently ignores a backlog. It runs at open,
// before anything else reads the store, and only when there is no meta.
func (ob *outbox) migrateV0(li int) (int, error) {
	var recs []record
	err := ob.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{0}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if len(item.Key()) != 8 {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("version 0 record %x: %w", item.Key(), err)
			}
			recs = append(recs, record{id: binary.BigEndian.Uint64(item.Key()), val: v})
		}
		return nil
	})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	now := time.Now()
	for _, r := range recs {
		if _, err := ob.Append(li, r.val, now); err != nil {
			return 0, err
		}
	}
	b := ob.take()
	err = ob.write(b)
	ob.written(b, err)
	if err != nil {
		return 0, err
	}
	// The old keys go only once their records are written in the new form:
	// a crash in between sends them twice, with the same ids, never not at all.
	wb := ob.db.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range recs {
		if err := wb.Delete(binary.BigEndian.AppendUint64(nil, r.id)); err != nil {
			return 0, err
		}
	}
	return len(recs), wb.Flush()
}
