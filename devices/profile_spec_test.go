package devices

import (
	"bytes"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decodeStrict decodes YAML into v as the loader does, refusing unknown
// keys; name says what it is in a failure.
func decodeStrict(t testing.TB, name string, data []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// parseProfiles decodes and compiles a profiles file written in a test.
func parseProfiles(t testing.TB, text string) (*Profiles, []SpecError) {
	t.Helper()
	var f ProfilesFile
	decodeStrict(t, "yaml", []byte(text), &f)
	return CompileProfiles(f)
}

func mustProfiles(t testing.TB, text string) *Profiles {
	t.Helper()
	ps, errs := parseProfiles(t, text)
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return ps
}

// Every mistake in a profile is reported at its key, all at once.
func TestCompileProfilesErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string // "path: message fragment", in order
	}{
		{"bad format", `profiles: {k: {format: xml, fields: {t: {path: t}}}}`,
			[]string{"profiles.k.format: \"xml\" must be json, csv or number"}},
		{"no fields", `profiles: {k: {}}`, []string{"profiles.k: fields: declare at least one"}},
		{"bad kind", `profiles: {"a b": {fields: {t: {path: t}}}}`, []string{"profiles.a b: kind \"a b\" must be"}},
		{"unknown unit", `profiles: {k: {fields: {t: {path: t, unit: furlong}}}}`,
			[]string{"profiles.k.fields.t.unit: unknown unit \"furlong\" (known: %, %RH, K,"}},
		{"json needs path", `profiles: {k: {fields: {t: {column: 2}}}}`,
			[]string{"profiles.k.fields.t.column: column is for csv", "profiles.k.fields.t.path: path is empty"}},
		{"bad path", `profiles: {k: {fields: {t: {path: "a[x]"}}}}`,
			[]string{"profiles.k.fields.t.path: path \"a[x]\": want [N]"}},
		{"csv needs column", `profiles: {k: {format: csv, fields: {t: {path: a}}}}`,
			[]string{"profiles.k.fields.t.path: path is for json", "profiles.k.fields.t.column: want the column number"}},
		{"number has one field", `profiles: {k: {format: number, fields: {a: {}, b: {}}}}`,
			[]string{"profiles.k.fields: a number profile has exactly one field"}},
		{"number has no time", `profiles: {k: {format: number, fields: {a: {}}, time: {format: epoch_s}}}`,
			[]string{"profiles.k.time: a number profile's payload has no room"}},
		{"csv delimiter", `profiles: {k: {format: csv, delimiter: ";;", fields: {t: {column: 1}}}}`,
			[]string{"profiles.k.delimiter: \";;\" must be one character"}},
		{"delimiter on json", `profiles: {k: {delimiter: ";", fields: {t: {path: t}}}}`,
			[]string{"profiles.k.delimiter: only a csv profile"}},
		{"reserved name", `profiles: {k: {fields: {skew_ms: {path: s}}}}`,
			[]string{"profiles.k.fields.skew_ms: \"skew_ms\" is added by the gateway"}},
		{"bad name", `profiles: {k: {fields: {Temp: {path: t}}}}`,
			[]string{"profiles.k.fields.Temp: field name \"Temp\" must be"}},
		{"bad type", `profiles: {k: {fields: {t: {path: t, type: float}}}}`,
			[]string{"profiles.k.fields.t.type: \"float\" must be number, string, bool or hex"}},
		{"unit on a string", `profiles: {k: {fields: {t: {path: t, type: string, unit: degF, min: 1}}}}`,
			[]string{"profiles.k.fields.t.unit: only a number field has unit", "profiles.k.fields.t.min: only a number field has min"}},
		{"map on a bool", `profiles: {k: {fields: {d: {path: d, type: bool, map: {"1": open}}}}}`,
			[]string{"profiles.k.fields.d.map: a map makes a string"}},
		{"empty map value", `profiles: {k: {fields: {d: {path: d, map: {"1": ""}}}}}`,
			[]string{"profiles.k.fields.d.map.1: maps to nothing"}},
		{"min above max", `profiles: {k: {fields: {t: {path: t, min: 5, max: 1}}}}`,
			[]string{"profiles.k.fields.t.min: min 5 must not be above max 1"}},
		{"zero scale", `profiles: {k: {fields: {t: {path: t, scale: 0}}}}`,
			[]string{"profiles.k.fields.t.scale: must be a finite number other than 0"}},
		{"decimals", `profiles: {k: {fields: {t: {path: t, decimals: 16}}}}`,
			[]string{"profiles.k.fields.t.decimals: must be 0 to 15"}},
		{"time format", `profiles: {k: {fields: {t: {path: t}}, time: {path: ts, format: "yesterday"}}}`,
			[]string{"profiles.k.time.format: \"yesterday\" is not epoch_s"}},
		{"time without format", `profiles: {k: {fields: {t: {path: t}}, time: {path: ts}}}`,
			[]string{"profiles.k.time.format: want epoch_s"}},
		{"negative skew", `profiles: {k: {fields: {t: {path: t}}, time: {path: ts, format: rfc3339, max_skew: -1s}}}`,
			[]string{"profiles.k.time.max_skew: must not be negative"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := parseProfiles(t, c.yaml)
			if len(errs) != len(c.want) {
				t.Fatalf("got %d problems, want %d: %v", len(errs), len(c.want), errs)
			}
			for i, w := range c.want {
				path, frag, _ := strings.Cut(w, ": ")
				if errs[i].Path != path || !strings.Contains(errs[i].Msg, frag) {
					t.Errorf("problem %d: %s: %s\nwant %s: …%s…", i, errs[i].Path, errs[i].Msg, path, frag)
				}
			}
		})
	}
}

