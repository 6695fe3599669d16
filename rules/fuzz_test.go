package rules

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
)

// FuzzParseRules feeds arbitrary rules files to the decoder and compiler,
// and runs what compiles over a few readings: nothing may panic, and a
// file that is refused must say why.
func FuzzParseRules(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/rules.yaml")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("rules:\n  - name: x\n    window: {kind: hopping, size: 1s, hop: 0s}\n    emit: {type: t}\n"))
	f.Add([]byte("rules: [{name: a, absence: {start: {types: [a]}, end: {}, within: -1d}, emit: {type: b}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, errs := Parse("fuzz.yaml", data, Known{Routes: map[string]bool{"r": true}})
		for _, e := range errs {
			if e.Msg == "" {
				t.Fatalf("an error without a message: %+v", e)
			}
		}
		if set == nil || len(errs) > 0 {
			return
		}
		in := strings.NewReader(fuzzReadings)
		if err := Replay(set, in, ReplayOptions{Until: 48 * time.Hour}, func(Derived) {}); err != nil {
			t.Fatalf("replay: %v", err)
		}
	})
}

const fuzzReadings = `{"time":"2026-11-01T00:00:00Z","type":"a","subject":"s","data":{"v":1,"t":"x"}}
{"time":"2026-11-01T00:00:05Z","type":"b","subject":"s","data":{"v":"2","t":"y"}}
{"time":"2026-11-01T00:00:01Z","type":"a","subject":"s","data":{"v":1e308,"t":"x"}}
{"time":"2026-11-01T01:00:00Z","type":"env.reading","subject":"q","data":{"temperature":-1.5,"v":[1,2]}}
`

// FuzzFilter compiles arbitrary filter and having expressions, as rules
// do, and runs what compiles: compiling may fail, running must not panic.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{`data.temperature > 8`, `type == "a" && subject startsWith "r"`, `data.x.y[0] / 0`,
		`mean > 28 || count == 0`, `len(data) > 1 ? true : false`, `now()`, `data.v in [1, 2]`} {
		f.Add(s)
	}
	ev := &event.Event{ID: "1", Source: "/s", Type: "a", Subject: "s", Time: time.Unix(0, 0),
		Data: []byte(`{"temperature": 9, "x": {"y": [0]}, "v": 1}`)}
	f.Fuzz(func(t *testing.T, src string) {
		c := &compiler{}
		if p := c.expr("filter", src, exprEnvOption()); p != nil {
			runBool(p, newEnv(ev))
		}
		for _, e := range c.errs {
			if e.Offset < 0 || e.Offset > len(src) {
				t.Fatalf("offset %d outside the expression (%d bytes)", e.Offset, len(src))
			}
		}
	})
}

// FuzzLookup checks the in-place JSON field lookup against encoding/json:
// whatever it finds in a valid object is the value encoding/json decodes
// for that key, and it never panics on invalid input.
func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"a": 1, "b": {"c": "x\"y"}, "d": [1, {"a": 2}]}`), "b")
	f.Add([]byte(`{"a\u0062": true}`), "ab")
	f.Add([]byte(`{"a": `), "a")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		got := member(data, key)
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil || bytes.Count(data, []byte(`"`+key+`"`)) > 1 {
			return // not an object, or a key given twice: only "no panic" holds
		}
		want, ok := m[key]
		if !ok {
			return // an escaped spelling of another key may still match; nothing to compare
		}
		if got == nil {
			t.Fatalf("member(%q) found nothing; encoding/json found %s", key, want)
		}
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil {
			t.Fatalf("member(%q) = %q, not a JSON value (want %s)", key, got, want)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("member(%q) = %s, encoding/json says %s", key, got, want)
		}
	})
}
