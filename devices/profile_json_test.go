package devices

import (
	"strconv"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		path string
		want string // steps as key/[n], joined by spaces; "error" if refused
	}{
		{"a", "a"},
		{"a.b.c", "a b c"},
		{"a[0]", "a [0]"},
		{"a[2][10].b", "a [2] [10] b"},
		{"[1]", "[1]"},
		{"[1].x", "[1] x"},
		{"", "error"},
		{"a..b", "error"},
		{".a", "error"},
		{"a[", "error"},
		{"a[-1]", "error"},
		{"a[x]", "error"},
		{"a[1]b", "error"},
		{"a.[1]", "error"},
		{`a"b`, "error"},
	} {
		steps, err := parsePath(c.path)
		var got []string
		for _, s := range steps {
			if s.index >= 0 {
				got = append(got, "["+strconv.Itoa(s.index)+"]")
			} else {
				got = append(got, s.key)
			}
		}
		g := strings.Join(got, " ")
		if err != nil {
			g = "error"
		}
		if g != c.want {
			t.Errorf("parsePath(%q) = %q (%v), want %q", c.path, g, err, c.want)
		}
	}
}

func TestLookupPath(t *testing.T) {
	doc := []byte(` {"a": {"b": [10, {"c": "x,}]"}, [true, null]], "k\"ey": 1},
		"n": -1.5e3, "dup": 1, "dup": 2, "sp ace": {}, "u": "\u00e9"} `)
	for _, c := range []struct {
		path, want string // "" for not found
	}{
		{"a.b[0]", "10"},
		{"a.b[1].c", `"x,}]"`},
		{"a.b[2][0]", "true"},
		{"a.b[2][1]", "null"},
		{"a.b[3]", ""},
		{"a.b[2][2]", ""},
		{"a.k\"ey", ""},
		{"n", "-1.5e3"},
		{"dup", "2"},
		{"sp ace", "{}"},
		{"u", `"\u00e9"`},
		{"a.c", ""},
		{"n.x", ""},
		{"[0]", ""},
		{"a.b.c", ""},
	} {
		steps, err := parsePath(c.path)
		if err != nil {
			if c.want != "" {
				t.Errorf("parsePath(%q): %v", c.path, err)
			}
			continue
		}
		v, ok := lookupPath(doc, steps)
		if string(v) != c.want || ok != (c.want != "") {
			t.Errorf("lookupPath(%q) = %q, %v; want %q", c.path, v, ok, c.want)
		}
	}
	if v, ok := lookupPath([]byte(`[[1,2],[3]]`), []step{{index: 1}, {index: 0}}); !ok || string(v) != "3" {
		t.Errorf("top-level array: %q %v", v, ok)
	}
	// An escaped key matches its decoded name.
	if v, ok := objectMember([]byte(`{"t\u0065mp": 5}`), "temp"); !ok || string(v) != "5" {
		t.Errorf("escaped key: %q %v", v, ok)
	}
}

func TestMembersBrokenInput(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{"a" 1}`, `{a:1}`, `[1]`, `{"a":"x}`, `{"a":[1}`} {
		it := members{b: []byte(in)}
		n := 0
		for it.next() {
			n++
		}
		if !it.bad && in != "" {
			t.Errorf("%q: not reported broken (%d members)", in, n)
		}
	}
	it := members{b: []byte(`{ }`)}
	if it.next() || it.bad {
		t.Error("empty object")
	}
}