func TestUnitConversions(t *testing.T) {
	for _, c := range []struct {
		unit      string
		in, want  float64
		canonical string
	}{
		{"degF", 212, 100, "degC"}, {"°F", -40, -40, "degC"}, {"K", 273.15, 0, "degC"}, {"degC", 21.5, 21.5, "degC"},
		{"mph", 1, 0.44704, "m/s"}, {"km/h", 36, 10, "m/s"}, {"knots", 1, 0.514444, "m/s"},
		{"ft", 1000, 304.8, "m"}, {"cm", 250, 2.5, "m"}, {"km", 1.5, 1500, "m"},
		{"inHg", 29.92, 1013.207, "hPa"}, {"Pa", 101325, 1013.25, "hPa"}, {"kPa", 101.325, 1013.25, "hPa"},
		{"mmHg", 760, 1013.25, "hPa"}, {"psi", 14.6959, 1013.247, "hPa"}, {"mbar", 1000, 1000, "hPa"},
		{"fraction", 0.5, 50, "%"}, {"rad", 3.141592653589793, 180, "deg"}, {"mV", 3300, 3.3, "V"},
	} {
		conv, ok := units[c.unit]
		if !ok || conv.canon != c.canonical {
			t.Errorf("%s: in table %v, canonical %q, want %q", c.unit, ok, conv.canon, c.canonical)
			continue
		}
		if got := round(conv.apply(c.in), 3); got != round(c.want, 3) {
			t.Errorf("%v %s = %v %s, want %v", c.in, c.unit, got, conv.canon, c.want)
		}
	}
}

// A profile's number goes through scale, offset, unit and decimals in that
// order.
func TestScaleOffsetThenUnit(t *testing.T) {
	ps := mustProfiles(t, `profiles: {k: {fields: {temperature: {path: raw, scale: 0.1, offset: -40, unit: degF, decimals: 2}}}}`)
	p, _ := ps.Lookup("k")
	// raw 1120 → 112 - 40 = 72 °F → 22.22 °C
	data, _, err := p.Canonical([]byte(`{"raw":1120}`), nil, goldenNow)
	if err != nil || string(data) != `{"temperature":22.22}` {
		t.Errorf("got %s, %v", data, err)
	}
}
