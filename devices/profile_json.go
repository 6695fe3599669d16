package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// This file is a small JSON scanner: it finds a value by path in a payload,
// and walks the members of an object, without decoding the payload into
// maps. It works on bytes that json.Valid accepted, and never panics on
// bytes it did not: every index is checked, and anything unexpected is
// "not found".

// step is one level of a JSON path: an object key, or an array index.
type step struct {
	key   string
	index int // -1 for a key
}

// parsePath compiles a path such as "outdoor.temp", "coords[1]" or
// "readings[0].value" ("[2]" alone indexes a top-level array).
func parsePath(p string) ([]step, error) {
	if p == "" {
		return nil, fmt.Errorf("is empty")
	}
	var steps []step
	for i, part := range strings.Split(p, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" && (i > 0 || !strings.HasPrefix(part, "[")) {
			return nil, fmt.Errorf("%q: empty key in path", p)
		}
		if key != "" {
			if strings.ContainsAny(key, `]"\`) {
				return nil, fmt.Errorf("%q: key %q has a ']', '\"' or '\\'", p, key)
			}
			steps = append(steps, step{key: key, index: -1})
		}
		if !strings.Contains(part, "[") {
			continue
		}
		for _, ix := range strings.Split(strings.TrimSuffix(rest, "]"), "][") {
			n, err := strconv.Atoi(ix)
			if err != nil || n < 0 || !strings.HasSuffix(part, "]") {
				return nil, fmt.Errorf("%q: want [N] with N a non-negative integer", p)
			}
			steps = append(steps, step{index: n})
		}
	}
	return steps, nil
}

// lookupPath returns the raw JSON value at path in b.
func lookupPath(b []byte, path []step) ([]byte, bool) {
	v := bytes.TrimSpace(b)
	ok := true
	for _, s := range path {
		if s.index >= 0 {
			v, ok = arrayElem(v, s.index)
		} else {
			v, ok = objectMember(v, s.key)
		}
		if !ok {
			return nil, false
		}
	}
	return v, true
}

// objectMember returns the value of key in the JSON object obj. If the key
// is written twice, the last one counts, as with encoding/json.
func objectMember(obj []byte, key string) (val []byte, found bool) {
	it := members{b: obj}
	for it.next() {
		if keyEquals(it.key, key) {
			val, found = it.val, true
		}
	}
	return val, found && !it.bad
}

// keyEquals reports whether the raw JSON string raw (quotes included)
// decodes to key.
func keyEquals(raw []byte, key string) bool {
	if len(raw) < 2 {
		return false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == key
	}
	s, ok := unquote(raw)
	return ok && s == key
}

// arrayElem returns element n of the JSON array arr.
func arrayElem(arr []byte, n int) ([]byte, bool) {
	if len(arr) == 0 || arr[0] != '[' {
		return nil, false
	}
	i := skipWS(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return nil, false
	}
	for k := 0; i < len(arr); k++ {
		end, ok := valueEnd(arr, i)
		if !ok {
			return nil, false
		}
		if k == n {
			return arr[i:end], true
		}
		i = skipWS(arr, end)
		if i >= len(arr) || arr[i] != ',' {
			return nil, false
		}
		i = skipWS(arr, i+1)
	}
	return nil, false
}

// members walks the members of a JSON object:
//
//	it := members{b: obj}
//	for it.next() { use(it.key, it.val) }
//	if it.bad { ... }
type members struct {
	b        []byte
	i        int
	key, val []byte // key with its quotes
	started  bool
	bad      bool // b is not an object, or broke off
}

func (m *members) next() bool {
	if m.bad {
		return false
	}
	if !m.started {
		m.started = true
		m.i = skipWS(m.b, 0)
		if m.i >= len(m.b) || m.b[m.i] != '{' {
			m.bad = true
			return false
		}
		m.i = skipWS(m.b, m.i+1)
		if m.i < len(m.b) && m.b[m.i] == '}' {
			return false
		}
	} else {
		if m.i >= len(m.b) || m.b[m.i] == '}' {
			return false
		}
		m.i = skipWS(m.b, m.i+1) // past ','
	}
	return m.member()
}

// member reads `"key": value` at m.i and moves past the ',' or '}' after it.
func (m *members) member() bool {
	if m.i >= len(m.b) || m.b[m.i] != '"' {
		m.bad = true
		return false
	}
	kend, ok := stringEnd(m.b, m.i)
	colon := skipWS(m.b, kend)
	if !ok || colon >= len(m.b) || m.b[colon] != ':' {
		m.bad = true
		return false
	}
	vstart := skipWS(m.b, colon+1)
	vend, ok := valueEnd(m.b, vstart)
	after := skipWS(m.b, vend)
	if !ok || after >= len(m.b) || (m.b[after] != ',' && m.b[after] != '}') {
		m.bad = true
		return false
	}
	m.key, m.val, m.i = m.b[m.i:kend], m.b[vstart:vend], after
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at b[i].
func valueEnd(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		return compositeEnd(b, i)
	}
	j := i
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	return j, j > i
}

// isDelim reports whether c ends a JSON number or literal.
func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', ',', ']', '}', ':':
		return true
	}
	return false
}

// stringEnd returns the index just past the JSON string that starts at b[i].
func stringEnd(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}

// compositeEnd returns the index just past the object or array at b[i].
func compositeEnd(b []byte, i int) (int, bool) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, ok := stringEnd(b, j)
			if !ok {
				return len(b), false
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, true
			}
		}
	}
	return len(b), false
}

// unquote decodes the raw JSON string raw (quotes included).
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// rawKind is what kind of JSON value a raw value is, by its first byte.
type rawKind uint8

const (
	rawMissing rawKind = iota
	rawNull
	rawBool
	rawNumber
	rawString
	rawObject
	rawArray
	rawText // not JSON: a CSV column or a plain payload
)

func kindOf(raw []byte) rawKind {
	if len(raw) == 0 {
		return rawMissing
	}
	switch raw[0] {
	case 'n':
		return rawNull
	case 't', 'f':
		return rawBool
	case '"':
		return rawString
	case '{':
		return rawObject
	case '[':
		return rawArray
	}
	return rawNumber
}

// kindName names a raw kind in messages.
func (k rawKind) String() string {
	return [...]string{"missing", "null", "a boolean", "a number", "a string", "an object", "an array", "text"}[k]
}
