package yamlpos

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeFor[time.Duration]()

// decodeSpecial decodes into types that take a scalar but are not decided by
// their kind: encoding.TextUnmarshaler implementations and time.Duration.
// It reports whether v was one of them.
func (d *decoder) decodeSpecial(site, n *yaml.Node, v reflect.Value, path string) bool {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if text, ok := d.scalarText(site, n, path, "a string"); ok {
			if err := u.UnmarshalText([]byte(text)); err != nil {
				d.errorf(site, "%s: %v", label(path), err)
			}
		}
		return true
	}
	if v.Type() != durationType {
		return false
	}
	const want = `a duration such as "1m30s"`
	text, ok := d.scalarText(site, n, path, want)
	if !ok {
		return true
	}
	dur, err := time.ParseDuration(text)
	switch {
	case err == nil:
		v.SetInt(int64(dur))
	case isInteger(text):
		d.errorf(site, "%s: want %s, got %s (add a unit: ns, us, ms, s, m or h)", label(path), want, quote(text))
	default:
		d.errorf(site, "%s: want %s, got %s", label(path), want, quote(text))
	}
	return true
}

// scalarText returns the text of scalar n with ${VAR} expanded, or reports
// why there is none: n is a collection, or a variable is not set.
func (d *decoder) scalarText(site, n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.mismatch(site, n, path, want)
		return "", false
	}
	text, from, problems := expand(n.Value, d.lookup)
	for _, p := range problems {
		d.errorf(site, "%s: %s", label(path), p)
	}
	if len(problems) > 0 {
		return "", false
	}
	if e, ok := d.doc.entries[path]; ok && from != nil {
		e.from = from
	}
	return text, true
}

// decodeScalar decodes n into a string, boolean or number.
func (d *decoder) decodeScalar(site, n *yaml.Node, v reflect.Value, path string) {
	want := wantFor(v.Type())
	if want == "" {
		d.errorf(site, "%s: yamlpos cannot decode into Go type %s", label(path), v.Type())
		return
	}
	text, ok := d.scalarText(site, n, path, want)
	if !ok {
		return
	}
	var msg string
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		msg = setBool(v, text)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		msg = setInt(v, text)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		msg = setUint(v, text)
	case reflect.Float32, reflect.Float64:
		msg = setFloat(v, text)
	}
	if msg != "" {
		d.errorf(site, "%s: %s", label(path), msg)
	}
}

// wantFor describes the scalars a type takes, or returns "" if this package
// cannot decode into it.
func wantFor(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return ""
}

// setBool sets v from a YAML 1.2 core-schema boolean and returns "", or
// returns what is wrong with text.
func setBool(v reflect.Value, text string) string {
	switch text {
	case "true", "True", "TRUE":
		v.SetBool(true)
		return ""
	case "false", "False", "FALSE":
		v.SetBool(false)
		return ""
	}
	switch strings.ToLower(text) {
	case "yes", "no", "on", "off", "y", "n":
		return fmt.Sprintf("want true or false, got %s (YAML 1.2 has no yes/no/on/off booleans)", quote(text))
	}
	return "want true or false, got " + quote(text)
}

func setInt(v reflect.Value, text string) string {
	neg, mag, msg := parseInteger(text, "an integer")
	if msg != "" {
		return msg
	}
	bits := v.Type().Bits()
	limit := uint64(1) << (bits - 1) // -limit .. limit-1
	if (!neg && mag >= limit) || (neg && mag > limit) {
		return fmt.Sprintf("%s is out of range for %s (%d to %d)", text, v.Type(), -int64(limit-1)-1, limit-1)
	}
	n := int64(mag)
	if neg {
		n = -n // wraps correctly for mag == 1<<63
	}
	v.SetInt(n)
	return ""
}

func setUint(v reflect.Value, text string) string {
	neg, mag, msg := parseInteger(text, "a non-negative integer")
	if msg != "" {
		return msg
	}
	if neg && mag != 0 {
		return "want a non-negative integer, got " + quote(text)
	}
	bits := v.Type().Bits()
	if bits < 64 && mag >= uint64(1)<<bits {
		return fmt.Sprintf("%s is out of range for %s (0 to %d)", text, v.Type(), uint64(1)<<bits-1)
	}
	v.SetUint(mag)
	return ""
}

// isInteger reports whether text is an integer, for the hint that a
// duration needs a unit.
func isInteger(text string) bool {
	_, _, msg := parseInteger(text, "")
	return msg == ""
}

// parseInteger parses a YAML 1.2 core-schema integer: decimal with an
// optional sign, 0x hex or 0o octal. It returns the sign and magnitude, or a
// message saying what is wrong (want names the expected kind of value).
func parseInteger(text, want string) (neg bool, mag uint64, msg string) {
	s, base := text, 10
	switch {
	case strings.HasPrefix(s, "0x"):
		s, base = s[2:], 16
	case strings.HasPrefix(s, "0o"):
		s, base = s[2:], 8
	case strings.HasPrefix(s, "-"), strings.HasPrefix(s, "+"):
		neg, s = s[0] == '-', s[1:]
	}
	if s == "" || strings.ContainsAny(s, "+-_") {
		return false, 0, fmt.Sprintf("want %s, got %s", want, quote(text))
	}
	if base == 10 && len(s) > 1 && s[0] == '0' && strings.Trim(s, "0123456789") == "" {
		return false, 0, fmt.Sprintf("%s has a leading zero: write 0o%s for octal, or drop the zero", quote(text), s[1:])
	}
	mag, err := strconv.ParseUint(s, base, 64)
	if errors.Is(err, strconv.ErrRange) {
		return false, 0, fmt.Sprintf("%s is too large", text)
	}
	if err != nil {
		return false, 0, fmt.Sprintf("want %s, got %s", want, quote(text))
	}
	return neg, mag, ""
}

// coreFloat matches a YAML 1.2 core-schema number other than .inf and .nan.
var coreFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

func setFloat(v reflect.Value, text string) string {
	var f float64
	switch text {
	case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF":
		f = math.Inf(1)
	case "-.inf", "-.Inf", "-.INF":
		f = math.Inf(-1)
	case ".nan", ".NaN", ".NAN":
		f = math.NaN()
	default:
		if !coreFloat.MatchString(text) {
			return "want a number, got " + quote(text)
		}
		var err error
		f, err = strconv.ParseFloat(text, v.Type().Bits())
		if err != nil {
			return fmt.Sprintf("%s is out of range for %s", text, v.Type())
		}
	}
	v.SetFloat(f)
	return ""
}
