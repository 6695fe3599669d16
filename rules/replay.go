package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/event"
)

// ReplayOptions tune a replay.
type ReplayOptions struct {
	AllowedLateness time.Duration
	IdleTimeout     time.Duration
	// Until runs the clock on this far past the newest reading once the
	// input ends, so that windows and absences falling due then are seen.
	Until time.Duration
	// Source prefixes derived events' sources, as the gateway id does.
	Source string

	// restartEvery, in tests, carries the engine's state over to a new
	// engine through a checkpoint every so many inputs, as a restart would.
	restartEvery int
}

// inputLine is one line of a replay input: a CloudEvent in structured JSON,
// of which only time, type and data are required.
type inputLine struct {
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Topic   string          `json:"topic"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// Replay runs readings (JSON lines) through the rules on a virtual clock:
// processing time is the newest event time read so far, so a day of
// readings takes as long as it takes to compute, not a day. Blank lines
// and lines starting with # are skipped. An input without an id gets
// "line-N"; without a source, /devices/{subject}.
func Replay(set *RuleSet, in io.Reader, opts ReplayOptions, emit func(Derived)) error {
	var now time.Time
	eopts := Options{Source: opts.Source, AllowedLateness: opts.AllowedLateness,
		IdleTimeout: opts.IdleTimeout, Now: func() time.Time { return now }}
	e := NewEngine(set, eopts)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		ev, err := parseReading(b, line)
		if err != nil {
			return err
		}
		if ev.Time.After(now) {
			now = ev.Time
		}
		e.Process(ev, emit)
		e.Advance(emit)
		if opts.restartEvery > 0 && line%opts.restartEvery == 0 {
			b, _ := e.Snapshot()
			e = NewEngine(set, eopts)
			if _, err := e.Restore(b); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("rules: reading input: line %d: %w", line+1, err)
	}
	if !now.IsZero() {
		now = now.Add(opts.Until)
		e.AdvanceTo(now, emit)
	}
	return nil
}

func parseReading(b []byte, line int) (*event.Event, error) {
	var r inputLine
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("rules: input line %d: %v", line, err)
	}
	switch {
	case r.Type == "":
		return nil, fmt.Errorf("rules: input line %d: no type", line)
	case r.Time.IsZero():
		return nil, fmt.Errorf("rules: input line %d: no time (RFC 3339)", line)
	case len(r.Data) > 0 && !bytes.HasPrefix(bytes.TrimSpace(r.Data), []byte("{")):
		return nil, fmt.Errorf("rules: input line %d: data must be a JSON object", line)
	}
	if r.ID == "" {
		r.ID = "line-" + strconv.Itoa(line)
	}
	if r.Source == "" {
		r.Source = "/devices/" + r.Subject
	}
	return &event.Event{ID: r.ID, Source: r.Source, Type: r.Type, Subject: r.Subject, Topic: r.Topic,
		Time: r.Time, DataContentType: "application/json", Data: r.Data}, nil
}

// AppendLine appends d as one JSON line: a derived event as a structured
// CloudEvent; a late input as {"late":{"rule":…},"event":{…}}.
func (d Derived) AppendLine(buf []byte) []byte {
	if !d.Late {
		return append(d.Event.AppendJSON(buf), '\n')
	}
	rule, _ := json.Marshal(d.Rule)
	buf = append(buf, `{"late":{"rule":`...)
	buf = append(buf, rule...)
	buf = append(buf, `},"event":`...)
	buf = d.Event.AppendJSON(buf)
	return append(buf, "}\n"...)
}
