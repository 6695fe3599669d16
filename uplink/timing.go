package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// timing holds the delays the uplink waits and how it dials; tests shorten
// the delays and gate the dialing to stage outages.
type timing struct {
	reconnect autopaho.Backoff                                         // before connection attempt n, 0 for the first
	retry     func(failures int) time.Duration                         // before retrying after the n-th rejection
	dial      func(ctx context.Context, addr string) (net.Conn, error) // nil: autopaho dials
}

func defaultTiming() timing {
	return timing{
		// Attempt 1 waits 0.5-2s, doubling the upper bound up to a minute.
		reconnect: autopaho.NewExponentialBackoff(500*time.Millisecond, time.Minute, 2*time.Second, 2),
		retry:     retryDelay,
	}
}

// retryDelay is 1s after the first rejection, doubling up to a minute.
func retryDelay(failures int) time.Duration {
	return min(time.Second<<min(failures-1, 6), time.Minute)
}

// pahoLogger passes paho's error log lines to slog as warnings.
type pahoLogger struct {
	l      *slog.Logger
	source string
}

func (p pahoLogger) Println(v ...any) {
	if p.l.Enabled(context.Background(), slog.LevelWarn) {
		p.l.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n"), "source", p.source)
	}
}

func (p pahoLogger) Printf(format string, v ...any) {
	if p.l.Enabled(context.Background(), slog.LevelWarn) {
		p.l.Warn(fmt.Sprintf(format, v...), "source", p.source)
	}
}
