package devices

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/event"
)

func parseCatalog(t testing.TB, text string) (*Catalog, []SpecError) {
	t.Helper()
	var f CatalogFile
	decodeStrict(t, "yaml", []byte(text), &f)
	return CompileCatalog(f)
}

func mustCatalog(t testing.TB, text string) *Catalog {
	t.Helper()
	c, errs := parseCatalog(t, text)
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return c
}

const testCatalog = `
events:
  env.reading:
    category: raw
    version: 1.2.0
    owner: cold-chain
    topic: devices/+/env
    sla: {class: telemetry, ttl: 72h}
    retention: 24h
    publishers: [reefer sensors]
    subscribers: [dashboard]
    schema:
      fields:
        temperature: {type: number, unit: degC, required: true, min: -60, max: 85}
        humidity: {type: number, unit: "%", min: 0, max: 100}
        state: {type: string, enum: [running, "defrost \"cycle\""]}
        heater: {type: bool}
        extra: {type: object}
  door.state:
    category: raw
    version: "1"
    dataschema: https://schemas.example.com/door/1
    schema:
      additional: true
      fields:
        door: {type: string, required: true, enum: [open, closed]}
`

func TestCatalogValidate(t *testing.T) {
	c := mustCatalog(t, testCatalog)
	for _, tc := range []struct {
		typ, data string
		want      Reason // "" for valid
		detail    string
	}{
		{"env.reading", `{"temperature":4.5}`, "", ""},
		{"env.reading", `{"temperature":4.5,"humidity":50,"state":"running","heater":false,"extra":{"a":[1]}}`, "", ""},
		{"env.reading", `{"temperature":4.5,"skew_ms":-120,"device":{"site":"x"}}`, "", ""},
		{"env.reading", `{"temperature":4.5,"humidity":null}`, "", ""},
		{"env.reading", `{"temperature":4.5,"state":"defrost \"cycle\""}`, "", ""},
		{"env.reading", ` { "temperature" : 4.5 } `, "", ""},
		{"env.reading", `{"tempe\u0072ature":4.5}`, "", ""},
		{"env.reading", `{}`, ReasonSchema, "required field temperature is missing"},
		{"env.reading", `{"temperature":null}`, ReasonSchema, "required field temperature is missing"},
		{"env.reading", ``, ReasonSchema, "no data, and temperature is required"},
		{"env.reading", `{"temperature":"4.5"}`, ReasonSchema, "temperature: want a number, got a string"},
		{"env.reading", `{"temperature":4.5,"heater":"on"}`, ReasonSchema, "heater: want a bool"},
		{"env.reading", `{"temperature":4.5,"extra":[1]}`, ReasonSchema, "extra: want a object, got an array"},
		{"env.reading", `{"temperature":4.5,"colour":"red"}`, ReasonSchema, `field "colour" is not in the schema`},
		{"env.reading", `{"temperature":4.5,"state":"off"}`, ReasonSchema, `state "off" is not one of running`},
		{"env.reading", `{"temperature":123}`, ReasonImpossible, "temperature 123 is outside [-60, 85]"},
		{"env.reading", `{"temperature":4.5,"humidity":-1}`, ReasonImpossible, "humidity -1 is outside [0, 100]"},
		{"env.reading", `{"temperature":4.5,"skew_ms":"late"}`, ReasonSchema, "skew_ms is a string"},
		{"env.reading", `{"temperature":4.5,"device":"x"}`, ReasonSchema, "device is a string"},
		{"env.reading", `[{"temperature":4.5}]`, ReasonSchema, "data is not a JSON object"},
		{"env.reading", `{"temperature":4.5`, ReasonSchema, "not valid JSON"},
		{"door.state", `{"door":"open","anything":1}`, "", ""},
		{"door.state", `{"door":"ajar"}`, ReasonSchema, "not one of open, closed"},
		{"gps.fix", `{"lat":1}`, ReasonSchema, `event type "gps.fix" is not in the catalog`},
	} {
		err := c.Validate(&event.Event{Type: tc.typ, Data: json.RawMessage(tc.data)})
		r, _ := AsReject(err)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.typ, tc.data, err)
		case tc.want != "" && (r == nil || r.Reason != tc.want || !strings.Contains(r.Detail, tc.detail)):
			t.Errorf("%s %s: %v, want %s containing %q", tc.typ, tc.data, err, tc.want, tc.detail)
		}
	}
	var none *Catalog
	if err := none.Validate(&event.Event{Type: "x"}); err != nil {
		t.Errorf("a nil catalog validates nothing, got %v", err)
	}
}

