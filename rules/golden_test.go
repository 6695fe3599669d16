package rules

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/*/expected.jsonl")

// caseOptions is a golden case's options.yaml.
type caseOptions struct {
	AllowedLateness Duration `yaml:"allowed_lateness"`
	IdleTimeout     Duration `yaml:"idle_timeout"`
	Until           Duration `yaml:"until"`
}

// TestGolden replays every testdata/<case>/input*.jsonl through the case's
// rules.yaml and compares the output with expected.jsonl. Every input of a
// case (a sorted one and shuffled ones) must give the same output.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/rules.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, rf := range dirs {
		dir := filepath.Dir(rf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			set, errs := LoadFiles([]string{rf}, Known{})
			if len(errs) > 0 {
				t.Fatalf("rules: %v", errs)
			}
			opts := readCaseOptions(t, dir)
			others, _ := filepath.Glob(filepath.Join(dir, "input?*.jsonl"))
			inputs := append([]string{filepath.Join(dir, "input.jsonl")}, others...)
			expected := filepath.Join(dir, "expected.jsonl")
			for _, in := range inputs {
				got := replayFile(t, set, in, opts)
				if *update && filepath.Base(in) == "input.jsonl" {
					if err := os.WriteFile(expected, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(expected)
				if err != nil {
					t.Fatalf("%v (run go test ./rules -run TestGolden -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: output differs from expected.jsonl\n%s", filepath.Base(in), lineDiff(string(want), string(got)))
				}
				// A restart (checkpoint, then restore into a new engine)
				// after any input changes nothing.
				for _, every := range []int{1, 3} {
					o := opts
					o.restartEvery = every
					if got := replayFile(t, set, in, o); !bytes.Equal(got, want) {
						t.Errorf("%s, restarting every %d inputs: output differs\n%s", filepath.Base(in), every, lineDiff(string(want), string(got)))
					}
				}
			}
		})
	}
}

func readCaseOptions(t *testing.T, dir string) ReplayOptions {
	t.Helper()
	var o caseOptions
	if data, err := os.ReadFile(filepath.Join(dir, "options.yaml")); err == nil {
		if _, errs := yamlpos.Decode("options.yaml", data, &o, yamlpos.Options{}); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	return ReplayOptions{AllowedLateness: o.AllowedLateness.D(), IdleTimeout: o.IdleTimeout.D(),
		Until: o.Until.D(), Source: "/gateways/replay"}
}

func replayFile(t *testing.T, set *RuleSet, path string, opts ReplayOptions) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []byte
	if err := Replay(set, f, opts, func(d Derived) { out = d.AppendLine(out) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	for _, l := range w {
		if l != "" && !in(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if l != "" && !in(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}
