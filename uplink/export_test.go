package uplink

import (
	"context"
	"log/slog"
	"net"
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

// SetDialer makes the uplink connect through dial (mqtt:// only).
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
