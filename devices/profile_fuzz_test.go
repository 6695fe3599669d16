package devices

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/event"
)

// checkCanonical is the contract every profile decoder keeps, whatever the
// payload: it does not panic; a refusal carries a reason; accepted data is
// one valid JSON object holding every required field, with numbers inside
// their range, and the event time is set.
func checkCanonical(t *testing.T, p *Profile, payload []byte) map[string]any {
	t.Helper()
	data, when, err := p.Canonical(payload, map[string]string{"site": "a\"b\x00\xff"}, goldenNow)
	if err != nil {
		if _, ok := AsReject(err); !ok {
			t.Fatalf("error without a reason: %v", err)
		}
		return nil
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil || when.IsZero() {
		t.Fatalf("accepted %q as invalid data %q (%v), time %v", payload, data, err, when)
	}
	for _, f := range p.fields {
		v, ok := got[f.name]
		if !ok && !f.optional {
			t.Fatalf("%q: required %s missing from %s", payload, f.name, data)
		}
		if n, isNum := v.(float64); ok && isNum && (n < f.min || n > f.max) {
			t.Fatalf("%q: %s %v outside [%v, %v]", payload, f.name, n, f.min, f.max)
		}
	}
	return got
}

func FuzzProfileJSON(f *testing.F) {
	ps := mustProfiles(f, `
profiles:
  k:
    fields:
      temperature: {path: "outdoor.temp[0]", unit: degF, min: -60, max: 70}
      tag: {path: uid, type: hex, optional: true}
      door: {path: "s.door", map: {"0": closed, "1": open}, optional: true}
      heater: {path: h, type: bool, optional: true}
      label: {path: l, type: string, optional: true}
    time: {path: ts, format: rfc3339}
`)
	p, _ := ps.Lookup("k")
	for _, s := range []string{`{"outdoor":{"temp":[68]}}`, `{"outdoor":{"temp":["68"]},"uid":"04:a3","s":{"door":1},"h":true,"l":"x\u0000"}`,
		`{"outdoor":{"temp":[1e999]}}`, `{"outdoor":{"temp":[68]},"ts":"2026-01-01T00:00:00Z"}`, `{"outdoor":{"temp":[68]},"ts":"x"}`,
		`{"outdoor":{"temp":{}}}`, `[1,2]`, `{"a":`, `"x"`, ``, "{\"l\":\"\xff\",\"outdoor\":{\"temp\":[0]}}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got := checkCanonical(t, p, payload)
		if got == nil || !json.Valid(payload) {
			return
		}
		// The scanner agrees with encoding/json about where the value is.
		var doc any
		if json.Unmarshal(payload, &doc) != nil {
			return
		}
		raw, ok := lookupPath(payload, p.fields[len(p.fields)-1].src.path) // temperature
		want, wok := walk(doc, p.fields[len(p.fields)-1].src.path)
		var gotV any
		if ok && json.Unmarshal(raw, &gotV) != nil || ok != wok || !reflect.DeepEqual(gotV, want) {
			t.Fatalf("%q: scanner found %q (%v), encoding/json %v (%v)", payload, raw, ok, want, wok)
		}
	})
}

// walk follows path through a value decoded by encoding/json.
func walk(v any, path []step) (any, bool) {
	for _, s := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[s.key]; !ok || s.index >= 0 {
				return nil, false
			}
		case []any:
			if s.index < 0 || s.index >= len(x) {
				return nil, false
			}
			v = x[s.index]
		default:
			return nil, false
		}
	}
	return v, true
}

func FuzzProfileCSV(f *testing.F) {
	ps := mustProfiles(f, `
profiles:
  k:
    format: csv
    delimiter: ";"
    fields:
      temperature: {column: 2, unit: K, min: -50, max: 150}
      reader: {column: 3, type: string, optional: true}
      battery: {column: 4, unit: fraction, optional: true}
    time: {column: 1, format: epoch_ms}
`)
	p, _ := ps.Lookup("k")
	for _, s := range []string{"1767225600000;294.15;dock;0.5", "; 300 ;\"a;b\";", "x;y", "1;2;3;4;5\n", "1;2\n3;4", ";NaN", ";1e400", "\xff;290"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkCanonical(t, p, payload)
	})
}

func FuzzProfileNumber(f *testing.F) {
	ps := mustProfiles(f, `profiles: {k: {format: number, fields: {pressure: {unit: inHg, decimals: 2, min: 800, max: 1100}}}}`)
	p, _ := ps.Lookup("k")
	for _, s := range []string{"29.92", " 30 \n", "-0", "0x1p5", "1e308", "Inf", "nan", "", "1_000", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got := checkCanonical(t, p, payload)
		if got == nil {
			return
		}
		in, err := strconv.ParseFloat(strings.TrimSpace(string(payload)), 64)
		if want := round(in*33.8638866667, 2); err != nil || got["pressure"] != want {
			t.Fatalf("%q became %v, want %v", payload, got["pressure"], want)
		}
	})
}

// FuzzCatalogValidate checks the validator against a plain reference built
// on encoding/json: for valid JSON, both accept or both refuse, and the
// validator never panics on anything.
func FuzzCatalogValidate(f *testing.F) {
	c := mustCatalog(f, testCatalog)
	for _, s := range []string{`{"temperature":4.5}`, `{"temperature":4.5,"humidity":50,"state":"running","heater":false,"extra":{}}`,
		`{"temperature":123}`, `{"temperature":null}`, `{"temperature":1,"temperature":null}`, `{"te\u006dperature":1}`,
		`{"temperature":1,"skew_ms":2,"device":{}}`, `{"temperature":1,"x":1}`, `[]`, `{`, ``, `{"temperature":1e400}`,
		`{"temperature":1,"state":"defrost \"cycle\""}`} {
		f.Add("env.reading", []byte(s))
	}
	f.Add("door.state", []byte(`{"door":"open","x":[1]}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		err := c.Validate(&event.Event{Type: typ, Data: data})
		if err != nil {
			if _, ok := AsReject(err); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
		}
		e, ok := c.byName[typ]
		if !ok || !json.Valid(data) {
			if err == nil && len(bytes.TrimSpace(data)) > 0 {
				t.Fatalf("accepted %s %q", typ, data)
			}
			return
		}
		if want := referenceValid(e, data); want != (err == nil) {
			t.Fatalf("%s %q: validator %v, reference says valid=%v", typ, data, err, want)
		}
	})
}

// referenceValid is Validate written the slow, obvious way.
func referenceValid(e *catalogEntry, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil || obj == nil {
		return false
	}
	for k, v := range obj {
		i, declared := e.index[k]
		switch {
		case v == nil:
		case !declared && (k == "skew_ms" || k == "device"):
			if _, isNum := v.(json.Number); k == "skew_ms" && !isNum {
				return false
			}
			if _, isObj := v.(map[string]any); k == "device" && !isObj {
				return false
			}
		case !declared:
			if !e.additional {
				return false
			}
		case !referenceField(&e.fields[i], v):
			return false
		}
	}
	for _, f := range e.fields {
		if v, ok := obj[f.name]; f.required && (!ok || v == nil) {
			return false
		}
	}
	return true
}

func referenceField(f *schemaField, v any) bool {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseFloat(string(x), 64)
		return f.typ == TypeNumber && err == nil && !math.IsInf(n, 0) && n >= f.min && n <= f.max
	case string:
		return f.typ == TypeString && (f.enum == nil || containsString(f.enum, x))
	case bool:
		return f.typ == TypeBool
	case map[string]any:
		return f.typ == "object"
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
