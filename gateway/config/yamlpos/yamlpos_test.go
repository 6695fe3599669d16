package yamlpos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// The types below look like Flowgate's configuration, so that the tests and
// the fuzzer exercise every kind of field the real config uses.

type config struct {
	common   `yaml:",inline"`
	LogLevel level             `yaml:"log_level"`
	Uplink   uplink            `yaml:"uplink"`
	Devices  []device          `yaml:"devices"`
	Routes   []route           `yaml:"routes"`
	Labels   map[string]string `yaml:"labels"`
	Limits   map[string]*limit `yaml:"limits"`
	Debug    *bool             `yaml:"debug"`
	Skipped  string            `yaml:"-"`
	internal int               // unexported: the decoder must leave it alone
}

type common struct {
	Site string `yaml:"site"`
}

type uplink struct {
	URL         string        `yaml:"url"`
	ClientID    string        `yaml:"client_id,omitempty"`
	QoS         uint8         `yaml:"qos"`
	MaxInflight int           `yaml:"max_inflight"`
	KeepAlive   time.Duration `yaml:"keep_alive"`
	TLS         *tlsConfig    `yaml:"tls"`
}

type tlsConfig struct {
	CA       string `yaml:"ca"`
	Insecure bool   `yaml:"insecure"`
}

type device struct {
	ID     string        `yaml:"id"`
	Driver string        `yaml:"driver"`
	Addr   uint16        `yaml:"addr"`
	Every  time.Duration `yaml:"every"`
	Scale  float64       `yaml:"scale"`
	Tags   []string      `yaml:"tags"`
	Params yaml.Node     `yaml:"params"`
}

type route struct {
	Match  string   `yaml:"match"`
	Filter string   `yaml:"filter"`
	To     []string `yaml:"to"`
}

type limit struct {
	Rate  float32 `yaml:"rate"`
	Burst int16   `yaml:"burst"`
}

// level is a log level, decoded through encoding.TextUnmarshaler.
type level int

func (l *level) UnmarshalText(text []byte) error {
	for i, name := range []string{"debug", "info", "warn", "error"} {
		if string(text) == name {
			*l = level(i)
			return nil
		}
	}
	return fmt.Errorf("unknown log level %q (want debug, info, warn or error)", text)
}

// env returns a LookupEnv over a fixed set of variables.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var testEnv = env(map[string]string{"BROKER": "tcp://broker:1883", "PORT": "8080", "EMPTY": ""})

const deviceKeys = "id, driver, addr, every, scale, tags, params"

