package yamlpos_test

import (
	"math"
	"reflect"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

const fullConfig = `# A gateway in the boiler room.
site: boiler-room
log_level: warn
uplink:
  url: ${BROKER}
  client_id: "gw-$${literal}"
  qos: 1
  max_inflight: 0x40
  keep_alive: 1m30s
  tls:
    ca: /etc/flowgate/ca.pem
    insecure: false
devices:
  - id: t1
    driver: bme280
    addr: 0x76
    every: 10s
    scale: 1.5e0
    tags: [indoor, "boiler"]
    params: {oversample: 4}
  - id: t2
    driver: gps
    every: 500ms
    scale: -.inf
routes:
  - match: sensors/+/temp
    filter: "value > 30"
    to: [cloud]
labels:
  site: boiler
  floor: "-1"
limits:
  mqtt: {rate: 2.5, burst: -32768}
  empty:
debug: TRUE
`

func TestDecodeFullConfig(t *testing.T) {
	var c config
	doc, errs := yamlpos.Decode("cfg.yaml", []byte(fullConfig), &c, yamlpos.Options{LookupEnv: testEnv})
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	params := c.Devices[0].Params
	if params.Kind != yaml.MappingNode || len(params.Content) != 2 || params.Content[1].Value != "4" || params.Line != 20 {
		t.Errorf("devices[0].params = %+v, want the raw mapping {oversample: 4} at line 20", params)
	}
	c.Devices[0].Params = yaml.Node{}
	debug := true
	want := config{
		common:   common{Site: "boiler-room"},
		LogLevel: 2,
		Uplink: uplink{
			URL: "tcp://broker:1883", ClientID: "gw-${literal}", QoS: 1, MaxInflight: 64,
			KeepAlive: 90 * time.Second, TLS: &tlsConfig{CA: "/etc/flowgate/ca.pem"},
		},
		Devices: []device{
			{ID: "t1", Driver: "bme280", Addr: 0x76, Every: 10 * time.Second, Scale: 1.5, Tags: []string{"indoor", "boiler"}},
			{ID: "t2", Driver: "gps", Every: 500 * time.Millisecond, Scale: math.Inf(-1)},
		},
		Routes: []route{{Match: "sensors/+/temp", Filter: "value > 30", To: []string{"cloud"}}},
		Labels: map[string]string{"site": "boiler", "floor": "-1"},
		Limits: map[string]*limit{"mqtt": {Rate: 2.5, Burst: -32768}, "empty": nil},
		Debug:  &debug,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", c, want)
	}
	if !doc.Has("devices[1].scale") || doc.Has("devices[1].addr") {
		t.Error("Has is wrong about devices[1]")
	}
}

func TestDecodeNullKeepsValues(t *testing.T) {
	in := "site: ~\nuplink:\n  url: null\n  qos:\n  tls: ~\ndevices:\nlabels: {a: ~}\n"
	c := config{common: common{Site: "default"}, Uplink: uplink{URL: "tcp://default", QoS: 2}}
	c.Devices = []device{{ID: "kept"}}
	if _, errs := yamlpos.Decode("f", []byte(in), &c, yamlpos.Options{}); len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.Site != "default" || c.Uplink.URL != "tcp://default" || c.Uplink.QoS != 2 || c.Uplink.TLS != nil {
		t.Errorf("nulls changed defaults: %+v", c)
	}
	if len(c.Devices) != 1 || c.Devices[0].ID != "kept" {
		t.Errorf("devices = %+v, want the default kept", c.Devices)
	}
	if v, ok := c.Labels["a"]; !ok || v != "" {
		t.Errorf("labels = %v, want a null entry as the zero value", c.Labels)
	}
}

func TestDecodeMergesMapsAndReplacesSlices(t *testing.T) {
	c := config{
		Labels:  map[string]string{"keep": "1", "over": "old"},
		Limits:  map[string]*limit{"mqtt": {Rate: 1, Burst: 7}},
		Devices: []device{{ID: "a"}, {ID: "b"}},
	}
	in := "labels: {over: new}\nlimits:\n  mqtt: {rate: 3}\ndevices: [{id: c}]\n"
	if _, errs := yamlpos.Decode("f", []byte(in), &c, yamlpos.Options{}); len(errs) > 0 {
		t.Fatal(errs)
	}
	if !reflect.DeepEqual(c.Labels, map[string]string{"keep": "1", "over": "new"}) {
		t.Errorf("labels = %v", c.Labels)
	}
	if got := *c.Limits["mqtt"]; got != (limit{Rate: 3, Burst: 7}) {
		t.Errorf("limits.mqtt = %+v, want rate from the file and burst kept", got)
	}
	if len(c.Devices) != 1 || c.Devices[0].ID != "c" {
		t.Errorf("devices = %+v, want only c", c.Devices)
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "---\n", "~\n", "---\n...\n"} {
		c := config{common: common{Site: "unchanged"}}
		doc, errs := yamlpos.Decode("f", []byte(in), &c, yamlpos.Options{})
		if len(errs) > 0 || c.Site != "unchanged" || doc == nil {
			t.Errorf("Decode(%q): errors %v, site %q", in, errs, c.Site)
		}
	}
}

func TestDecodeAliasesAndMerges(t *testing.T) {
	in := `
defaults: &defaults
  driver: bme280
  every: 5s
devices:
  - <<: *defaults
    id: t1
  - <<: [{id: ignored, scale: 2}, *defaults]
    id: t2
    every: 1s
uplink: &up {url: tcp://x}
`
	var v struct {
		Defaults yaml.Node `yaml:"defaults"`
		Devices  []device  `yaml:"devices"`
		Uplink   uplink    `yaml:"uplink"`
	}
	if _, errs := yamlpos.Decode("f", []byte(in), &v, yamlpos.Options{}); len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []device{
		{ID: "t1", Driver: "bme280", Every: 5 * time.Second},
		{ID: "t2", Driver: "bme280", Every: time.Second, Scale: 2},
	}
	if !reflect.DeepEqual(v.Devices, want) {
		t.Errorf("devices = %+v, want %+v", v.Devices, want)
	}
}

// scalars has one field of each scalar kind the decoder converts.
type scalars struct {
	I8  int8    `yaml:"i8"`
	I64 int64   `yaml:"i64"`
	U64 uint64  `yaml:"u64"`
	F32 float32 `yaml:"f32"`
	B   bool    `yaml:"b"`
	S   string  `yaml:"s"`
	P   **int   `yaml:"p"`
	D   time.Duration
}

func TestDecodeScalars(t *testing.T) {
	tests := []struct {
		in   string
		want func(s scalars) bool
	}{
		{"i8: -128", func(s scalars) bool { return s.I8 == -128 }},
		{"i8: +127", func(s scalars) bool { return s.I8 == 127 }},
		{"i64: -9223372036854775808", func(s scalars) bool { return s.I64 == math.MinInt64 }},
		{"i64: 0o17", func(s scalars) bool { return s.I64 == 15 }},
		{"i64: 0xFF", func(s scalars) bool { return s.I64 == 255 }},
		{"i64: '-0'", func(s scalars) bool { return s.I64 == 0 }},
		{"u64: 18446744073709551615", func(s scalars) bool { return s.U64 == math.MaxUint64 }},
		{"f32: 1", func(s scalars) bool { return s.F32 == 1 }},
		{"f32: .NaN", func(s scalars) bool { return s.F32 != s.F32 }},
		{"b: False", func(s scalars) bool { return !s.B }},
		{"s: 0x10", func(s scalars) bool { return s.S == "0x10" }},
		{"s: true", func(s scalars) bool { return s.S == "true" }},
		{`s: "tab\there"`, func(s scalars) bool { return s.S == "tab\there" }},
		{"s: |\n  two\n  lines\n", func(s scalars) bool { return s.S == "two\nlines\n" }},
		{"p: 7", func(s scalars) bool { return s.P != nil && *s.P != nil && **s.P == 7 }},
		{"d: 0", func(s scalars) bool { return s.D == 0 }},
		{"d: -1.5h", func(s scalars) bool { return s.D == -90*time.Minute }},
	}
	for _, tc := range tests {
		s := scalars{B: true, D: time.Hour}
		_, errs := yamlpos.Decode("f", []byte(tc.in), &s, yamlpos.Options{})
		if len(errs) > 0 || !tc.want(s) {
			t.Errorf("Decode(%q): errors %v, got %+v", tc.in, errs, s)
		}
	}
}

func TestDecodeScalarErrors(t *testing.T) {
	tests := map[string]string{
		"i8: 128":                   `f:1:5: i8: 128 is out of range for int8 (-128 to 127)`,
		"i8: -129":                  `f:1:5: i8: -129 is out of range for int8 (-128 to 127)`,
		"i64: 9223372036854775808":  `f:1:6: i64: 9223372036854775808 is out of range for int64 (-9223372036854775808 to 9223372036854775807)`,
		"i64: 1_000":                `f:1:6: i64: want an integer, got "1_000"`,
		"i64: -0x10":                `f:1:6: i64: want an integer, got "-0x10"`,
		"i64: 0b101":                `f:1:6: i64: want an integer, got "0b101"`,
		"i64: 1.0":                  `f:1:6: i64: want an integer, got "1.0"`,
		"u64: 18446744073709551616": `f:1:6: u64: 18446744073709551616 is too large`,
		"f32: 1e39":                 `f:1:6: f32: 1e39 is out of range for float32`,
		"f32: Infinity":             `f:1:6: f32: want a number, got "Infinity"`,
		"f32: 0x1p3":                `f:1:6: f32: want a number, got "0x1p3"`,
		"b: on":                     `f:1:4: b: want true or false, got "on" (YAML 1.2 has no yes/no/on/off booleans)`,
		"b: 1":                      `f:1:4: b: want true or false, got "1"`,
		"b: ''":                     `f:1:4: b: want true or false, got ""`,
	}
	for in, want := range tests {
		var s scalars
		if _, errs := yamlpos.Decode("f", []byte(in), &s, yamlpos.Options{}); errs.Error() != want {
			t.Errorf("Decode(%q) = %v, want %s", in, errs, want)
		}
	}
}

func TestDecodeEnv(t *testing.T) {
	in := "site: ${EMPTY}-$${X}-${PORT}$\nuplink:\n  max_inflight: \"${PORT}\"\n"
	var c config
	if _, errs := yamlpos.Decode("f", []byte(in), &c, yamlpos.Options{LookupEnv: testEnv}); len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.Site != "-${X}-8080$" || c.Uplink.MaxInflight != 8080 {
		t.Errorf("site = %q, max_inflight = %d", c.Site, c.Uplink.MaxInflight)
	}
	// Keys are never expanded, and without LookupEnv every variable is unset.
	in = "labels:\n  ${K}: v\n  k: ${V}\n"
	want := `f:3:6: labels.k: environment variable "V" is not set`
	if _, errs := yamlpos.Decode("f", []byte(in), &c, yamlpos.Options{}); errs.Error() != want {
		t.Errorf("errors = %v, want %s", errs, want)
	}
	if _, ok := c.Labels["${K}"]; !ok {
		t.Errorf("labels = %v, want the key ${K} as written", c.Labels)
	}
}

func TestDecodeInlinePointer(t *testing.T) {
	type extra struct {
		Note string `yaml:"note"`
	}
	type withPtr struct {
		Name   string `yaml:"name"`
		*extra `yaml:",inline"`
	}
	type exported struct {
		Name  string     `yaml:"name"`
		Extra *tlsConfig `yaml:",inline"`
	}
	var a withPtr
	_, errs := yamlpos.Decode("f", []byte("note: x\n"), &a, yamlpos.Options{})
	if want := "f:1:1: top level: yamlpos: cannot inline unexported pointer field extra"; errs.Error() != want {
		t.Errorf("errors = %v, want %s", errs, want)
	}
	var b exported
	if _, errs := yamlpos.Decode("f", []byte("name: n\n"), &b, yamlpos.Options{}); len(errs) > 0 || b.Extra != nil {
		t.Errorf("errors %v, extra %v: want no allocation without its keys", errs, b.Extra)
	}
	if _, errs := yamlpos.Decode("f", []byte("ca: c\n"), &b, yamlpos.Options{}); len(errs) > 0 || b.Extra == nil || b.Extra.CA != "c" {
		t.Errorf("errors %v, extra %+v", errs, b.Extra)
	}
}
