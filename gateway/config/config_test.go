package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// hash is a bcrypt hash (of "demo"); validation only checks its form.
const hash = "$2a$10$kYSwwUecsyLb7S1Gj/nYc.3gpwJ.P35pJU3nqhtckDQbZwFEEKmgq"

const minimal = `ingest:
  topics:
    - {match: devices/+/env, type: env.reading}
uplink:
  url: mqtt://127.0.0.1:1883
`

func noEnv(string) (string, bool) { return "", false }

func problems(t *testing.T, err error) []string {
	t.Helper()
	var errs yamlpos.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not yamlpos.Errors", err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestDefaults(t *testing.T) {
	c, err := Parse("f.yaml", []byte(minimal+"routes:\n  - name: all\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.ID != "flowgate" || c.Broker.Listen != ":1883" || c.Uplink.MaxInflight != 256 ||
		c.Uplink.ClientID != "flowgate-flowgate" || c.Ingest.DeadLetterTopic != "$flowgate/deadletter/{device}" ||
		c.Gateway.ShutdownTimeout != 15*time.Second || c.Broker.AllowAnonymous {
		t.Errorf("defaults: %+v", c)
	}
	if len(c.Routes[0].To) != 1 || c.Routes[0].To[0] != ToUplink {
		t.Errorf("route default destination: %v", c.Routes[0].To)
	}
	if c.UplinkTopic() != "flowgate/flowgate/events/{type}" {
		t.Errorf("uplink topic %q", c.UplinkTopic())
	}
}

// An explicit zero is what the file says, not a cue for the default.
func TestExplicitZeroIsValidated(t *testing.T) {
	_, err := Parse("f.yaml", []byte(minimal+"  max_inflight: 0\n"), noEnv)
	got := problems(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], "f.yaml:6:17: ") || !strings.Contains(got[0], "max_inflight") {
		t.Errorf("got %q", got)
	}
}

func TestValidationPositions(t *testing.T) {
	cfg := `gateway: {id: "a/b"}
broker:
  listen: nowhere
devices:
  - id: d1
    password_hash: plain
  - id: d1
    password_hash: "` + hash + `"
    subscribe: ["a/#/b"]
ingest:
  dead_letter_topic: "dead/{device}/{type}"
  topics:
    - {match: "devices/+/env", type: env.reading}
routes:
  - name: r
    types: [gps.fix]
    to: [cloud]
uplink:
  url: http://x
`
	_, err := Parse("f.yaml", []byte(cfg), noEnv)
	want := []string{
		`f.yaml:1:15: gateway.id: "a/b" must be`,
		`f.yaml:3:11: broker.listen: "nowhere" must be host:port`,
		"f.yaml:6:20: devices[0].password_hash: not a bcrypt hash",
		`f.yaml:7:9: devices[1].id: duplicate device id "d1"`,
		`f.yaml:9:17: devices[1].subscribe[0]: "a/#/b" is not a valid MQTT topic filter`,
		`f.yaml:11:22: ingest.dead_letter_topic: "dead/{device}/{type}" must be a topic name without wildcards, where {device} is the only placeholder`,
		`f.yaml:16:13: routes[0].types[0]: no ingest topic or rule produces event type "gps.fix"`,
		`f.yaml:17:10: routes[0].to[0]: route destination "cloud" must be uplink or local`,
		`f.yaml:19:8: uplink.url: "http://x": scheme "http" is not supported`,
	}
	got := problems(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d: %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestDevicesFile(t *testing.T) {
	dir := t.TempDir()
	devs := "devices:\n  - id: ok\n    password_hash: \"" + hash + "\"\n  - id: bad\n    password_hash: nope\n"
	if err := os.WriteFile(filepath.Join(dir, "devices.yaml"), []byte(devs), 0o600); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(main, []byte(minimal+"devices_file: devices.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(main, noEnv)
	got := problems(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], filepath.Join(dir, "devices.yaml")+":5:20: ") {
		t.Fatalf("got %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "devices.yaml"), []byte(devs[:strings.Index(devs, "  - id: bad")]), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(main, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 1 || c.Devices[0].ID != "ok" || c.Devices[0].TopicPrefix != "devices/ok/" {
		t.Errorf("devices %+v", c.Devices)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/flowgate.yaml", noEnv)
	got := problems(t, err)
	if len(got) != 1 || got[0] != "/nonexistent/flowgate.yaml:1:1: file not found" {
		t.Errorf("got %q", got)
	}
}

// FuzzParse: no input makes the config loader panic, and every problem it
// reports has a position inside the file.
func FuzzParse(f *testing.F) {
	seeds := []string{minimal, "", "gateway: [", "routes:\n  - filter: 'data.x >'\n", "uplink: {url: ${X}}",
		minimal + "routes:\n  - {name: a, to: [local], local_topic: 'a/{subject}'}\n", "devices:\n  - id: \"\\0\"\n",
		"a: &a [*a, *a]\n", "broker:\n  max_packet_bytes: 99999999999999999999\n"}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse("f.yaml", []byte(in), noEnv)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var errs yamlpos.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %v is not a non-empty yamlpos.Errors", err)
		}
		lines := strings.Count(in, "\n") + strings.Count(in, "\r") + 1 // YAML breaks lines on either
		for _, e := range errs {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.Pos.Line > lines+1 {
				t.Fatalf("bad position in %q", e.Error())
			}
		}
	})
}

// check and run must agree: the uplink's own verdict on its options is
// reported at the key it concerns.
func TestUplinkOptionsJudgedByUplink(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{"  keep_alive: 1500ms\n", "f.yaml:6:15: uplink.keep_alive: 1.5s is not a whole number of seconds"},
		{"  topic: a/{nope}\n", "f.yaml:6:10: uplink.topic:"},
		{"  keep_alive: 0s\n", "f.yaml:6:15: uplink.keep_alive: must be positive"},
	} {
		_, err := Parse("f.yaml", []byte(minimal+c.extra), noEnv)
		got := problems(t, err)
		if len(got) != 1 || !strings.HasPrefix(got[0], c.want) {
			t.Errorf("%q: got %q, want prefix %q", c.extra, got, c.want)
		}
	}
}

func TestStoreDir(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "/var/lib/flowgate/outbox"},
		{"  store_dir: data/outbox\n", "/etc/flowgate/data/outbox"},
		{"  store_dir: /srv/outbox\n", "/srv/outbox"},
		{"  store_dir: memory\n", ""},
	} {
		cfg, err := Parse("/etc/flowgate/gw.yaml", []byte(minimal+c.in), noEnv)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if got := cfg.UplinkOptions(nil).StoreDir; got != c.want {
			t.Errorf("%q: store dir %q, want %q", c.in, got, c.want)
		}
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("f.yaml", []byte(minimal+"  store_dir: "+file+"\n"), noEnv)
	if got := problems(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "f.yaml:6:14: uplink.store_dir: ") {
		t.Errorf("a file as store_dir: %q", got)
	}
}

func TestUplinkClassesAndCaps(t *testing.T) {
	dir := t.TempDir()
	cfg := minimal + `  store_dir: store
  max_bytes: 512MiB
  when_full: reject
  replay_rate: 500
  replay_bytes: 1MiB
  classes:
    - {name: alarm}
    - {name: telemetry, ttl: 72h}
routes:
  - {name: hot, class: alarm}
  - {name: rest}
`
	path := filepath.Join(dir, "f.yaml")
	c, err := Parse(path, []byte(cfg), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	o := c.UplinkOptions(nil)
	if o.MaxBytes != 512<<20 || o.WhenFull != "reject" || o.ReplayRate != 500 || o.ReplayBytes != 1<<20 ||
		len(o.Classes) != 2 || o.Classes[1].TTL != 72*time.Hour || o.StoreDir != filepath.Join(dir, "store") {
		t.Errorf("uplink options %+v", o)
	}
	if c.Routes[0].Class != "alarm" {
		t.Errorf("route class %q", c.Routes[0].Class)
	}
}

func TestUplinkClassAndCapErrors(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{minimal + "  classes: []\n", "f.yaml:6:12: uplink.classes: must name at least one class"},
		{minimal + "  classes:\n    - {name: a}\n    - {name: b, ttl: -1s}\n", "f.yaml:8:22: uplink.classes[1].ttl: -1s is negative"},
		{minimal + "  classes:\n    - {name: a}\n    - {name: a}\n", "f.yaml:8:14: uplink.classes[1].name: class \"a\" is listed twice"},
		{minimal + "  max_bytes: 1MiB\n  store_dir: " + os.TempDir() + "\n", "f.yaml:6:14: uplink.max_bytes: 1048576 is below the minimum"},
		{minimal + "  max_bytes: lots\n", "f.yaml:6:14: uplink.max_bytes: \"lots\" is not a size"},
		{minimal + "  when_full: panic\n", "f.yaml:6:14: uplink.when_full: \"panic\" is not drop_oldest or reject"},
		{minimal + "  stall_timeout: 0s\n", "f.yaml:6:18: uplink.stall_timeout: must be positive"},
		{minimal + "  ca_file: ca.pem\n", "f.yaml:6:12: uplink.ca_file: needs a tls:// url"},
		{strings.Replace(minimal, "mqtt://", "tls://", 1) + "  ca_file: missing.pem\n", "f.yaml:6:12: uplink.ca_file:"},
		{minimal + "routes:\n  - {name: r, class: urgent}\n", "f.yaml:7:22: routes[0].class: route \"r\": class \"urgent\" is not one of uplink.classes (alarm, telemetry)"},
		{minimal + "routes:\n  - {name: r, to: [local], local_topic: x, class: alarm}\n", "routes[0].class: route \"r\": class is set but to does not include uplink"},
	} {
		_, err := Parse("f.yaml", []byte(tc.cfg), noEnv)
		if err == nil {
			t.Errorf("%s: no error, want %q", tc.cfg, tc.want)
			continue
		}
		if got := problems(t, err); len(got) != 1 || !strings.Contains(got[0], tc.want) {
			t.Errorf("%s: got %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

// A device's topic prefix may not lie in the internal topics, nor within
// another device's (in the same file or across devices and devices_file);
// each error is at the key (or at the device, for a default prefix).
func TestDeviceTopicPrefixes(t *testing.T) {
	dir := t.TempDir()
	devs := `devices:
  - {id: line-2, password_hash: "` + hash + `", topic_prefix: devices/plant1/line2/}
  - {id: plant1, password_hash: "` + hash + `"}
`
	main := minimal + `devices_file: devices.yaml
devices:
  - {id: sensor-1, password_hash: "` + hash + `", topic_prefix: devices/plant1/}
  - {id: spy, password_hash: "` + hash + `", topic_prefix: flowgate/spy/}
  - {id: other, password_hash: "` + hash + `", topic_prefix: site/a/}
`
	for name, text := range map[string]string{"devices.yaml": devs, "gw.yaml": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Load(filepath.Join(dir, "gw.yaml"), noEnv)
	if err == nil {
		t.Fatal("accepted")
	}
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{
		filepath.Join(dir, "gw.yaml") + `:9:108: devices[1].topic_prefix: topic_prefix "flowgate/spy/" is in the gateway's internal topics`,
		filepath.Join(dir, "devices.yaml") + `:2:111: devices[0].topic_prefix: device "line-2"'s topic prefix "devices/plant1/line2/" lies within device "plant1"'s "devices/plant1/"`,
		filepath.Join(dir, "devices.yaml") + `:3:5: devices[1]: device "plant1"'s topic prefix "devices/plant1/" lies within device "sensor-1"'s`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s\n in %s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 3 {
		t.Errorf("%d problems, want 3:\n%s", n, got)
	}
}
