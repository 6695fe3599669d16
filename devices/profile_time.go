package devices

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Timestamp formats a profile's time may have; any other format is a Go
// layout.
const (
	TimeEpochS   = "epoch_s"  // seconds since 1970, fractions allowed
	TimeEpochMS  = "epoch_ms" // milliseconds since 1970
	TimeRFC3339  = "rfc3339"  // 2026-01-01T12:00:00.5+01:00
	maxEpochSecs = 1e11       // year 5138: anything later is a unit mistake
)

// timeField is a profile's compiled time.
type timeField struct {
	src     source
	format  string
	maxSkew time.Duration
}

// deviceTime returns the time the payload carries, if it carries one. A
// missing or null time is not an error: the receive time stands in.
func (p *Profile) deviceTime(payload []byte) (time.Time, bool, error) {
	if p.time == nil {
		return time.Time{}, false, nil
	}
	raw, kind := p.raw(payload, p.time.src)
	switch kind {
	case rawMissing, rawNull:
		return time.Time{}, false, nil
	case rawString, rawNumber, rawText:
	default:
		return time.Time{}, false, reject(ReasonBadPayload, fmt.Sprintf("time: want a timestamp, got %s", kind))
	}
	s, ok := scalarText(raw, kind)
	if !ok {
		return time.Time{}, false, reject(ReasonBadPayload, "time: bad string "+clip(raw, kind))
	}
	t, err := p.time.parse(strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, false, reject(ReasonBadPayload, "time: "+err.Error())
	}
	return t.UTC(), true, nil
}

// parse reads s in the time's format.
func (t *timeField) parse(s string) (time.Time, error) {
	switch t.format {
	case TimeEpochS:
		return parseEpoch(s, 1, "epoch_s")
	case TimeEpochMS:
		return parseEpoch(s, 1000, "epoch_ms")
	case TimeRFC3339:
		return time.Parse(time.RFC3339Nano, s)
	}
	return time.Parse(t.format, s)
}

// parseEpoch reads a count of 1/perSecond seconds since 1970.
func parseEpoch(s string, perSecond int64, name string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || float64(n) >= maxEpochSecs*float64(perSecond) {
			return time.Time{}, fmt.Errorf("%s is out of range for %s", s, name)
		}
		return time.Unix(n/perSecond, n%perSecond*(1e9/perSecond)), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a number for %s", s, name)
	}
	secs := v / float64(perSecond)
	if !(secs >= 0 && secs < maxEpochSecs) { // NaN too
		return time.Time{}, fmt.Errorf("%s is out of range for %s", s, name)
	}
	whole := math.Floor(secs)
	return time.Unix(int64(whole), int64(math.Round((secs-whole)*1e9))), nil
}
