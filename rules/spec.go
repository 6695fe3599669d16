package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File is a rules file as written in YAML.
//
//	rules:
//	  - name: reefer-too-warm
//	    match: {types: [env.reading]}
//	    threshold: {field: data.temperature, above: 8, clear_below: 7}
//	    emit: {type: coldchain.excursion.started, clear_type: coldchain.excursion.ended}
type File struct {
	Rules []Spec `yaml:"rules"`
}

// Spec is one rule as written. A rule matches events, optionally filters
// them, keys them (by), and applies at most one building block: a window
// with aggregates, change, threshold, rate, sequence or absence. A rule with
// no building block emits one event per matching event (a transform).
type Spec struct {
	Name        string `yaml:"name"`
	Version     string `yaml:"version"`
	Description string `yaml:"description"`

	Match  Match  `yaml:"match"`
	Filter string `yaml:"filter"` // an expression over the event (see Env)
	By     string `yaml:"by"`     // the key: subject (default), source, or data.<path>

	Window     *WindowSpec       `yaml:"window"`
	Aggregates map[string]string `yaml:"aggregates"` // output name → "avg(data.temperature)"
	Having     string            `yaml:"having"`     // expression over the aggregates; false: no output

	Change    *ChangeSpec    `yaml:"change"`
	Threshold *ThresholdSpec `yaml:"threshold"`
	Rate      *RateSpec      `yaml:"rate"`
	Sequence  *SequenceSpec  `yaml:"sequence"`
	Absence   *AbsenceSpec   `yaml:"absence"`

	Emit EmitSpec `yaml:"emit"`
}

// Match selects the events a rule sees. Every list that is given must
// contain the event's value; the topic is an MQTT filter.
type Match struct {
	Types    []string `yaml:"types"`
	Subjects []string `yaml:"subjects"`
	Topic    string   `yaml:"topic"`
}

// WindowSpec is a window over event time, per key.
type WindowSpec struct {
	Kind  string   `yaml:"kind"`  // tumbling, hopping, sliding, session, count
	Size  Duration `yaml:"size"`  // tumbling, hopping, sliding
	Hop   Duration `yaml:"hop"`   // hopping: how far apart windows start
	Gap   Duration `yaml:"gap"`   // session: the quiet time that ends a session
	Count int      `yaml:"count"` // count: events per window
}

// ChangeSpec reports a field only when it changes: by any amount, by more
// than an absolute deadband, or by more than a percentage of the last
// reported value.
type ChangeSpec struct {
	Field       string  `yaml:"field"`
	Deadband    float64 `yaml:"deadband"`
	DeadbandPct float64 `yaml:"deadband_pct"`
}

// ThresholdSpec reports crossing a limit, with hysteresis: the condition
// starts beyond Above (or Below) and ends only back past ClearBelow (or
// ClearAbove), so a value wavering at the limit does not chatter.
type ThresholdSpec struct {
	Field      string   `yaml:"field"`
	Above      *float64 `yaml:"above"`
	ClearBelow *float64 `yaml:"clear_below"`
	Below      *float64 `yaml:"below"`
	ClearAbove *float64 `yaml:"clear_above"`
}

// RateSpec reports a field changing faster than a limit, per Per of event
// time, between consecutive events of a key.
type RateSpec struct {
	Field string   `yaml:"field"`
	Per   Duration `yaml:"per"` // default 1s
	Above *float64 `yaml:"above"`
	Below *float64 `yaml:"below"`
}

// StepSpec is one event a pattern waits for.
type StepSpec struct {
	Types  []string `yaml:"types"`
	Filter string   `yaml:"filter"`
}

// SequenceSpec reports its steps happening in order, per key, within a
// time from the first.
type SequenceSpec struct {
	Steps  []StepSpec `yaml:"steps"`
	Within Duration   `yaml:"within"`
}

// AbsenceSpec reports a Start event not followed by an End event of the
// same key within a time.
type AbsenceSpec struct {
	Start  StepSpec `yaml:"start"`
	End    StepSpec `yaml:"end"`
	Within Duration `yaml:"within"`
}

// EmitSpec is the notable event a rule produces.
type EmitSpec struct {
	Type      string            `yaml:"type"`
	ClearType string            `yaml:"clear_type"` // threshold: the event when the condition ends
	Route     string            `yaml:"route"`      // a route of the gateway config; empty: every route that matches the type
	Fields    map[string]string `yaml:"fields"`     // output name → field of the triggering event, copied
}

// Duration is a time.Duration that also reads days and weeks ("14d",
// "2w", "1d12h"), because rules look across days.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a Go duration whose leading part may count days (d)
// and weeks (w): "14d", "1w2d", "1d12h30m".
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	var total time.Duration
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || (s[i] != 'd' && s[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		unit := 24 * time.Hour
		if s[i] == 'w' {
			unit *= 7
		}
		if err != nil || n > int64(time.Duration(1<<62)/unit) {
			return 0, fmt.Errorf("duration %q is out of range", orig)
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
	}
	if s == "" {
		if total == 0 && !strings.ContainsAny(orig, "0123456789") {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		return total, nil
	}
	rest, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write 90s, 10m, 8h, 14d)", orig)
	}
	if rest < 0 && total > 0 {
		return 0, fmt.Errorf("invalid duration %q", orig)
	}
	return total + rest, nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
