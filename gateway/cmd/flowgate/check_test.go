package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// runFlowgate runs the real binary and returns stdout, stderr and the exit
// code.
func runFlowgate(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(flowgateBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// badConfig has an unknown key (line 4), a missing devices file (line 5) and
// a filter naming a field that does not exist (line 12).
const badConfig = `# a config with three mistakes
gateway:
  id: gw-x
  colour: blue
devices_file: missing-devices.yaml
ingest:
  topics:
    - match: devices/+/env
      type: env.reading
routes:
  - name: hot
    filter: temprature > 30
uplink:
  url: mqtt://127.0.0.1:1883
`

func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte(badConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runFlowgate(t, "", "check", "-c", path)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	want := []struct{ prefix, contains string }{
		{path + ":4:3: ", `unknown key "colour"`},
		{path + ":5:15: ", "missing-devices.yaml"},
		{path + ":12:13: ", "unknown name temprature"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w.prefix) || !strings.Contains(lines[i], w.contains) {
			t.Errorf("problem %d: %q, want prefix %q containing %q", i, lines[i], w.prefix, w.contains)
		}
	}
	// run refuses the same config before starting anything.
	_, stderr, code = runFlowgate(t, "", "run", "-c", path)
	if code != 1 || !strings.Contains(stderr, `unknown key "colour"`) {
		t.Errorf("run with a bad config: exit %d, stderr %q", code, stderr)
	}
}

// The example configs in configs/ must pass check as they are.
func TestCheckExampleConfigs(t *testing.T) {
	t.Setenv("FLOWGATE_CLOUD_PASSWORD", "x")
	for _, name := range []string{"demo.yaml", "flowgate.yaml", "sensors-pi.yaml"} {
		stdout, stderr, code := runFlowgate(t, "", "check", "-c", "../../../configs/"+name)
		if code != 0 || stdout != "ok\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
	}
}

// posOf returns "LINE:COL" of the first occurrence of sub in text, moved
// on by skip bytes.
func posOf(t *testing.T, text, sub string, skip int) string {
	t.Helper()
	i := strings.Index(text, sub)
	if i < 0 {
		t.Fatalf("%q not in the config", sub)
	}
	i += skip
	line := strings.Count(text[:i], "\n") + 1
	col := i - strings.LastIndex(text[:i], "\n")
	return fmt.Sprintf("%d:%d", line, col)
}

// Mistakes in the sensors of configs/sensors-pi.yaml are reported at
// FILE:LINE:COL, naming the key, with no hardware touched.
func TestCheckSensorMistakes(t *testing.T) {
	t.Setenv("FLOWGATE_CLOUD_PASSWORD", "x")
	example, err := os.ReadFile("../../../configs/sensors-pi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(example)
	for _, edit := range [][2]string{
		{"address: 0x76", "address: 0x40"},
		{"humidity: 1x}", "humidity: 3x}"},
		{"irq_pin: GPIO24", "irq_pn: GPIO24"},
		{"baud: 9600 ", "baud: 9601 "},
		{"calibration: {altitude: 0}", "calibration: {humidity: 0}"},
	} {
		if !strings.Contains(cfg, edit[0]) {
			t.Fatalf("configs/sensors-pi.yaml has no %q", edit[0])
		}
		cfg = strings.Replace(cfg, edit[0], edit[1], 1)
	}
	path := filepath.Join(t.TempDir(), "sensors.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runFlowgate(t, "", "check", "-c", path)
	want := []string{
		path + ":" + posOf(t, cfg, "0x40", 0) + ": sensors[0].address: 0x40: a BME280 answers at 0x76",
		path + ":" + posOf(t, cfg, "3x}", 0) + `: sensors[0].options.oversampling.humidity: "3x" must be off, 1x`,
		path + ":" + posOf(t, cfg, "irq_pn", 0) + `: unknown key "irq_pn"`,
		path + ":" + posOf(t, cfg, "9601", 0) + ": sensors[2].baud: 9601 must be one of",
		path + ":" + posOf(t, cfg, "{humidity: 0}", len("{humidity: ")) + ": sensors[2].calibration.humidity: a nmea sensor has no humidity",
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(lines) != len(want) {
		t.Fatalf("exit %d, %d problems, want 1 and %d:\n%s", code, len(lines), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, lines[i], w)
		}
	}
}

func TestCheckSecretFromEnvironment(t *testing.T) {
	cfg := strings.Replace(badConfig, "  colour: blue\n", "", 1)
	cfg = strings.Replace(cfg, "devices_file: missing-devices.yaml\n", "", 1)
	cfg = strings.Replace(cfg, "temprature", "data.t", 1)
	cfg += "  password: ${FLOWGATE_TEST_SECRET}\n"
	path := filepath.Join(t.TempDir(), "env.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runFlowgate(t, "", "check", "-c", path)
	if code != 1 || !strings.Contains(stderr, path+":13:13: ") || !strings.Contains(stderr, "FLOWGATE_TEST_SECRET") {
		t.Errorf("unset secret: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("FLOWGATE_TEST_SECRET", "hunter2")
	if stdout, stderr, code := runFlowgate(t, "", "check", "-c", path); code != 0 || stdout != "ok\n" {
		t.Errorf("set secret: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestPasswdAndVersion(t *testing.T) {
	stdout, _, code := runFlowgate(t, "s3cret\n", "passwd")
	if code != 0 || !strings.HasPrefix(stdout, "$2a$") {
		t.Fatalf("passwd: exit %d, %q", code, stdout)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(stdout)), []byte("s3cret")); err != nil {
		t.Errorf("passwd hash does not verify: %v", err)
	}
	stdout, _, code = runFlowgate(t, "", "version")
	if code != 0 || !strings.HasPrefix(stdout, "flowgate ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
	for _, cmd := range []string{"run", "check", "passwd", "demo", "version"} {
		_, stderr, code := runFlowgate(t, "", cmd, "-h")
		if code != 0 || !strings.Contains(stderr, "Usage: flowgate "+cmd) {
			t.Errorf("%s -h: exit %d, %q", cmd, code, stderr)
		}
	}
	if _, _, code := runFlowgate(t, "", "check", "-c", "x.yaml", "extra"); code != 2 {
		t.Errorf("stray argument: exit %d, want 2", code)
	}
}
