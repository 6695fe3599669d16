package uplink_test

import (
	"bytes"
	"errors"
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
