package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Device profiles: how each kind of device's payload becomes the canonical
// fields other teams rely on — temperature (°C), humidity (%RH), pressure
// (hPa), lat and lon (degrees), altitude (m), speed (m/s), course
// (degrees), tag (RFID UID in upper-case hex), reader, door ("open" or
// "closed"), battery (%).
//
// A profile reads a JSON payload by paths, a CSV line by columns, or a
// plain number; converts units through a small explicit table; refuses a
// value outside the field's range as impossible; and reads the device's
// own timestamp, if it sends one. The canonical data of an event is
//
//	{"humidity":40,"temperature":20.5,"skew_ms":-1200,"device":{"site":"depot-12"}}
//
// the profile's fields sorted by name, then skew_ms (the device clock
// minus the gateway's receive time, in milliseconds, present only when the
// payload carries a time), then device (the device's registry metadata,
// present only when it has some). The event's time is the device's time
// when it sends one (and, with max_skew, when it is that close to the
// receive time), and the receive time otherwise.

// Profiles are the compiled profiles, by kind. They are immutable, and so
// safe for concurrent use.
type Profiles struct {
	byKind map[string]*Profile
}

// Lookup returns the profile of kind. A nil *Profiles has none.
func (ps *Profiles) Lookup(kind string) (*Profile, bool) {
	if ps == nil {
		return nil, false
	}
	p, ok := ps.byKind[kind]
	return p, ok
}

// Kinds lists the kinds, sorted.
func (ps *Profiles) Kinds() []string {
	if ps == nil {
		return nil
	}
	return sortedKeys(ps.byKind)
}

// Profile is one kind's compiled profile.
type Profile struct {
	Kind      string
	EventType string       // the catalog type its output must satisfy; may be empty
	Samples   []SampleSpec // as written, for Check

	format string
	delim  byte
	fields []field // sorted by name
	time   *timeField
}

// source is where a value is in a payload: a JSON path or a CSV column
// (the whole payload for a number profile).
type source struct {
	path   []step
	column int
	desc   string // for messages: "path outdoor.tempf", "column 3"
}

// field is one compiled canonical field.
type field struct {
	name          string
	src           source
	typ           string
	unit          string // canonical unit after conversion; "" when none was declared
	conv          conversion
	scale, offset float64
	decimals      int // -1: not rounded
	min, max      float64
	mapping       map[string]string
	optional      bool
}

// Canonical decodes payload into an event's canonical data and returns it
// with the event's time. meta is the device's registry metadata, copied
// under "device". A payload the profile cannot decode is a *RejectError.
func (p *Profile) Canonical(payload []byte, meta map[string]string, now time.Time) ([]byte, time.Time, error) {
	if err := p.checkPayload(payload); err != nil {
		return nil, time.Time{}, err
	}
	buf := make([]byte, 0, 64+len(payload)+16*len(meta))
	buf = append(buf, '{')
	for i := range p.fields {
		raw, kind := p.raw(payload, p.fields[i].src)
		var err error
		if buf, err = p.fields[i].appendTo(buf, raw, kind); err != nil {
			return nil, time.Time{}, err
		}
	}
	t := now
	dev, has, err := p.deviceTime(payload)
	if err != nil {
		return nil, time.Time{}, err
	}
	if has {
		skew := dev.Sub(now)
		buf = strconv.AppendInt(appendKey(buf, "skew_ms"), skew.Milliseconds(), 10)
		if p.time.maxSkew == 0 || (skew <= p.time.maxSkew && skew >= -p.time.maxSkew) {
			t = dev
		}
	}
	if len(meta) > 0 {
		buf = appendMeta(appendKey(buf, "device"), meta)
	}
	return append(buf, '}'), t.UTC(), nil
}

// checkPayload refuses a payload the profile's format cannot hold.
func (p *Profile) checkPayload(payload []byte) error {
	switch p.format {
	case FormatJSON:
		if len(bytes.TrimSpace(payload)) == 0 || !json.Valid(payload) {
			return reject(ReasonMalformed, "payload is not valid JSON")
		}
	case FormatCSV:
		line := bytes.TrimRight(payload, "\r\n")
		if bytes.ContainsAny(line, "\r\n") {
			return reject(ReasonBadPayload, "csv payload has more than one line")
		}
		fallthrough
	default:
		if !utf8.Valid(payload) {
			return reject(ReasonBadPayload, "payload is not valid UTF-8")
		}
	}
	return nil
}

// raw returns the value src names in payload, and its kind.
func (p *Profile) raw(payload []byte, src source) ([]byte, rawKind) {
	var v []byte
	switch p.format {
	case FormatJSON:
		var ok bool
		if v, ok = lookupPath(payload, src.path); !ok {
			return nil, rawMissing
		}
		return v, kindOf(v)
	case FormatCSV:
		v = csvColumn(bytes.TrimRight(payload, "\r\n"), p.delim, src.column)
	default:
		v = bytes.TrimSpace(payload)
	}
	if len(v) == 0 {
		return nil, rawMissing
	}
	return v, rawText
}

