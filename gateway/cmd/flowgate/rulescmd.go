package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/flowgate/flowgate/rules"
)

const rulesUsage = `Usage: flowgate rules test -r RULES.yaml [-r MORE.yaml] -i READINGS.jsonl [-expect EXPECTED.jsonl]

Replays recorded readings (JSON lines: CloudEvents, of which time, type and
data are required) through rules on a virtual clock, so a day of event time
takes well under a second, and prints the notable events as JSON lines. With
-expect, prints the difference from the expected lines instead and exits 1
if there is any.

Flags:
`

// cmdRules runs "flowgate rules SUBCOMMAND".
func cmdRules(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		if len(args) > 0 && exitCode(args[0]) == 0 {
			fmt.Fprint(stdout, rulesUsage)
			return 0
		}
		fmt.Fprint(stderr, rulesUsage)
		return 2
	}
	fs := flag.NewFlagSet("flowgate rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files []string
	fs.Func("r", "rules `FILE` (YAML); repeat for several", func(s string) error { files = append(files, s); return nil })
	input := fs.String("i", "", "readings `FILE` (JSON lines); - for stdin")
	expect := fs.String("expect", "", "expected notable events `FILE` (JSON lines)")
	lateness := fs.Duration("lateness", 0, "allowed lateness: how far out of order a source's readings may be")
	idle := fs.Duration("idle", 30*time.Second, "idle timeout: how long a quiet source holds back windows")
	until := fs.String("until", "0s", "run the clock on this long past the newest reading (e.g. 8h, 2d)")
	fs.Usage = func() { fmt.Fprint(stderr, rulesUsage); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if len(files) == 0 || *input == "" {
		fs.Usage()
		return 2
	}
	untilD, err := rules.ParseDuration(*until)
	if err != nil {
		fmt.Fprintf(stderr, "flowgate: -until: %v\n", err)
		return 2
	}
	set, errs := rules.LoadFiles(files, rules.Known{})
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		return 1
	}
	in := io.Reader(os.Stdin)
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			fmt.Fprintf(stderr, "flowgate: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	var out []byte
	opts := rules.ReplayOptions{AllowedLateness: *lateness, IdleTimeout: *idle, Until: untilD, Source: "/gateways/replay"}
	if err := rules.Replay(set, bufio.NewReader(in), opts, func(d rules.Derived) { out = d.AppendLine(out) }); err != nil {
		fmt.Fprintf(stderr, "flowgate: %v\n", err)
		return 1
	}
	if *expect == "" {
		stdout.Write(out)
		return 0
	}
	want, err := os.ReadFile(*expect)
	if err != nil {
		fmt.Fprintf(stderr, "flowgate: %v\n", err)
		return 1
	}
	if diff := diffLines(want, out); diff != "" {
		fmt.Fprint(stdout, diff)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d notable events as expected\n", bytes.Count(out, []byte("\n")))
	return 0
}

// diffLines compares JSON lines by meaning (key order and spacing do not
// matter), in order, and describes the lines that differ.
func diffLines(want, got []byte) string {
	w, g := jsonLines(want), jsonLines(got)
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		switch {
		case i >= len(g):
			fmt.Fprintf(&b, "missing  %d: %s\n", i+1, w[i])
		case i >= len(w):
			fmt.Fprintf(&b, "extra    %d: %s\n", i+1, g[i])
		case w[i] != g[i]:
			fmt.Fprintf(&b, "expected %d: %s\ngot      %d: %s\n", i+1, w[i], i+1, g[i])
		}
	}
	return b.String()
}

// jsonLines returns each non-blank line re-encoded canonically (sorted keys).
func jsonLines(b []byte) []string {
	var out []string
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			out = append(out, string(line))
			continue
		}
		c, _ := json.Marshal(v)
		out = append(out, string(c))
	}
	return out
}
