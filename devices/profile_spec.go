package devices

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProfilesFile is the shape of the profiles file (the config's
// profiles_file): one profile per device kind.
//
//	profiles:
//	  ws-2902:                         # a device's kind
//	    format: json                   # json (default), csv or number
//	    event_type: env.reading        # the catalog entry its output must satisfy
//	    fields:                        # canonical name: where it comes from
//	      temperature: {path: outdoor.tempf, unit: degF, decimals: 1, min: -60, max: 70}
//	      humidity: {path: outdoor.humidity, unit: "%", min: 0, max: 100}
//	    time: {path: ts, format: epoch_ms, max_skew: 24h}
//	    samples:
//	      - payload: '{"outdoor":{"tempf":68.9,"humidity":40},"ts":1767225600000}'
//	        want: {temperature: 20.5, humidity: 40}
type ProfilesFile struct {
	Profiles map[string]ProfileSpec `yaml:"profiles"`
}

// ProfileSpec is one kind's profile as written.
type ProfileSpec struct {
	Description string               `yaml:"description"`
	Format      string               `yaml:"format"`     // json (default), csv or number
	Delimiter   string               `yaml:"delimiter"`  // csv: one character; default ","
	EventType   string               `yaml:"event_type"` // optional: the catalog type its output is checked against
	Fields      map[string]FieldSpec `yaml:"fields"`     // canonical field name → its source
	Time        *TimeSpec            `yaml:"time"`       // the device's own timestamp, if it sends one
	Samples     []SampleSpec         `yaml:"samples"`    // checked by `flowgate check`
}

// FieldSpec says where one canonical field comes from and how its value
// is converted and checked.
type FieldSpec struct {
	Path     string            `yaml:"path"`     // json: a.b[0].c
	Column   int               `yaml:"column"`   // csv: 1 is the first column
	Type     string            `yaml:"type"`     // number (default), string, bool or hex
	Unit     string            `yaml:"unit"`     // the device's unit; converted to the canonical one
	Scale    *float64          `yaml:"scale"`    // value*scale+offset, before the unit conversion
	Offset   float64           `yaml:"offset"`   //
	Decimals *int              `yaml:"decimals"` // round to this many decimals (default 6 after a conversion)
	Min      *float64          `yaml:"min"`      // after conversion; a value outside is impossible
	Max      *float64          `yaml:"max"`      //
	Map      map[string]string `yaml:"map"`      // the device's value (as text) → the canonical string
	Optional bool              `yaml:"optional"` // a missing value is left out instead of refused
}

// TimeSpec says where the device's timestamp is and how it is written.
type TimeSpec struct {
	Path    string        `yaml:"path"`     // json
	Column  int           `yaml:"column"`   // csv
	Format  string        `yaml:"format"`   // epoch_s, epoch_ms, rfc3339, or a Go layout ("2006-01-02 15:04:05")
	MaxSkew time.Duration `yaml:"max_skew"` // a device time further than this from the receive time is not used (0: always used)
}

// SampleSpec is a payload and what it must become.
type SampleSpec struct {
	Payload string            `yaml:"payload"`
	Want    map[string]string `yaml:"want"`   // every canonical field it produces, as text
	Time    string            `yaml:"time"`   // the device time it carries, RFC 3339
	Reject  string            `yaml:"reject"` // instead of want: the reason it is refused with
}

// SpecError is a problem at one key of a profiles or catalog file. Path
// names the key the way the file's decoder does (profiles.ws-2902.fields.
// temperature.unit), so the caller can point at its line and column.
type SpecError struct {
	Path string
	Msg  string
}

func (e SpecError) Error() string { return "devices: " + e.Path + ": " + e.Msg }

// specErrors collects SpecErrors.
type specErrors []SpecError

func (es *specErrors) add(path, format string, args ...any) {
	*es = append(*es, SpecError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Profile formats.
const (
	FormatJSON   = "json"
	FormatCSV    = "csv"
	FormatNumber = "number"
)

// Field value types.
const (
	TypeNumber = "number"
	TypeString = "string"
	TypeBool   = "bool"
	TypeHex    = "hex"
)

// reservedFields are the data keys the normalizer adds itself.
var reservedFields = []string{"device", "skew_ms"}

// CompileProfiles checks every profile and compiles it for decoding. It
// returns every problem found; the Profiles are usable only when there are
// none.
func CompileProfiles(f ProfilesFile) (*Profiles, []SpecError) {
	ps := &Profiles{byKind: make(map[string]*Profile, len(f.Profiles))}
	var errs specErrors
	for _, kind := range sortedKeys(f.Profiles) {
		p := "profiles." + kind
		if !ValidID(kind) {
			errs.add(p, "kind %q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", kind)
		}
		ps.byKind[kind] = compileProfile(kind, f.Profiles[kind], p, &errs)
	}
	return ps, errs
}

func compileProfile(kind string, s ProfileSpec, p string, errs *specErrors) *Profile {
	pr := &Profile{Kind: kind, EventType: s.EventType, Samples: s.Samples, delim: ','}
	switch s.Format {
	case "", FormatJSON:
		pr.format = FormatJSON
	case FormatCSV, FormatNumber:
		pr.format = s.Format
	default:
		errs.add(p+".format", "%q must be json, csv or number", s.Format)
	}
	switch {
	case s.Delimiter != "" && pr.format != FormatCSV:
		errs.add(p+".delimiter", "only a csv profile has a delimiter")
	case len(s.Delimiter) > 1 || s.Delimiter == "\"" || s.Delimiter == "\n":
		errs.add(p+".delimiter", "%q must be one character (not a quote or a newline)", s.Delimiter)
	case s.Delimiter != "":
		pr.delim = s.Delimiter[0]
	}
	if len(s.Fields) == 0 {
		errs.add(p, "fields: declare at least one canonical field")
	}
	if pr.format == FormatNumber && len(s.Fields) > 1 {
		errs.add(p+".fields", "a number profile has exactly one field (the payload is one number)")
	}
	for _, name := range sortedKeys(s.Fields) {
		f := compileField(pr.format, name, s.Fields[name], p+".fields."+name, errs)
		pr.fields = append(pr.fields, f)
	}
	if s.Time != nil {
		pr.time = compileTime(pr.format, *s.Time, p+".time", errs)
	}
	return pr
}

// compileSource checks where a value comes from for the profile's format.
func compileSource(format, p, path string, column int, errs *specErrors) source {
	var src source
	switch format {
	case FormatJSON:
		if column != 0 {
			errs.add(p+".column", "column is for csv profiles; a json profile uses path")
		}
		steps, err := parsePath(path)
		if err != nil {
			errs.add(p+".path", "path %v", err)
		}
		src.path, src.desc = steps, "path "+path
	case FormatCSV:
		if path != "" {
			errs.add(p+".path", "path is for json profiles; a csv profile uses column")
		}
		if column < 1 {
			errs.add(p+".column", "want the column number, 1 for the first")
		}
		src.column, src.desc = column, "column "+strconv.Itoa(column)
	case FormatNumber:
		if path != "" || column != 0 {
			errs.add(p, "a number profile's field takes the whole payload: no path or column")
		}
		src.desc = "the payload"
	}
	return src
}

func compileField(format, name string, s FieldSpec, p string, errs *specErrors) field {
	f := field{name: name, optional: s.Optional, mapping: s.Map, decimals: -1,
		conv: conversion{pre: 0, mul: 1}, scale: 1, offset: s.Offset}
	if !validFieldName(name) {
		errs.add(p, "field name %q must be a lowercase letter then letters, digits or '_' (at most 64)", name)
	}
	if slices.Contains(reservedFields, name) {
		errs.add(p, "%q is added by the gateway itself and cannot be a profile field", name)
	}
	f.src = compileSource(format, p, s.Path, s.Column, errs)
	f.typ = s.Type
	switch {
	case s.Type == "" && s.Map != nil, s.Type == TypeString && s.Map != nil:
		f.typ = TypeString
	case s.Map != nil:
		errs.add(p+".map", "a map makes a string: type must be string or absent")
	case s.Type == "":
		f.typ = TypeNumber
	case s.Type != TypeNumber && s.Type != TypeString && s.Type != TypeBool && s.Type != TypeHex:
		errs.add(p+".type", "%q must be number, string, bool or hex", s.Type)
	}
	if f.typ == TypeNumber {
		compileNumber(&f, s, p, errs)
	} else {
		refuseNumberKeys(s, p, errs)
	}
	for _, k := range sortedKeys(s.Map) {
		if s.Map[k] == "" {
			errs.add(p+".map."+k, "maps to nothing: give the canonical string")
		}
	}
	return f
}

// refuseNumberKeys reports the number-only keys set on another type.
func refuseNumberKeys(s FieldSpec, p string, errs *specErrors) {
	for _, k := range []struct {
		key string
		set bool
	}{{"unit", s.Unit != ""}, {"scale", s.Scale != nil}, {"offset", s.Offset != 0},
		{"decimals", s.Decimals != nil}, {"min", s.Min != nil}, {"max", s.Max != nil}} {
		if k.set {
			errs.add(p+"."+k.key, "only a number field has %s", k.key)
		}
	}
}

func compileNumber(f *field, s FieldSpec, p string, errs *specErrors) {
	if s.Unit != "" {
		if c, ok := units[s.Unit]; ok {
			f.conv, f.unit = c, c.canon
		} else {
			errs.add(p+".unit", "unknown unit %q (known: %s)", s.Unit, unitNames())
		}
	}
	if s.Scale != nil {
		if *s.Scale == 0 || math.IsInf(*s.Scale, 0) || math.IsNaN(*s.Scale) {
			errs.add(p+".scale", "must be a finite number other than 0")
		}
		f.scale = *s.Scale
	}
	if math.IsInf(s.Offset, 0) || math.IsNaN(s.Offset) {
		errs.add(p+".offset", "must be a finite number")
	}
	if !f.conv.identity() || f.scale != 1 || f.offset != 0 {
		f.decimals = 6 // no float noise such as 20.000000000000004
	}
	if s.Decimals != nil {
		if *s.Decimals < 0 || *s.Decimals > 15 {
			errs.add(p+".decimals", "must be 0 to 15")
		}
		f.decimals = *s.Decimals
	}
	f.min, f.max = math.Inf(-1), math.Inf(1)
	if s.Min != nil {
		f.min = *s.Min
	}
	if s.Max != nil {
		f.max = *s.Max
	}
	if math.IsNaN(f.min) || math.IsNaN(f.max) || f.min > f.max {
		errs.add(p+".min", "min %v must not be above max %v", f.min, f.max)
	}
}

func compileTime(format string, s TimeSpec, p string, errs *specErrors) *timeField {
	t := &timeField{format: s.Format, maxSkew: s.MaxSkew}
	if format == FormatNumber {
		errs.add(p, "a number profile's payload has no room for a timestamp")
		return nil
	}
	t.src = compileSource(format, p, s.Path, s.Column, errs)
	switch s.Format {
	case TimeEpochS, TimeEpochMS, TimeRFC3339:
	case "":
		errs.add(p+".format", "want epoch_s, epoch_ms, rfc3339 or a Go layout such as \"2006-01-02 15:04:05\"")
	default:
		ref := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
		if back, err := time.Parse(s.Format, ref.Format(s.Format)); err != nil || !back.Equal(ref) {
			errs.add(p+".format", "%q is not epoch_s, epoch_ms, rfc3339, nor a Go layout giving the date and time (written like 2006-01-02 15:04:05)", s.Format)
		}
	}
	if s.MaxSkew < 0 {
		errs.add(p+".max_skew", "must not be negative (0: the device time is always used)")
	}
	return t
}

// validFieldName reports whether s can be a canonical field name: it
// becomes a JSON key and a name in rule expressions (data.temperature).
func validFieldName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// commaJoin joins names for messages.
func commaJoin(names []string) string { return strings.Join(names, ", ") }