func TestCompileCatalogErrors(t *testing.T) {
	_, errs := parseCatalog(t, `
events:
  "bad/name": {category: raw, version: "1"}
  a:
    category: fancy
    version: v2
    compatibility: sideways
    dataschema: "not a uri"
    topic: "a/#/b"
    sla: {ttl: -1s}
    retention: -1h
    publishers: [""]
    schema:
      fields:
        device: {type: object}
        Bad: {type: number}
        n: {type: int}
        s: {type: string, min: 1}
        m: {type: number, min: 10, max: 1}
        e: {type: number, enum: [a]}
        i: {type: number, max: .inf}
`)
	want := []string{
		"events.a.category: \"fancy\" must be raw",
		"events.a.version: \"v2\" must be a version",
		"events.a.compatibility: \"sideways\" must be",
		"events.a.dataschema: \"not a uri\" must be an absolute URI",
		"events.a.topic: \"a/#/b\" is not a valid",
		"events.a.sla.ttl: must not be negative",
		"events.a.retention: must not be negative",
		"events.a.publishers[0]: is empty",
		"events.a.schema.fields.Bad: field name",
		"events.a.schema.fields.device: \"device\" is added by the gateway",
		"events.a.schema.fields.e.enum: enum is for string fields",
		"events.a.schema.fields.i.max: must be a finite number",
		"events.a.schema.fields.m.min: min 10 must not be above max 1",
		"events.a.schema.fields.n.type: \"int\" must be number",
		"events.a.schema.fields.s: min and max are for number fields",
		"events.bad/name: event type \"bad/name\" must be",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		path, frag, _ := strings.Cut(w, ": ")
		if errs[i].Path != path || !strings.Contains(errs[i].Msg, frag) {
			t.Errorf("problem %d: %s: %s\nwant %s: …%s…", i, errs[i].Path, errs[i].Msg, path, frag)
		}
	}
}

// The discovery JSON lists every entry with its defaults filled in and
// durations readable.
func TestCatalogJSON(t *testing.T) {
	c := mustCatalog(t, testCatalog)
	var got struct {
		Events []struct {
			Name, Category, Version, Compatibility, DataSchema, Owner, Retention string
			SLA                                                                  struct{ Class, TTL string }
			Schema                                                               struct {
				Additional bool
				Fields     map[string]struct {
					Type, Unit string
					Required   bool
					Min, Max   *float64
					Enum       []string
				}
			}
		}
	}
	if err := json.Unmarshal(c.JSON(), &got); err != nil {
		t.Fatalf("%v: %s", err, c.JSON())
	}
	if len(got.Events) != 2 || got.Events[0].Name != "door.state" || got.Events[1].Name != "env.reading" {
		t.Fatalf("events %+v", got.Events)
	}
	env, door := got.Events[1], got.Events[0]
	temp := env.Schema.Fields["temperature"]
	if env.Compatibility != "backward" || env.DataSchema != "urn:flowgate:schema:env.reading:1.2.0" ||
		env.SLA.Class != "telemetry" || env.SLA.TTL != "72h0m0s" || env.Retention != "24h0m0s" || env.Owner != "cold-chain" ||
		temp.Type != "number" || temp.Unit != "degC" || !temp.Required || *temp.Min != -60 || *temp.Max != 85 {
		t.Errorf("env.reading: %+v", env)
	}
	if door.DataSchema != "https://schemas.example.com/door/1" || !door.Schema.Additional ||
		len(door.Schema.Fields["door"].Enum) != 2 {
		t.Errorf("door.state: %+v", door)
	}
	if c.DataSchema("env.reading") != env.DataSchema || c.DataSchema("nope") != "" {
		t.Errorf("DataSchema: %q", c.DataSchema("env.reading"))
	}
	var none *Catalog
	if string(none.JSON()) != `{"events":[]}` || none.Names() != nil {
		t.Errorf("nil catalog JSON %s", none.JSON())
	}
}

