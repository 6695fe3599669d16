package uplink

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// State beside the events. Other parts of the gateway keep a few durable
// records in the outbox's store (the rules engine keeps its checkpoints
// there), so that one directory holds everything a restart needs and one
// fsync discipline covers it. They live under their own prefix,
//
//	's' name   a named state record, replaced whole each time
//
// which the outbox, `flowgate store check` and salvage do not read.
const stateTag = 's'

func stateKey(name string) []byte { return append([]byte{stateTag}, name...) }

// withStore runs fn on the open store, under openMu so that Close waits for a save in
// progress and a save after Close is refused.
func (u *Uplink) withStore(fn func(db *badger.DB) error) error {
	u.openMu.Lock()
	defer u.openMu.Unlock()
	switch {
	case u.storeShut:
		return ErrClosed
	case !u.storeOpen.Load():
		return errors.New("uplink: store not open")
	}
	return fn(u.ob.db)
}

// SaveState replaces the state record name with value, durably: when it
// returns nil, the record survives a crash. Every event submitted before
// it is on disk first, so a state that counts on those events (a rule that
// has emitted them) is never saved without them.
func (u *Uplink) SaveState(name string, value []byte) error {
	err := u.withStore(func(db *badger.DB) error {
		u.mu.Lock()
		b := u.ob.pend
		if b == nil {
			b = u.ob.writing
		}
		u.mu.Unlock()
		if b != nil {
			if err := (Durable{b}).Wait(context.Background()); err != nil {
				return err
			}
		}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey(name), value) }); err != nil {
			return err
		}
		return db.Sync()
	})
	if err != nil {
		return fmt.Errorf("uplink: save state %q: %w", name, err)
	}
	return nil
}

// LoadState returns the state record name, or nil if there is none.
func (u *Uplink) LoadState(name string) ([]byte, error) {
	var value []byte
	err := u.withStore(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(stateKey(name))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			value, err = item.ValueCopy(nil)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("uplink: load state %q: %w", name, err)
	}
	return value, nil
}
