package uplink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// State beside the events. Other parts of the gateway keep a few durable
// records with the outbox (the rules engine keeps its checkpoints there),
// so that one directory holds everything a restart needs and one fsync
// discipline covers it. On disk each is a file of its own,
//
//	state/NAME   replaced whole each time (written aside, synced, renamed)
//
// which the outbox, `flowgate store check` and salvage do not read. Not in
// Badger: a checkpoint of a few MB every second would go to Badger's value
// log, whose space only a value-log collection gives back, and whose pages
// are mapped into the gateway's memory. A store in memory keeps them in
// Badger, and a store written before 2026-11 has them there too, under
//
//	's' name
//
// where LoadState still finds them; each process's first SaveState of a
// name deletes it there.
const stateTag = 's'

// stateDir holds the state files of a store on disk.
const stateDir = "state"

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
// has emitted them) is never saved without them. name is letters, digits,
// '.', '_' and '-'.
func (u *Uplink) SaveState(name string, value []byte) error {
	err := checkStateName(name)
	if err == nil {
		err = u.withStore(func(db *badger.DB) error {
			if err := u.submittedDurable(); err != nil {
				return err
			}
			if u.ob.dir == "" {
				return db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey(name), value) })
			}
			dir := filepath.Join(u.ob.dir, stateDir)
			if err := writeFileSynced(dir, name, value); err != nil {
				return err
			}
			if u.stateTidied[name] {
				return nil
			}
			// The first save of name by this process: a record an older
			// version kept in Badger goes, and so do the files a crash
			// left half-written.
			u.stateTidied[name] = true
			leftovers, _ := filepath.Glob(filepath.Join(dir, "."+name+".*"))
			for _, p := range leftovers {
				_ = os.Remove(p)
			}
			return db.Update(func(txn *badger.Txn) error { return txn.Delete(stateKey(name)) })
		})
	}
	if err != nil {
		return fmt.Errorf("uplink: save state %q: %w", name, err)
	}
	return nil
}

// submittedDurable waits for the events submitted so far to be durable.
func (u *Uplink) submittedDurable() error {
	u.mu.Lock()
	b := u.ob.pend
	if b == nil {
		b = u.ob.writing
	}
	err := u.ob.err // an earlier commit failed: its events are not on disk
	u.mu.Unlock()
	if err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	return (Durable{b}).Wait(context.Background())
}

// LoadState returns the state record name, or nil if there is none.
func (u *Uplink) LoadState(name string) ([]byte, error) {
	var value []byte
	err := checkStateName(name)
	if err == nil {
		err = u.withStore(func(db *badger.DB) error {
			if u.ob.dir != "" {
				v, err := os.ReadFile(filepath.Join(u.ob.dir, stateDir, name))
				if !errors.Is(err, os.ErrNotExist) {
					value = v
					return err
				}
			}
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
	}
	if err != nil {
		return nil, fmt.Errorf("uplink: load state %q: %w", name, err)
	}
	return value, nil
}

func checkStateName(name string) error {
	if name == "" || name[0] == '.' || strings.TrimLeft(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		return errors.New("a state name is letters, digits, '.', '_' and '-', not starting with '.'")
	}
	return nil
}

// writeFileSynced replaces dir/name with data, durably: a crash leaves the
// old file or the new one, whole.
func writeFileSynced(dir, name string, data []byte) error {
	if err := mkdirSynced(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return syncDir(dir)
}