// csvColumn returns column n (1-based) of line, trimmed of spaces and of
// the double quotes around it. Delimiters inside quotes are not special.
func csvColumn(line []byte, delim byte, n int) []byte {
	for col := 1; ; col++ {
		cell, rest, more := bytes.Cut(line, []byte{delim})
		if col == n {
			cell = bytes.TrimSpace(cell)
			if len(cell) >= 2 && cell[0] == '"' && cell[len(cell)-1] == '"' {
				cell = cell[1 : len(cell)-1]
			}
			return cell
		}
		if !more {
			return nil
		}
		line = rest
	}
}

// appendTo appends the field's key and canonical value to buf.
func (f *field) appendTo(buf []byte, raw []byte, kind rawKind) ([]byte, error) {
	if kind == rawMissing || kind == rawNull {
		if f.optional {
			return buf, nil
		}
		return nil, reject(ReasonBadPayload, f.name+": missing ("+f.src.desc+")")
	}
	if kind == rawObject || kind == rawArray || (kind == rawBool && f.typ == TypeNumber) {
		return nil, reject(ReasonBadPayload, fmt.Sprintf("%s: want a %s, got %s", f.name, f.typ, kind))
	}
	buf = appendKey(buf, f.name)
	switch f.typ {
	case TypeNumber:
		v, err := f.number(raw, kind)
		return appendNumber(buf, v), err
	case TypeBool:
		b, err := f.boolean(raw, kind)
		return strconv.AppendBool(buf, b), err
	}
	s, err := f.text(raw, kind)
	return appendJSONString(buf, s), err
}

// scalarText is a scalar's text: a string's contents, or the literal.
func scalarText(raw []byte, kind rawKind) (string, bool) {
	if kind == rawString {
		return unquote(raw)
	}
	return string(raw), true
}

func (f *field) number(raw []byte, kind rawKind) (float64, error) {
	text := raw
	if kind == rawString {
		if bytes.IndexByte(raw, '\\') >= 0 {
			return 0, reject(ReasonBadPayload, fmt.Sprintf("%s: want a number, got %s", f.name, clip(raw, kind)))
		}
		text = raw[1 : len(raw)-1]
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(text)), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, reject(ReasonBadPayload, fmt.Sprintf("%s: want a number, got %s", f.name, clip(raw, kind)))
	}
	v = f.conv.apply(v*f.scale + f.offset)
	if f.decimals >= 0 {
		v = round(v, f.decimals)
	}
	switch {
	case math.IsInf(v, 0) || math.IsNaN(v):
		return 0, reject(ReasonBadPayload, fmt.Sprintf("%s: %s is out of range", f.name, clip(raw, kind)))
	case v < f.min || v > f.max:
		return 0, reject(ReasonImpossible, fmt.Sprintf("%s %v is outside [%v, %v]", f.name, v, f.min, f.max))
	}
	return v, nil
}

func (f *field) boolean(raw []byte, kind rawKind) (bool, error) {
	s, _ := scalarText(raw, kind)
	switch strings.ToLower(s) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, reject(ReasonBadPayload, fmt.Sprintf("%s: want true, false, 1 or 0, got %s", f.name, clip(raw, kind)))
}

// text is the value of a string or hex field, mapped if the field has a map.
func (f *field) text(raw []byte, kind rawKind) (string, error) {
	s, ok := scalarText(raw, kind)
	if !ok {
		return "", reject(ReasonBadPayload, fmt.Sprintf("%s: bad string %s", f.name, clip(raw, kind)))
	}
	if f.mapping != nil {
		m, ok := f.mapping[s]
		if !ok {
			return "", reject(ReasonBadPayload, fmt.Sprintf("%s: %q is not one of the values the profile maps (%s)",
				f.name, s, commaJoin(sortedKeys(f.mapping))))
		}
		return m, nil
	}
	if f.typ == TypeHex {
		h, ok := normalHex(s)
		if !ok {
			return "", reject(ReasonBadPayload, fmt.Sprintf("%s: want hex bytes (like 04:A3:1F:9B), got %s", f.name, clip(raw, kind)))
		}
		return h, nil
	}
	return s, nil
}

// normalHex returns s as upper-case hex digits without separators (':',
// '-' or ' '), if it is a whole number of bytes in hex.
func normalHex(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':' || c == '-' || c == ' ':
		case c >= '0' && c <= '9' || c >= 'A' && c <= 'F':
			out = append(out, c)
		case c >= 'a' && c <= 'f':
			out = append(out, c-'a'+'A')
		default:
			return "", false
		}
	}
	return string(out), len(out) > 0 && len(out)%2 == 0
}

// clip shows a raw value in a message, shortened: a JSON value as it is
// written, text (a CSV column, a plain payload) quoted.
func clip(raw []byte, kind rawKind) string {
	const maxLen = 40
	s, more := string(raw), ""
	if len(s) > maxLen {
		s, more = s[:maxLen], "..."
	}
	if kind == rawText {
		return strconv.Quote(s) + more
	}
	return s + more
}

func reject(r Reason, detail string) *RejectError { return &RejectError{Reason: r, Detail: detail} }
