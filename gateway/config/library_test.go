package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const libProfiles = `profiles:
  reefer:
    event_type: env.reading
    fields:
      temperature: {path: t, unit: degF, decimals: 1}
    samples:
      - payload: '{"t": 41}'
        want: {temperature: 5}
`

const libCatalog = `events:
  env.reading:
    category: raw
    version: 1.0.0
    sla: {class: telemetry}
    schema:
      fields:
        temperature: {type: number, unit: degC, required: true, min: -40, max: 40}
  door.alarm:
    category: derived
    version: "1"
    schema: {fields: {door: {type: string}}}
`

// libConfig writes the main config (minimal plus extra), and the other
// files given by name, into a fresh folder and returns the main file.
func libConfig(t *testing.T, extra string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	main := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(main, []byte(minimal+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return main
}

// wantProblems checks every problem, in order, by prefix: "FILE:LINE:COL:
// key: message" with FILE relative to the config's folder.
func wantProblems(t *testing.T, main string, err error, want []string) {
	t.Helper()
	got := problems(t, err)
	dir := filepath.Dir(main) + string(filepath.Separator)
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], dir)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

func TestLibraryLoads(t *testing.T) {
	main := libConfig(t, "profiles_file: profiles.yaml\ncatalog_file: catalog.yaml\ndevices:\n"+
		"  - {id: r1, password_hash: \""+hash+"\", kind: reefer}\n",
		map[string]string{"profiles.yaml": libProfiles, "catalog.yaml": libCatalog})
	c, err := Load(main, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Library.Profiles.Lookup("reefer"); !ok || p.EventType != "env.reading" {
		t.Errorf("profiles: %v", c.Library.Profiles.Kinds())
	}
	if names := c.Library.Catalog.Names(); len(names) != 2 || c.Devices[0].Kind != "reefer" {
		t.Errorf("catalog %v, device %+v", names, c.Devices[0])
	}
}

// A config without the two files has no library, and devices without a
// kind need none.
func TestLibraryAbsent(t *testing.T) {
	c, err := Parse("f.yaml", []byte(minimal), noEnv)
	if err != nil || c.Library.Profiles != nil || c.Library.Catalog != nil {
		t.Errorf("library %+v, %v", c.Library, err)
	}
}

func TestLibraryMissingFiles(t *testing.T) {
	main := libConfig(t, "profiles_file: nope.yaml\ncatalog_file: gone.yaml\n", nil)
	_, err := Load(main, noEnv)
	wantProblems(t, main, err, []string{
		`gw.yaml:6:16: profiles_file: "nope.yaml": file not found`,
		`gw.yaml:7:15: catalog_file: "gone.yaml": file not found`,
	})
}

// Problems in the profiles file, and between it and the config and the
// catalog, are reported at their keys.
func TestLibraryProfileProblems(t *testing.T) {
	profiles := `profiles:
  reefer:
    event_type: env.reading
    fields:
      temperature: {path: t, unit: degF, decimals: 1}
      colour: {path: c, type: string}
    samples:
      - payload: '{"t": 41, "c": "red"}'
        want: {temperature: 6, colour: red}
  probe:
    fields:
      temperature: {path: t, unit: furlong}
    colour: blue
  nofields:
    format: csv
`
	devs := "devices:\n  - {id: d2, password_hash: \"" + hash + "\", kind: toaster}\n"
	main := libConfig(t, "profiles_file: profiles.yaml\ncatalog_file: catalog.yaml\ndevices_file: devs.yaml\n"+
		"devices:\n  - {id: d1, password_hash: \""+hash+"\", kind: fridge}\n",
		map[string]string{"profiles.yaml": profiles, "catalog.yaml": libCatalog, "devs.yaml": devs})
	// Samples are checked only once the file compiles; here it does not.
	_, err := Load(main, noEnv)
	wantProblems(t, main, err, []string{
		`gw.yaml:10:99: devices[0].kind: unknown kind "fridge" (profiles_file has nofields, probe, reefer)`,
		`profiles.yaml:12:36: profiles.probe.fields.temperature.unit: unknown unit "furlong"`,
		`profiles.yaml:13:5: unknown key "colour" in profiles.probe`,
		`profiles.yaml:15:5: profiles.nofields: fields: declare at least one canonical field`,
		`devs.yaml:2:99: devices[0].kind: unknown kind "toaster"`,
	})

	fixed := strings.Replace(profiles, "furlong", "degC", 1)
	fixed = strings.Replace(fixed, "    colour: blue\n", "", 1)
	fixed = fixed[:strings.Index(fixed, "  nofields:")]
	if err := os.WriteFile(filepath.Join(filepath.Dir(main), "profiles.yaml"), []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(main, noEnv)
	wantProblems(t, main, err, []string{
		`gw.yaml:10:99: devices[0].kind: unknown kind "fridge" (profiles_file has probe, reefer)`,
		`profiles.yaml:6:15: profiles.reefer.fields.colour: catalog entry env.reading has no field colour`,
		`profiles.yaml:8:18: profiles.reefer.samples[0].payload: refused: devices: schema_violation: env.reading: field "colour" is not in the schema`,
		`devs.yaml:2:99: devices[0].kind: unknown kind "toaster"`,
	})
}

// A sample that does not produce what it says is reported at the value it
// says.
func TestLibrarySampleMismatch(t *testing.T) {
	profiles := strings.Replace(libProfiles, "want: {temperature: 5}", "want: {temperature: 6}", 1)
	main := libConfig(t, "profiles_file: profiles.yaml\n", map[string]string{"profiles.yaml": profiles})
	_, err := Load(main, noEnv)
	wantProblems(t, main, err, []string{
		`profiles.yaml:8:29: profiles.reefer.samples[0].want.temperature: temperature is 5, not 6`,
	})
}

// With a catalog, every ingest type must be a raw event type in it, and
// every SLA class an uplink class; a kind needs a profiles_file.
func TestLibraryCatalogProblems(t *testing.T) {
	catalog := strings.Replace(libCatalog, "class: telemetry", "class: express", 1)
	main := libConfig(t, "", map[string]string{"catalog.yaml": catalog})
	cfg := "catalog_file: catalog.yaml\n" +
		"ingest:\n  topics:\n" +
		"    - {match: devices/+/env, type: env.reading}\n" +
		"    - {match: devices/+/gps, type: gps.fix}\n" +
		"    - {match: devices/+/door, type: door.alarm}\n" +
		"devices:\n  - {id: d1, password_hash: \"" + hash + "\", kind: reefer}\n" +
		"uplink: {url: mqtt://127.0.0.1:1883}\n"
	if err := os.WriteFile(main, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(main, noEnv)
	wantProblems(t, main, err, []string{
		`gw.yaml:5:36: ingest.topics[1].type: event type "gps.fix" is not in catalog_file (it has door.alarm, env.reading)`,
		`gw.yaml:6:37: ingest.topics[2].type: event type "door.alarm" is derived in catalog_file; devices publish raw events`,
		`gw.yaml:8:99: devices[0].kind: kind "reefer" needs a profile: set profiles_file`,
		`catalog.yaml:5:18: events.env.reading.sla.class: "express" is not one of uplink.classes (alarm, telemetry)`,
	})
}

// A bad catalog is reported by key, and profiles are not judged against
// it (that would only repeat its problems).
func TestLibraryBadCatalog(t *testing.T) {
	catalog := strings.Replace(libCatalog, "category: raw", "category: raws", 1)
	catalog = strings.Replace(catalog, "type: string}", "type: text}", 1)
	main := libConfig(t, "profiles_file: profiles.yaml\ncatalog_file: catalog.yaml\n",
		map[string]string{"profiles.yaml": libProfiles, "catalog.yaml": catalog})
	_, err := Load(main, noEnv)
	wantProblems(t, main, err, []string{
		`catalog.yaml:3:15: events.env.reading.category: "raws" must be raw, derived or system`,
		`catalog.yaml:12:36: events.door.alarm.schema.fields.door.type: "text" must be number`,
	})
}