// errorCases are files with mistakes and every problem Decode must report
// for each, in order. FuzzDecode starts from them too.
var errorCases = []struct {
	name string
	in   string
	want []string
}{
	{"unknown key in a list item", `
uplink:
  url: tcp://broker:1883
devices:
  - id: t1
    driver: bme280
  - id: t2
    drivr: bme280
`, []string{`cfg.yaml:8:5: unknown key "drivr" in devices[1] (known: ` + deviceKeys + `)`}},
	{"unknown key at top level", "site: a\nuplinks: {}\n", []string{
		`cfg.yaml:2:1: unknown key "uplinks" at top level (known: site, log_level, uplink, devices, routes, labels, limits, debug)`,
	}},
	{"skipped field is unknown", "Skipped: x\n", []string{
		`cfg.yaml:1:1: unknown key "Skipped" at top level (known: site, log_level, uplink, devices, routes, labels, limits, debug)`,
	}},
	{"integer type error", "uplink:\n  max_inflight: abc\n", []string{
		`cfg.yaml:2:17: uplink.max_inflight: want an integer, got "abc"`,
	}},
	{"mapping for a string", "site:\n  name: x\n", []string{
		`cfg.yaml:2:3: site: want a string, got a mapping`,
	}},
	{"scalar for a list", "devices: t1\n", []string{
		`cfg.yaml:1:10: devices: want a sequence, got "t1"`,
	}},
	{"list for a struct", "uplink: [a]\n", []string{
		`cfg.yaml:1:9: uplink: want a mapping, got a sequence`,
	}},
	{"unset variable", "uplink:\n  url: ${BROKER}\n  client_id: gw-${HOST}\n", []string{
		`cfg.yaml:3:14: uplink.client_id: environment variable "HOST" is not set`,
	}},
	{"bad variables", "site: ${1X}${}\nuplink:\n  url: \"${BROKER\"\n", []string{
		`cfg.yaml:1:7: site: invalid environment variable name "1X" in ${...}`,
		`cfg.yaml:1:7: site: invalid environment variable name "" in ${...}`,
		`cfg.yaml:3:8: uplink.url: "${BROKER" has no closing } (write $${ for a literal ${)`,
	}},
	{"duplicate key", "uplink:\n  url: a\n  qos: 1\n  url: b\n", []string{
		`cfg.yaml:4:3: duplicate key "url" (first at line 2)`,
	}},
	{"scanner syntax error", "uplink:\n  url: a: b\n", []string{
		`cfg.yaml:2:1: mapping values are not allowed in this context`,
	}},
	{"parser syntax error", "site: a\nuplink:\n  url: a\n  - b\n", []string{
		`cfg.yaml:3:1: did not find expected key`,
	}},
	{"unknown anchor", "site: a\nuplink:\n  url: *broker\n", []string{
		`cfg.yaml:3:8: alias *broker refers to an anchor &broker that is not defined before it`,
	}},
	{"yes is not a boolean", "debug: yes\n", []string{
		`cfg.yaml:1:8: debug: want true or false, got "yes" (YAML 1.2 has no yes/no/on/off booleans)`,
	}},
	{"integer ranges", "uplink:\n  qos: 300\ndevices:\n  - addr: -1\n  - addr: 0x10000\n", []string{
		`cfg.yaml:2:8: uplink.qos: 300 is out of range for uint8 (0 to 255)`,
		`cfg.yaml:4:11: devices[0].addr: want a non-negative integer, got "-1"`,
		`cfg.yaml:5:11: devices[1].addr: 0x10000 is out of range for uint16 (0 to 65535)`,
	}},
	{"ambiguous leading zero", "devices:\n  - addr: 0755\n", []string{
		`cfg.yaml:2:11: devices[0].addr: "0755" has a leading zero: write 0o755 for octal, or drop the zero`,
	}},
	{"float and int16", "limits:\n  mqtt:\n    rate: fast\n    burst: 1e3\n", []string{
		`cfg.yaml:3:11: limits.mqtt.rate: want a number, got "fast"`,
		`cfg.yaml:4:12: limits.mqtt.burst: want an integer, got "1e3"`,
	}},
	{"duration without unit", "uplink:\n  keep_alive: 30\ndevices:\n  - every: soon\n", []string{
		`cfg.yaml:2:15: uplink.keep_alive: want a duration such as "1m30s", got "30" (add a unit: ns, us, ms, s, m or h)`,
		`cfg.yaml:4:12: devices[0].every: want a duration such as "1m30s", got "soon"`,
	}},
	{"text unmarshaler error", "log_level: loud\n", []string{
		`cfg.yaml:1:12: log_level: unknown log level "loud" (want debug, info, warn or error)`,
	}},
	{"second document", "site: a\n---\nsite: b\n", []string{
		`cfg.yaml:2:1: a second YAML document starts here; the file must hold only one`,
	}},
	{"top level sequence", "- a\n- b\n", []string{
		`cfg.yaml:1:1: top level: want a mapping, got a sequence`,
	}},
	{"top level scalar", "just text\n", []string{
		`cfg.yaml:1:1: top level: want a mapping, got "just text"`,
	}},
	{"alias cycle", "routes: &r\n  - to: *r\n", []string{
		`cfg.yaml:2:9: alias *r refers to a node that contains it`,
	}},
	{"bad merge", "uplink:\n  <<: not-a-map\n", []string{
		`cfg.yaml:2:7: merge key << needs a mapping or a sequence of mappings, got "not-a-map"`,
	}},
	{"non-scalar key", "labels:\n  ? [a, b]\n  : c\n", []string{
		`cfg.yaml:2:5: mapping keys must be strings, got a sequence`,
	}},
	{"invalid UTF-8", "site: ok\nlabels:\n  é: \xff\n", []string{
		`cfg.yaml:3:6: invalid UTF-8 byte 0xff`,
	}},
	{"control character", "site: \"a\x01\"\n", []string{
		`cfg.yaml:1:9: character U+0001 is not allowed in YAML`,
	}},
	{"UTF-16", "\xff\xfes\x00:\x00", []string{
		`cfg.yaml:1:1: file is UTF-16; save it as UTF-8`,
	}},
	{"alias as a key", "labels:\n  &k a: 1\n  *k : 2\n", []string{
		`cfg.yaml:3:3: duplicate key "a" (first at line 2)`,
	}},
	{"long value shortened", "debug: " + strings.Repeat("é", 40) + "\n", []string{
		`cfg.yaml:1:8: debug: want true or false, got "` + strings.Repeat("é", 30) + `"...`,
	}},
	{"syntax error in a second document", "site: a\n---\nsite: [\n", []string{
		`cfg.yaml:4:1: did not find expected node content`,
	}},
	{"every problem at once, sorted", `
site: [x]
uplink:
  qos: high
  colour: red
devices:
  - id: a
    tags: a
  - every: 5
debug: maybe
`, []string{
		`cfg.yaml:2:7: site: want a string, got a sequence`,
		`cfg.yaml:4:8: uplink.qos: want a non-negative integer, got "high"`,
		`cfg.yaml:5:3: unknown key "colour" in uplink (known: url, client_id, qos, max_inflight, keep_alive, tls)`,
		`cfg.yaml:8:11: devices[0].tags: want a sequence, got "a"`,
		`cfg.yaml:9:12: devices[1].every: want a duration such as "1m30s", got "5" (add a unit: ns, us, ms, s, m or h)`,
		`cfg.yaml:10:8: debug: want true or false, got "maybe"`,
	}},
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			var c config
			_, errs := yamlpos.Decode("cfg.yaml", []byte(tc.in), &c, yamlpos.Options{LookupEnv: testEnv})
			got := strings.Split(errs.Error(), "\n")
			if len(errs) == 0 {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDecodeBadTarget(t *testing.T) {
	var s string
	var nilConfig *config
	for _, target := range []any{nil, config{}, nilConfig, &s, []config{}} {
		_, errs := yamlpos.Decode("cfg.yaml", []byte("site: a\n"), target, yamlpos.Options{})
		want := fmt.Sprintf("cfg.yaml:1:1: yamlpos: Decode needs a non-nil pointer to a struct, got %T", target)
		if errs.Error() != want {
			t.Errorf("Decode(%T) = %q, want %q", target, errs.Error(), want)
		}
	}
}

func TestDecodeUnsupportedTypes(t *testing.T) {
	type odd struct {
		Any   any            `yaml:"any"`
		Ch    chan int       `yaml:"ch"`
		Keys  map[int]string `yaml:"keys"`
		Array [2]int         `yaml:"array"`
		Null  any            `yaml:"null"`
	}
	in := "any: 1\nch: 2\nkeys: {1: a}\narray: [1, 2]\nnull: ~\n"
	want := strings.Join([]string{
		`f:1:6: any: yamlpos cannot decode into Go type interface {}`,
		`f:2:5: ch: yamlpos cannot decode into Go type chan int`,
		`f:3:7: keys: yamlpos cannot decode into Go type map[int]string (map keys must be strings)`,
		`f:4:8: array: yamlpos cannot decode into Go type [2]int`,
	}, "\n")
	var v odd
	if _, errs := yamlpos.Decode("f", []byte(in), &v, yamlpos.Options{}); errs.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", errs, want)
	}
}

func TestDecodeBadStructTypes(t *testing.T) {
	type dupKeys struct {
		A string `yaml:"a"`
		B string `yaml:"a"`
	}
	type inlineScalar struct {
		A string `yaml:",inline"`
	}
	type withBad struct {
		Dup    dupKeys      `yaml:"dup"`
		Inline inlineScalar `yaml:"inline"`
	}
	in := "dup: {a: x}\ninline: {a: x}\n"
	want := strings.Join([]string{
		`f:1:6: dup: yamlpos: Go type yamlpos_test.dupKeys has two fields for key "a"`,
		`f:2:9: inline: yamlpos: field A is ,inline but is not a struct`,
	}, "\n")
	var v withBad
	if _, errs := yamlpos.Decode("f", []byte(in), &v, yamlpos.Options{}); errs.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", errs, want)
	}
}

