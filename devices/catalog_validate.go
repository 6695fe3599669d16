package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/flowgate/flowgate/event"
)

var (
	negInf = math.Inf(-1)
	posInf = math.Inf(1)
)

// schemaField is one compiled field of a schema.
type schemaField struct {
	name     string
	typ      string
	unit     string
	required bool
	min, max float64
	enum     []string
	kind     rawKind // the JSON kind typ takes
}

// kindFor is the JSON kind of a schema type.
func kindFor(typ string) rawKind {
	switch typ {
	case TypeNumber:
		return rawNumber
	case TypeString:
		return rawString
	case TypeBool:
		return rawBool
	}
	return rawObject
}

// Validate checks ev against its type's catalog entry: the type is
// catalogued, its data is one JSON object, every field is declared (unless
// the entry allows additional ones) and has its type, every required field
// is present (null counts as absent, declared or not), numbers lie within [min, max] and
// strings are in enum. A violation is a *RejectError: impossible_value for a
// number out of range, schema_violation for the rest. The data keys the
// normalizer adds (skew_ms, a number; device, an object) are always allowed.
//
// The schema is compiled once; Validate allocates nothing for data whose
// keys and strings have no escapes.
func (c *Catalog) Validate(ev *event.Event) error { return c.validate(ev, false) }

// validate is Validate; validJSON says ev.Data is known to be valid JSON
// (the normalizer checked or wrote it), which saves a pass over it.
func (c *Catalog) validate(ev *event.Event, validJSON bool) error {
	if c == nil {
		return nil
	}
	e, ok := c.byName[ev.Type]
	if !ok {
		return reject(ReasonSchema, fmt.Sprintf("event type %q is not in the catalog", ev.Type))
	}
	return e.validate(ev.Data, validJSON)
}

// DataSchema returns the dataschema URI of event type name, or "".
func (c *Catalog) DataSchema(name string) string {
	if c == nil {
		return ""
	}
	if e, ok := c.byName[name]; ok {
		return e.spec.DataSchema
	}
	return ""
}

func (e *catalogEntry) validate(data []byte, validJSON bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		if e.required != 0 {
			return reject(ReasonSchema, e.name+": no data, and "+e.fields[bitIndex(e.required)].name+" is required")
		}
		return nil
	}
	if !validJSON && !json.Valid(data) {
		return reject(ReasonSchema, e.name+": data is not valid JSON")
	}
	var seen uint64
	it := members{b: data}
	for it.next() {
		i, err := e.member(it.key, it.val)
		if err != nil {
			return err
		}
		switch {
		case i < 0:
		case kindOf(it.val) == rawNull: // a key written twice: the last counts
			seen &^= 1 << i
		default:
			seen |= 1 << i
		}
	}
	if it.bad {
		return reject(ReasonSchema, e.name+": data is not a JSON object")
	}
	if missing := e.required &^ seen; missing != 0 {
		return reject(ReasonSchema, fmt.Sprintf("%s: required field %s is missing", e.name, e.fields[bitIndex(missing)].name))
	}
	return nil
}

// member checks one member of the data and returns its field's index, or
// -1 for a field the schema does not declare.
func (e *catalogEntry) member(rawKey, val []byte) (int, error) {
	key := rawKey[1 : len(rawKey)-1]
	var i int
	var ok bool
	if bytes.IndexByte(key, '\\') < 0 {
		i, ok = e.index[string(key)]
	} else if k, kok := unquote(rawKey); kok {
		i, ok = e.index[k]
		key = []byte(k)
	}
	if ok {
		return i, e.fields[i].check(e.name, val)
	}
	switch k := kindOf(val); {
	case k == rawNull, // null is absent
		string(key) == "skew_ms" && k == rawNumber,
		string(key) == "device" && k == rawObject:
		return -1, nil
	case string(key) == "skew_ms" || string(key) == "device":
		return -1, reject(ReasonSchema, fmt.Sprintf("%s: %s is %s", e.name, key, k))
	case !e.additional:
		return -1, reject(ReasonSchema, fmt.Sprintf("%s: field %s is not in the schema", e.name, clip(key, rawText)))
	}
	return -1, nil
}

// check checks one value against the field.
func (f *schemaField) check(typ string, val []byte) error {
	k := kindOf(val)
	if k == rawNull {
		return nil
	}
	if k != f.kind {
		return reject(ReasonSchema, fmt.Sprintf("%s: %s: want a %s, got %s", typ, f.name, f.typ, k))
	}
	switch k {
	case rawNumber:
		v, err := strconv.ParseFloat(string(val), 64)
		if err != nil || v < f.min || v > f.max {
			return reject(ReasonImpossible, fmt.Sprintf("%s: %s %s is outside [%v, %v]", typ, f.name, clip(val, k), f.min, f.max))
		}
	case rawString:
		if f.enum != nil && !f.inEnum(val) {
			return reject(ReasonSchema, fmt.Sprintf("%s: %s %s is not one of %s", typ, f.name, clip(val, k), commaJoin(f.enum)))
		}
	}
	return nil
}

func (f *schemaField) inEnum(raw []byte) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		for _, e := range f.enum {
			if string(inner) == e {
				return true
			}
		}
		return false
	}
	s, ok := unquote(raw)
	return ok && slices.Contains(f.enum, s)
}

// bitIndex is the index of the lowest set bit of m (m != 0).
func bitIndex(m uint64) int {
	i := 0
	for m&1 == 0 {
		m >>= 1
		i++
	}
	return i
}
