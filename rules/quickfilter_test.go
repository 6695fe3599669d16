package rules

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/flowgate/flowgate/event"
)

// quickFilterCases are filters with payloads; for each, the quick filter
// must give what expr gives.
var quickFilterCases = struct {
	filters  []string
	payloads []string
}{
	filters: []string{
		`data.v > 100`, `data.v >= 100`, `data.v < -2.5`, `data.v <= 0`, `data.v == 7`, `100 < data.v`,
		`-3 >= data.v`, `data.a.b > 1`, `data["v"] > 1`, `data.v > 1 and data.w < 5`, `data.v > 1 && data.v < 10`,
		`data["a.b"] > 1`, `data["v "] > 1`, `data[""] > 1`, `data.v >= 1`,
	},
	payloads: []string{
		`{"v": 150}`, `{"v": 100}`, `{"v": 100.0}`, `{"v": -3}`, `{"v": -2.5}`, `{"v": 0}`, `{"v": 7}`,
		`{"v": 7.0}`, `{"v": 1e2}`, `{"v": "150"}`, `{"v": true}`, `{"v": null}`, `{"v": [150]}`,
		`{"v": {"x": 1}}`, `{}`, `{"w": 1}`, `{"v": 5, "w": 4}`, `{"v": 5, "w": 5}`, `{"a": {"b": 2}}`,
		`{"a": {"b": "2"}}`, `{"a": 3}`, `{"a": {"c": 2}}`, `{"v": 1e400}`, `{"v": -0}`,
		`{"a.b": 5}`, `{"v ": 5}`, `{"": 5}`, `{"v": 1.0000000000000000000000000000000000000000000000000000000000000000001}`,
	},
}

func TestQuickFilterAgreesWithExpr(t *testing.T) {
	for _, src := range quickFilterCases.filters {
		c := &compiler{lookup: map[string]*lookupCache{}}
		q := c.quickFilterOf(src)
		if q == nil {
			t.Errorf("%s: not taken as a quick filter", src)
			continue
		}
		p := c.expr("filter", src, exprEnvOption())
		for i, payload := range quickFilterCases.payloads {
			ev := &event.Event{ID: "1", Type: "t", Time: time.Unix(int64(i), 0), Data: []byte(payload)}
			if got, want := q.match(ev), runBool(p, newEnv(ev)); got != want {
				t.Errorf("%s on %s: quick %v, expr %v", src, payload, got, want)
			}
		}
	}
}

func TestQuickFilterLeavesTheRestToExpr(t *testing.T) {
	for _, src := range []string{`data.v != 7`, `data?.v > 1`, `data.v > 1 or data.w > 1`, `subject == "a"`,
		`data.v > data.w`, `data.v in [1, 2]`, `not (data.v > 1)`, `data.v > "a"`, `len(data) > 1`, `other.v > 1`} {
		c := &compiler{lookup: map[string]*lookupCache{}}
		if q := c.quickFilterOf(src); q != nil {
			t.Errorf("%s: taken as a quick filter %v; expr must run it", src, q)
		}
	}
}

// FuzzQuickFilter runs the quick filters on arbitrary payloads: each must
// agree with expr on every valid JSON object, and never panic.
func FuzzQuickFilter(f *testing.F) {
	for _, p := range quickFilterCases.payloads {
		f.Add([]byte(p))
	}
	c := &compiler{lookup: map[string]*lookupCache{}}
	type pair struct {
		src string
		q   quickFilter
		p   *vm.Program
	}
	var pairs []pair
	for _, src := range quickFilterCases.filters {
		pairs = append(pairs, pair{src, c.quickFilterOf(src), c.expr("filter", src, exprEnvOption())})
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev := &event.Event{ID: "1", Type: "t", Data: payload}
		env := newEnv(ev)
		plain := plainObject(payload)
		for _, p := range pairs {
			got := p.q.match(ev)
			if !plain {
				continue
			}
			if want := runBool(p.p, env); got != want {
				t.Fatalf("%s on %s: quick %v, expr %v", p.src, payload, got, want)
			}
		}
	})
}

// plainObject reports whether b is one JSON object, as the normalizer
// admits, with no object in it naming a key twice (where encoding/json
// keeps the last and every field lookup of the rules the first).
func plainObject(b []byte) bool {
	if !json.Valid(b) || len(bytes.TrimSpace(b)) == 0 || bytes.TrimSpace(b)[0] != '{' {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	type level struct {
		object bool
		keys   map[string]bool
		key    bool // the next string in an object is a key
	}
	var stack []*level
	for {
		tok, err := d.Token()
		if err != nil {
			return true // the end: json.Valid vouched for the rest
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			k, _ := tok.(string)
			if top.keys[k] {
				return false
			}
			top.keys[k], top.key = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &level{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true // a value ended: a key comes next
		}
	}
}
