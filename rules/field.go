package rules

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/event"
)

// A field is a reference to one value of an event, as rules write it:
// an attribute (id, source, type, subject, topic) or a path into the data
// ("data.temperature", "data.device.site"). Fields are resolved on every
// event on the hot path, so the lookup scans the raw JSON in place and
// allocates nothing.
type field struct {
	attr  string   // an attribute name, when the field is not in the data
	path  []string // keys below data
	text  string   // as written, for messages and output names
	cache *lookupCache
}

// lookupCache holds one data path's value in the event last looked at. The
// fields of a rule set that name the same path share one (compiler.share),
// so that fifty rules reading data.temperature scan an event's JSON once,
// not fifty times. The engine's lock guards it, as it guards the rules.
//
// An event is known by its address and its data's first byte and length:
// events and their data are never changed once made, and the cache's
// references keep both alive, so no other event can take their addresses
// while they are cached.
type lookupCache struct {
	ev    *event.Event
	first *byte
	n     int
	val   []byte
	num   float64 // val as a number, once parsed
	numOK bool
	numOf *event.Event // the event num was parsed for; nil: not yet
}

// lookup is lookup(ev.Data, path), from the cache when ev was the last.
func (c *lookupCache) lookup(ev *event.Event, path []string) []byte {
	if len(ev.Data) == 0 {
		return nil
	}
	if c.ev == ev && c.first == &ev.Data[0] && c.n == len(ev.Data) {
		return c.val
	}
	c.ev, c.first, c.n, c.numOf = ev, &ev.Data[0], len(ev.Data), nil
	c.val = lookup(ev.Data, path)
	return c.val
}

// number is numberOf(lookup(ev, path)), parsed once per event.
func (c *lookupCache) number(ev *event.Event, path []string) (float64, bool) {
	v := c.lookup(ev, path)
	if c.numOf != ev {
		c.num, c.numOK = numberOf(v)
		c.numOf = ev
	}
	return c.num, c.numOK
}

// parseField reads a field reference; ok is false when it names nothing.
func parseField(s string) (field, bool) {
	s = strings.TrimSpace(s)
	switch s {
	case "id", "source", "type", "subject", "topic":
		return field{attr: s, text: s}, true
	}
	rest, ok := strings.CutPrefix(s, "data.")
	if !ok || rest == "" {
		return field{}, false
	}
	path := strings.Split(rest, ".")
	for _, k := range path {
		if k == "" {
			return field{}, false
		}
	}
	return field{path: path, text: s}, true
}

// name is the last element of the field, the name its value takes in an
// output when nothing else is said.
func (f field) name() string {
	if f.attr != "" {
		return f.attr
	}
	return f.path[len(f.path)-1]
}

// raw returns the field's JSON value in ev (a subslice of ev.Data), or for
// an attribute, its text. ok is false when the field is absent.
func (f field) raw(ev *event.Event) (val []byte, str string, ok bool) {
	switch f.attr {
	case "":
		var v []byte
		if f.cache != nil {
			v = f.cache.lookup(ev, f.path)
		} else {
			v = lookup(ev.Data, f.path)
		}
		return v, "", v != nil
	case "id":
		return nil, ev.ID, true
	case "source":
		return nil, ev.Source, true
	case "type":
		return nil, ev.Type, true
	case "subject":
		return nil, ev.Subject, true
	default:
		return nil, ev.Topic, true
	}
}

// number returns the field as a float64: a JSON number, or a string that
// holds one.
func (f field) number(ev *event.Event) (float64, bool) {
	if f.attr == "" && f.cache != nil && len(ev.Data) > 0 {
		return f.cache.number(ev, f.path)
	}
	v, s, ok := f.raw(ev)
	if !ok {
		return 0, false
	}
	if v == nil {
		n, err := strconv.ParseFloat(s, 64)
		return n, err == nil
	}
	return numberOf(v)
}

// numberOf reads a JSON value as a number: a number, or a string holding
// one; ok is false for anything else, and for nil (absent).
func numberOf(v []byte) (float64, bool) {
	if v == nil {
		return 0, false
	}
	if len(v) > 0 && v[0] == '"' {
		v = v[1 : len(v)-1]
	}
	return parseFloat(v)
}

// key returns the field as text suitable for keying state: a string's
// contents (unescaped only if it has escapes), a number or literal as
// written. The returned bytes may alias ev or *scratch, which it reuses;
// convert with string() to keep them.
func (f field) key(ev *event.Event, scratch *[]byte) ([]byte, bool) {
	v, s, ok := f.raw(ev)
	if !ok {
		return nil, false
	}
	if v == nil {
		*scratch = append((*scratch)[:0], s...)
		return *scratch, true
	}
	if v[0] != '"' {
		return v, true
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	u, err := strconv.Unquote(string(v))
	if err != nil {
		return inner, true
	}
	*scratch = append((*scratch)[:0], u...)
	return *scratch, true
}

// parseFloat parses a JSON number, without allocating unless it is longer
// than 64 bytes (as encoding/json, it takes any length).
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if len(b) > 64 {
		x, err := strconv.ParseFloat(string(b), 64)
		return x, err == nil
	}
	var buf [64]byte
	n := copy(buf[:], b)
	// strconv.ParseFloat on a string made from a stack buffer does not
	// escape, so the conversion does not allocate.
	x, err := strconv.ParseFloat(string(buf[:n]), 64)
	return x, err == nil
}

// lookup finds the value at path in the JSON object data. It returns nil if
// data is not an object or the path is absent; it never panics on bad JSON.
func lookup(data []byte, path []string) []byte {
	v := data
	for _, k := range path {
		v = member(v, k)
		if v == nil {
			return nil
		}
	}
	return v
}

// member returns the value of key k in the JSON object obj (which may have
// leading space), or nil.
func member(obj []byte, k string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil // '}' or garbage: not found
		}
		kEnd := skipString(obj, i)
		if kEnd < 0 {
			return nil
		}
		match := keyEquals(obj[i+1:kEnd-1], k)
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		i = skipSpace(obj, i+1)
		vEnd := skipValue(obj, i)
		if vEnd < 0 {
			return nil
		}
		if match {
			return obj[i:vEnd]
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
		i++
	}
}

func keyEquals(raw []byte, k string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == k
	}
	u, err := strconv.Unquote(`"` + string(raw) + `"`)
	return err == nil && u == k
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"',
// or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
// Scalars are taken up to the next delimiter; nesting is bounded by the
// input's length.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j)
				if j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}