// lol is a type that can hold arbitrarily nested sequences, which is what a
// "billion laughs" document needs to do damage.
type lol []lol

func TestDecodeBillionLaughs(t *testing.T) {
	var b strings.Builder
	b.WriteString("a: &a [[], [], [], [], [], [], [], [], [], []]\n")
	for c := 'b'; c <= 'i'; c++ {
		prev := string(c - 1)
		fmt.Fprintf(&b, "%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n",
			c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	var v struct {
		A, B, C, D, E, F, G, H, I lol
	}
	start := time.Now()
	_, errs := yamlpos.Decode("f", []byte(b.String()), &v, yamlpos.Options{})
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "aliases expand to more than 100000 nodes") {
		t.Fatalf("errors = %v, want one about too many nodes", errs)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Decode took %v", d)
	}
}

func TestDecodeRepeatedHugeScalar(t *testing.T) {
	in := "a: &a " + strings.Repeat("x", 1<<20) + "\nl: [" + strings.Repeat("*a, ", 200) + "]\n"
	var v struct {
		A string   `yaml:"a"`
		L []string `yaml:"l"`
	}
	_, errs := yamlpos.Decode("f", []byte(in), &v, yamlpos.Options{})
	if !strings.Contains(errs.Error(), "aliases expand to more than 100000 nodes") {
		t.Errorf("errors = %v, want one about too many nodes", errs)
	}
}

// self is a pointer to itself, which only a depth limit stops.
type self *self

func TestDecodeDepthLimit(t *testing.T) {
	var v struct {
		P self `yaml:"p"`
	}
	_, errs := yamlpos.Decode("f", []byte("p: 1\n"), &v, yamlpos.Options{})
	if want := "f:1:4: nested more than 10000 levels deep"; errs.Error() != want {
		t.Errorf("errors = %v, want %s", errs, want)
	}
}

// tree can hold any nest of mappings.
type tree map[string]tree

func TestDecodeMergeAmplification(t *testing.T) {
	for name, item := range map[string]string{"known keys": "t", "unknown keys": "u"} {
		var b strings.Builder
		b.WriteString("a: &a {")
		for i := range 1000 {
			fmt.Fprintf(&b, "k%d: {x: {}}, ", i)
		}
		b.WriteString("}\nl:\n")
		for range 1000 {
			fmt.Fprintf(&b, "  - %s: {<<: *a}\n", item)
		}
		var v struct {
			A tree `yaml:"a"`
			L []struct {
				T tree     `yaml:"t"`
				U struct{} `yaml:"u"`
			} `yaml:"l"`
		}
		_, errs := yamlpos.Decode("f", []byte(b.String()), &v, yamlpos.Options{})
		if !strings.Contains(errs.Error(), "aliases expand to more than 100000 nodes") {
			t.Errorf("%s: %d errors, none about too many nodes", name, len(errs))
		}
	}
}

func TestErrorsFormat(t *testing.T) {
	errs := yamlpos.Errors{
		{File: "a.yaml", Pos: yamlpos.Pos{Line: 1, Col: 2}, Msg: "one"},
		{Pos: yamlpos.Pos{Line: 3, Col: 4}, Msg: "two"},
	}
	if got, want := errs.Error(), "a.yaml:1:2: one\n3:4: two"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errs.Err() == nil {
		t.Error("Err() = nil for two errors")
	}
	if err := (yamlpos.Errors{}).Err(); err != nil {
		t.Errorf("Err() = %v for no errors", err)
	}
	if got := (yamlpos.Pos{Line: 5, Col: 6}).String(); got != "5:6" {
		t.Errorf("Pos.String() = %q", got)
	}
}
