package uplink_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowgate/flowgate/uplink"
)

// TestStateBesideEvents: a state record saved in the store is there after a
// restart, replaced whole by the next save, invisible to the outbox (the
// events queued with it are all still there, and no more), and refused
// once the store is closed.
func TestStateBesideEvents(t *testing.T) {
	for _, dir := range []string{t.TempDir(), ""} {
		opts := uplink.Options{URL: offline, StoreDir: dir}
		u := newUplink(t, opts)
		if err := u.Open(); err != nil {
			t.Fatal(err)
		}
		if v, err := u.LoadState("rules"); err != nil || v != nil {
			t.Fatalf("LoadState of a new store: %q, %v; want nothing", v, err)
		}
		evs := makeEvents(10)
		enqueueAll(t, u, evs)
		for _, v := range []string{"first", "second, longer than the first"} {
			if err := u.SaveState("rules", []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if s := u.Stats(); s.Queued != len(evs) {
			t.Errorf("%d queued beside the state record, want %d", s.Queued, len(evs))
		}
		_ = closeOK(t, u)
		if err := u.SaveState("rules", []byte("late")); !errors.Is(err, uplink.ErrClosed) {
			t.Errorf("SaveState after Close: %v, want ErrClosed", err)
		}
		if dir == "" {
			continue // in memory: nothing to reopen
		}
		again := newUplink(t, opts)
		if err := again.Open(); err != nil {
			t.Fatal(err)
		}
		v, err := again.LoadState("rules")
		if err != nil || !bytes.Equal(v, []byte("second, longer than the first")) {
			t.Errorf("after a restart LoadState = %q, %v; want the last save", v, err)
		}
		if s := again.Stats(); s.Queued != len(evs) {
			t.Errorf("after a restart %d queued, want %d", s.Queued, len(evs))
		}
		_ = closeOK(t, again)
	}
}

// TestStateFilesNotBadger: on disk a state record is a file of its own, so
// repeated large saves (a rules checkpoint of megabytes every second) do
// not pile up in Badger's value log, which nothing would give back; a
// record an older version kept in Badger is still loaded, and the first
// save moves it out. A bad name is refused.
func TestStateFilesNotBadger(t *testing.T) {
	dir := t.TempDir()
	opts := uplink.Options{URL: offline, StoreDir: dir}
	old := newUplink(t, opts)
	if err := old.Open(); err != nil {
		t.Fatal(err)
	}
	if err := uplink.SaveStateInBadger(old, "rules", []byte("from an older version")); err != nil {
		t.Fatal(err)
	}
	_ = closeOK(t, old)

	u := newUplink(t, opts)
	if err := u.Open(); err != nil {
		t.Fatal(err)
	}
	if v, err := u.LoadState("rules"); err != nil || string(v) != "from an older version" {
		t.Fatalf("LoadState of a record in Badger = %q, %v", v, err)
	}
	big := bytes.Repeat([]byte("checkpoint "), 300_000) // 3.3 MB: above Badger's value threshold
	for i := range 20 {
		big[0] = byte('a' + i)
		if err := u.SaveState("rules", big); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := u.LoadState("rules"); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("LoadState after the saves: %d bytes, %v; want the last save", len(v), err)
	}
	if found, err := uplink.StateInBadger(u, "rules"); err != nil || found {
		t.Errorf("the record is still in Badger after a save (%v, %v)", found, err)
	}
	if err := u.SaveState("../escape", []byte("x")); err == nil {
		t.Error("SaveState with a path for a name succeeded")
	}
	_ = closeOK(t, u)
	// 20 saves of 3.3 MB: in Badger's value log they would be 66 MB.
	var vlog int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			vlog += uplink.AllocatedBytes(fi)
		}
	}
	if vlog > 8<<20 {
		t.Errorf("Badger's value logs hold %d bytes after 20 saves", vlog)
	}
	st, err := os.ReadFile(filepath.Join(dir, "state", "rules"))
	if err != nil || !bytes.Equal(st, big) {
		t.Errorf("state/rules: %d bytes, %v", len(st), err)
	}
}
