package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// timing holds the delays the uplink waits and how it dials; tests shorten
// the delays, fix the randomness and gate the dialing to stage outages.
type timing struct {
	reconnect autopaho.Backoff                                         // nil: backoff from ReconnectMin/Max
	jitter    func(n int64) int64                                      // uniform in [0, n): the jitter of the backoff
	retry     func(failures int) time.Duration                         // before retrying after the n-th rejection
	dial      func(ctx context.Context, addr string) (net.Conn, error) // TCP; nil: a net.Dialer
}

func defaultTiming() timing {
	return timing{jitter: rand.Int64N, retry: retryDelay}
}

// backoff is the wait before connection attempt n (0 for the first): a
// random duration between half and all of its bound, where the bound starts
// at lo and doubles with each attempt up to hi. The jitter spreads a fleet
// of gateways that lost the broker at once over time, instead of having
// them all knock at the same moment. jitter(k) must return a value in
// [0, k), as rand.Int64N does.
func backoff(lo, hi time.Duration, attempt int, jitter func(int64) int64) time.Duration {
	if attempt <= 0 || hi <= 0 {
		return 0
	}
	bound := hi
	if shift := attempt - 1; shift < 63 && lo <= hi>>shift {
		bound = lo << shift
	}
	half := bound / 2
	return half + time.Duration(jitter(int64(bound-half)+1))
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
