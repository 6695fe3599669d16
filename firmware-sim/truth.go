package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// Truth is one notable event a scenario's data implies under the shipped
// rules: its CloudEvents type and subject, the event time it happens at,
// and the fields that identify it (the zone, the reader, the window's
// count…), as the rules put them in the event's data.
type Truth struct {
	Type    string         `json:"type"`
	Subject string         `json:"subject"`
	Time    time.Time      `json:"time"`
	Fields  map[string]any `json:"fields,omitempty"`
}

func sortTruth(ts []Truth) {
	sort.SliceStable(ts, func(i, j int) bool {
		a, b := ts[i], ts[j]
		switch {
		case !a.Time.Equal(b.Time):
			return a.Time.Before(b.Time)
		case a.Type != b.Type:
			return a.Type < b.Type
		}
		return a.Subject < b.Subject
	})
}

// WriteTruth writes ts as JSON lines.
func WriteTruth(w io.Writer, ts []Truth) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, t := range ts {
		t.Time = t.Time.UTC()
		if err := enc.Encode(t); err != nil {
			return fmt.Errorf("sim: truth: %w", err)
		}
	}
	return bw.Flush()
}

// ReadTruth reads JSON lines written by WriteTruth. Blank lines are
// skipped; a line that is not a Truth with a type and a time is an error
// naming the line.
func ReadTruth(r io.Reader) ([]Truth, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var out []Truth
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var t Truth
		if err := json.Unmarshal(line, &t); err != nil {
			return nil, fmt.Errorf("sim: truth line %d: %w", n, err)
		}
		if t.Type == "" || t.Time.IsZero() {
			return nil, fmt.Errorf("sim: truth line %d: %w", n, errNoTypeOrTime)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sim: truth: %w", err)
	}
	return out, nil
}

var errNoTypeOrTime = errors.New("type and time are required")

// Match compares what arrived (got) with the truth (want): an event of
// got matches a truth of the same type and subject whose every field it
// carries with the same value (numbers compared as numbers), at a time
// within tol. Each event matches at most one truth, the nearest in time.
// It returns the truths nothing matched and the events that matched no
// truth.
func Match(want, got []Truth, tol time.Duration) (missing, unexpected []Truth) {
	used := make([]bool, len(want))
	index := map[string][]int{}
	for i, w := range want {
		k := w.Type + "\x00" + w.Subject
		index[k] = append(index[k], i)
	}
	for _, g := range got {
		best, bestD := -1, time.Duration(0)
		for _, i := range index[g.Type+"\x00"+g.Subject] {
			d := absDur(want[i].Time.Sub(g.Time))
			if used[i] || d > tol || !fieldsAgree(want[i].Fields, g.Fields) {
				continue
			}
			if best < 0 || d < bestD {
				best, bestD = i, d
			}
		}
		if best < 0 {
			unexpected = append(unexpected, g)
			continue
		}
		used[best] = true
	}
	for i, u := range used {
		if !u {
			missing = append(missing, want[i])
		}
	}
	return missing, unexpected
}

// fieldsAgree reports whether have carries every field of want with the
// same value.
func fieldsAgree(want, have map[string]any) bool {
	for k, v := range want {
		h, ok := have[k]
		if !ok || !sameValue(v, h) {
			return false
		}
	}
	return true
}

func sameValue(a, b any) bool {
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum || bNum {
		return aNum && bNum && fa == fb
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// FromEvent turns a CloudEvent as the cloud receives it (structured JSON)
// into a Truth whose fields are its data's, so that Match can compare it
// with a scenario's truth.
func FromEvent(payload []byte) (Truth, error) {
	var ev struct {
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Time    time.Time       `json:"time"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return Truth{}, fmt.Errorf("sim: event: %w", err)
	}
	t := Truth{Type: ev.Type, Subject: ev.Subject, Time: ev.Time}
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &t.Fields); err != nil {
			return Truth{}, fmt.Errorf("sim: event data: %w", err)
		}
	}
	return t, nil
}
