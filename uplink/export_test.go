package uplink

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/flowgate/flowgate/event"
)

// SetTiming replaces the reconnect and retry delays with constants.
func SetTiming(u *Uplink, reconnect, retry time.Duration) {
	u.timing.reconnect = func(attempt int) time.Duration {
		if attempt == 0 {
			return 0
		}
		return reconnect
	}
	u.timing.retry = func(int) time.Duration { return retry }
}

// SetDialer makes the uplink open its TCP connections through dial; for a
// tls:// URL the TLS handshake then runs over what dial returns.
func SetDialer(u *Uplink, dial func(ctx context.Context, addr string) (net.Conn, error)) {
	u.timing.dial = dial
}

// WindowSize is the in-flight window of the current connection, 0 if none.
func WindowSize(u *Uplink) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.win.size
}

// PeakInflight is the most publishes ever in flight at once.
func PeakInflight(u *Uplink) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.win.peak
}

// WaitingForSpace reports whether a goroutine waits for the queue to shrink.
func WaitingForSpace(u *Uplink) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.space.ch != nil
}

// BadgerOptions are the Badger options the store is opened with.
func BadgerOptions(dir string, log *slog.Logger) badger.Options { return badgerOptions(dir, log) }

// Encode returns the record u would store for ev.
func Encode(u *Uplink, ev *event.Event) ([]byte, error) { return u.encode(ev) }

// Backoff is the jittered reconnect backoff of timing.go.
func Backoff(lo, hi time.Duration, attempt int, jitter func(int64) int64) time.Duration {
	return backoff(lo, hi, attempt, jitter)
}

// SetJitter replaces the random source of the reconnect backoff. Call it
// before Run.
func SetJitter(u *Uplink, jitter func(int64) int64) { u.timing.jitter = jitter }

// ReconnectDelay is the wait u chooses before connection attempt n.
func ReconnectDelay(u *Uplink, attempt int) time.Duration { return u.reconnectDelay(attempt) }

// SetConnectedAt pretends the last connection came up at t.
func SetConnectedAt(u *Uplink, t time.Time) {
	u.mu.Lock()
	u.connectedAt = t
	u.mu.Unlock()
}

// Sample is what the watchdog sees at one tick, At after the start.
type Sample struct {
	At        time.Duration
	Epoch     uint64 // the connection
	Forwarded uint64 // Stats.Forwarded
	Waiting   bool   // connected with publishes in flight
}

// Stalled feeds samples to a new watchdog with the given timeout and
// reports, for each, whether it declared the connection stalled.
func Stalled(timeout time.Duration, samples []Sample) []bool {
	w := watchdog{timeout: timeout}
	start := time.Now()
	out := make([]bool, len(samples))
	for i, s := range samples {
		p := progress{epoch: s.Epoch, forwarded: s.Forwarded, waiting: s.Waiting}
		out[i] = w.stalled(p, start.Add(s.At))
	}
	return out
}

// HotMax is the most bytes of hot records the journal holds (hot.go).
const HotMax = hotMax

// WithHotBytes returns o with the journal holding up to n bytes of events
// hot, whatever the byte cap.
func WithHotBytes(o Options, n int64) Options {
	o.hotBytes = n
	return o
}

// HotValueLen is how many of those bytes an encoded event rec takes.
func HotValueLen(rec []byte) int { return len(makeValue(rec, time.Time{})) }

// WithoutJournal returns o with the journal off: every record goes into
// Badger at its commit, for tests that damage Badger's files.
func WithoutJournal(o Options) Options {
	o.noJournal = true
	return o
}

// SaveStateInBadger writes a state record where versions before the state
// files kept it: in Badger.
func SaveStateInBadger(u *Uplink, name string, value []byte) error {
	return u.withStore(func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey(name), value) })
	})
}

// StateInBadger reports whether Badger holds state record name.
func StateInBadger(u *Uplink, name string) (found bool, err error) {
	err = u.withStore(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			_, err := txn.Get(stateKey(name))
			found = err == nil
			if errors.Is(err, badger.ErrKeyNotFound) {
				err = nil
			}
			return err
		})
	})
	return found, err
}

// AllocatedBytes is the space fi takes on disk.
func AllocatedBytes(fi os.FileInfo) int64 { return allocated(fi) }