// Check runs every sample and compares each profile with its catalog
// entry, naming the key of each problem.
func TestProfilesCheck(t *testing.T) {
	cat := mustCatalog(t, testCatalog)
	ps := mustProfiles(t, `
profiles:
  good:
    event_type: env.reading
    fields:
      temperature: {path: t, unit: degF, decimals: 1}
      state: {path: s, optional: true, map: {"1": running}}
    time: {path: ts, format: epoch_s}
    samples:
      - payload: '{"t": 50, "s": 1, "ts": 1767225600}'
        want: {temperature: 10, state: running}
        time: 2026-01-01T00:00:00Z
      - payload: '{"t": 500}'
        reject: impossible_value
  bad:
    event_type: env.reading
    fields:
      temperature: {path: t, unit: mph, optional: true}
      colour: {path: c, type: string, optional: true}
      heater: {path: h, type: hex, optional: true}
      state: {path: s, optional: true, map: {"0": stopped}}
    samples:
      - payload: '{"t": 1}'
        want: {temperature: 2}
      - payload: '{"t": 1, "h": "0A"}'
        want: {temperature: 0.44704}
      - payload: '{"x": 1}'
        want: {temperature: 1}
      - payload: '{"t": 1}'
        reject: schema_violation
      - payload: '{"t": 1}'
        reject: bad_payload
      - payload: '{"t": 1}'
      - payload: '{"t": 1}'
        reject: tired
      - payload: '{"t": 1}'
        time: 2026-01-01T00:00:00Z
        want: {temperature: 0.44704}
  elsewhere:
    event_type: gps.fix
    fields:
      lat: {path: lat}
`)
	got := ps.Check(cat)
	want := []string{
		`profiles.bad.fields.colour: catalog entry env.reading has no field colour`,
		`profiles.bad.fields.heater: makes a string, but catalog entry env.reading says heater is a bool`,
		`profiles.bad.fields.state.map.0: "stopped" is not in catalog entry env.reading's enum`,
		`profiles.bad.fields.temperature.unit: converts to m/s, but catalog entry env.reading says temperature is in degC`,
		`profiles.bad.fields: catalog entry env.reading requires temperature, which this profile does not always produce`,
		`profiles.bad.samples[0].want.temperature: temperature is 0.44704, not 2`,
		`profiles.bad.samples[1].payload: refused: devices: schema_violation: env.reading: heater: want a bool, got a string`,
		`profiles.bad.samples[2].payload: refused: devices: schema_violation: env.reading: required field temperature is missing`,
		`profiles.bad.samples[3].reject: want the payload refused with schema_violation, but it was accepted: {"temperature":0.44704}`,
		`profiles.bad.samples[4].reject: want the payload refused with bad_payload, but it was accepted`,
		`profiles.bad.samples[5]: want: list the canonical fields`,
		`profiles.bad.samples[6].reject: "tired" is not a reason`,
		`profiles.bad.samples[7].time: the payload carries no time`,
		`profiles.elsewhere.event_type: "gps.fix" is not in the catalog (it has door.state, env.reading)`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), joinErrs(got))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].Path+": "+got[i].Msg, w) {
			t.Errorf("problem %d:\n got %s: %s\nwant %s", i, got[i].Path, got[i].Msg, w)
		}
	}
}

// Without a catalog, samples are still checked: a sample must list every
// field its payload produces.
func TestProfilesCheckSampleFields(t *testing.T) {
	ps := mustProfiles(t, `
profiles:
  k:
    fields:
      temperature: {path: t}
      humidity: {path: h}
    samples:
      - payload: '{"t": 1, "h": 2}'
        want: {temperature: 1}
      - payload: '{"t": 1, "h": 2}'
        want: {temperature: 1, humidity: 2, pressure: 3}
      - payload: '{"t": 1, "h": 2}'
        want: {temperature: 1, humidity: 2}
        reject: bad_payload
`)
	got := joinErrs(ps.Check(nil))
	for _, w := range []string{
		"profiles.k.samples[0].want: the payload also produces humidity: 2 (list it)",
		"profiles.k.samples[1].want.pressure: the payload does not produce pressure",
		"profiles.k.samples[2]: give want or reject, not both",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
	if strings.Count(got, "\n") != 3 {
		t.Errorf("want 3 problems:\n%s", got)
	}
}

func joinErrs(errs []SpecError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Path + ": " + e.Msg + "\n")
	}
	return b.String()
}
