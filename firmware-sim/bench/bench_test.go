package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is two folders up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func needMosquitto(t *testing.T) {
	t.Helper()
	if _, err := findMosquitto(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err, "(CI is set, so this fails rather than skips)")
		}
		t.Skip(err)
	}
}

// TestShortRun runs the whole harness at its short size against the real
// flowgate binary and mosquitto: every row is there with a figure, nothing
// is lost, the profiles are written, the outbox rows come from the Go
// benchmark output, and every process it started is gone afterwards. It
// proves the harness works, not the speed.
func TestShortRun(t *testing.T) {
	needMosquitto(t)
	if testing.Short() {
		t.Skip("builds the flowgate binary")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	bin, sim := filepath.Join(dir, "flowgate"), filepath.Join(dir, "flowgate-sim")
	build := exec.Command("go", "build", "-o", dir, "./gateway/cmd/flowgate", "./firmware-sim/cmd/flowgate-sim")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gobench := filepath.Join(dir, "gobench.txt")
	if err := os.WriteFile(gobench, []byte(sampleGoBench), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Short()
	o.Flowgate, o.Sim, o.Config = bin, sim, filepath.Join(root, "configs", "bench", "flowgate.yaml")
	o.Dir, o.GoBench, o.ProfileDir = filepath.Join(dir, "work"), gobench, filepath.Join(dir, "profiles")
	if err := os.Mkdir(o.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o.Log = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	var out bytes.Buffer
	rep.Markdown(&out)
	t.Logf("\n%s", out.String())
	for _, want := range []string{"RSS idle", "ingest, round 1: QoS 1", "ingest: median ratio", "latency device → cloud at 500 msg/s, 10 devices, p99 ", "the same runs, messages sent after the first 200ms, p99 ",
		"RSS, largest sample, 20 devices", "messages lost, every run above | 0 | 0 |", "messages lost, mochi alone, every run above (",
		"RSS idle, no device, 200ms after start: mochi alone |", "mapped files, its binary first: idle, flowgate ",
		"messages sent after the first 200ms: mochi alone, device → broker → subscriber, p99 |", "each for 1s: mochi alone |", "outbox: durable enqueues (group commit), nothing delivered: each spills an older one into Badger | 42,982/s | 66,318/s | 0.65× | ≥ 100,000/s | **no** |",
		"the journal alone: room for every event, nothing spills (nor is acknowledged) | 104,512/s | 66,318/s | 1.58× | ≥ 100,000/s | yes |",
		"without the journal (every event into Badger) | 32,998/s | 66,318/s | 0.50× |",
		"window 256 | 22,115/s | 28,675/s | 0.77× | ≥ 20,000/s | yes |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, r := range rep.Rows {
		if r.Value == "" || r.Reference == "" || r.Ratio == "" || r.Met == "" || strings.HasPrefix(r.Value, "0/s") || r.Value == "0.00 ms" {
			t.Errorf("row without a figure: %+v", r)
		}
	}
	for _, f := range []string{"flowgate-ingest-cpu.pprof", "flowgate-ingest-heap.pprof"} {
		if fi, err := os.Stat(filepath.Join(o.ProfileDir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
	// The latency and footprint runs are on fresh brokers: not the
	// processes that queued an earlier run's backlog.
	for _, who := range []string{"mosquitto", "mochi alone"} {
		latency, foot := runPID(t, progress.String(), "latency at 500/s "+who), runPID(t, progress.String(), "footprint 20 devices "+who)
		if latency == foot {
			t.Errorf("%s: the footprint ran on the latency run's process (pid %d)", who, foot)
		}
	}
	if ingest, latency := runPID(t, progress.String(), "ingest round 1 mosquitto"), runPID(t, progress.String(), "latency at 500/s mosquitto"); ingest == latency {
		t.Errorf("mosquitto: the latency run ran on the ingest's process (pid %d)", ingest)
	}
	if strings.Contains(progress.String(), "ingest round 1 mochi") {
		t.Error("mochi alone ran the ingest")
	}
	// Every process the harness started is stopped: their pids (logged as
	// they were sampled) no longer run as children of this test.
	for _, p := range childPIDs(t) {
		t.Errorf("process %d still running after Run", p)
	}

	// One phase alone: its rows and no others; an unknown phase is refused.
	o.Only, o.Dir, o.GoBench, o.ProfileDir = []string{"latency"}, "", "", ""
	if rep, err = Run(ctx, o); err != nil {
		t.Fatalf("-only latency: %v\nprogress:\n%s", err, progress.String())
	}
	out.Reset()
	rep.Markdown(&out)
	if s := out.String(); !strings.Contains(s, "latency device → cloud") || strings.Contains(s, "ingest") || strings.Contains(s, "RSS") {
		t.Errorf("-only latency reported:\n%s", s)
	}
	o.Only = []string{"latency", "warp"}
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), `no phase "warp"`) {
		t.Errorf("-only with an unknown phase: %v", err)
	}
}

// runPID is the broker's pid the progress log gives for a run.
func runPID(t *testing.T, progress, run string) int {
	t.Helper()
	_, rest, ok := strings.Cut(progress, run+" (pid ")
	pid, _, _ := strings.Cut(rest, ")")
	if !ok || atoi(pid) == 0 {
		t.Fatalf("no pid for %q in the progress log:\n%s", run, progress)
	}
	return atoi(pid)
}

// childPIDs lists this process's children still running (not zombies).
func childPIDs(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/task/" + itoa(os.Getpid()) + "/children")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid := atoi(f)
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

const sampleGoBench = `goos: linux
goarch: amd64
pkg: github.com/flowgate/flowgate/uplink
BenchmarkDurableEnqueue/journal-2         	  100000	     23265 ns/op	     42982 events/s	        32.00 events/sync	       358.0 B/event	    3998 B/op	      35 allocs/op
BenchmarkDurableEnqueue/badger-2          	  100000	     30305 ns/op	     32998 events/s	        32.00 events/sync	       358.0 B/event	    4860 B/op	      38 allocs/op
BenchmarkDurableEnqueue/hot-2             	  100000	      9568 ns/op	    104512 events/s	        32.00 events/sync	       358.0 B/event	    2998 B/op	      30 allocs/op
BenchmarkRawBadgerBatch/explicit-2         	  100000	     15079 ns/op	     66318 events/s	    2230 B/op	      15 allocs/op
BenchmarkDrainBacklog/window=20/uplink-2   	       1	53936465000 ns/op	     18540 events/s	   21818 B/event	125.0 allocs/event
BenchmarkDrainBacklog/window=20/paho_memory-2   	       1	38580000000 ns/op	     25920 events/s
BenchmarkDrainBacklog/window=256/uplink-2  	       1	45218000000 ns/op	     22115 events/s
BenchmarkDrainBacklog/window=256/paho_memory-2  	       1	34873000000 ns/op	     28675 events/s
PASS
ok  	github.com/flowgate/flowgate/uplink	300.1s
`

func TestParseGoBench(t *testing.T) {
	g, err := parseGoBench(strings.NewReader(sampleGoBench + "BenchmarkBroken-2 x 1 ns/op\nBenchmarkOdd-2 1 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := g.value("BenchmarkDurableEnqueue/journal", "events/s"); !ok || v != 42982 {
		t.Errorf("enqueue %v %v", v, ok)
	}
	if v, ok := g.value("BenchmarkDrainBacklog/window=20/uplink", "allocs/event"); !ok || v != 125 {
		t.Errorf("allocs %v %v", v, ok)
	}
	if _, ok := g["BenchmarkBroken"]; ok || len(g) != 8 {
		t.Errorf("parsed %d benchmarks: %v", len(g), g)
	}
}

// FuzzParseGoBench: any text parses without panicking.
func FuzzParseGoBench(f *testing.F) {
	f.Add(sampleGoBench)
	f.Add("BenchmarkX-2 1 2 ns/op\n")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := parseGoBench(strings.NewReader(s))
		if err == nil {
			for name := range g {
				if !strings.HasPrefix(name, "Benchmark") {
					t.Errorf("name %q", name)
				}
			}
		}
	})
}

func TestMedianAndFormat(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median %v", m)
	}
	if s := rate(1234567.4); s != "1,234,567/s" {
		t.Errorf("rate %q", s)
	}
	if s := thousands(-1000); s != "-1,000" {
		t.Errorf("thousands %q", s)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
