package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// startTarget is the design target: with a million events queued, devices
// can connect within 2 s of the gateway's start (DESIGN.md).
const startTarget = 2 * time.Second

// TestStartWithBacklog starts the real flowgate binary on a store holding a
// million events (FLOWGATE_BENCH_BACKLOG changes the number), with the
// cloud unreachable, and measures the time from starting the process to a
// device's CONNACK from the embedded broker, and the memory resident then.
// It starts the gateway three times on the same store: the first start is
// the first open after the store was filled.
//
// It takes about a minute (filling the store is most of it), so it runs
// only with FLOWGATE_BACKLOG_TEST=1, as `make bench` sets it. The binary is
// built as `make build` builds it, not with the race detector that the
// other tests here use, which would slow the start several times over. The
// store was just written, so it is in the page cache: a warm start.
func TestStartWithBacklog(t *testing.T) {
	if os.Getenv("FLOWGATE_BACKLOG_TEST") == "" {
		t.Skip("set FLOWGATE_BACKLOG_TEST=1 to run (make bench does): fills a store with a million events")
	}
	n := backlogEvents(t)
	bin := buildPlain(t)
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cloudURL := "mqtt://" + uplinktest.FreeAddr(t) // nothing listens there
	cfg := testConfig(t, cloudURL, mqttAddr, httpAddr,
		"shutdown_timeout: 10s", "shutdown_timeout: 1s",
		"level: debug", "level: info",
		// Room for the backlog and then some, whatever the default.
		"topic: cloud/{gateway}/{type}/{subject}",
		fmt.Sprintf("topic: cloud/{gateway}/{type}/{subject}\n  queue_size: %d", 2*n))
	opts := gatewayUplinkOptions(t, cfg)

	// The reference: the same config with an empty store.
	t.Logf("reference, start with an empty store: %s", startUntilConnack(t, bin, cfg, mqttAddr, httpAddr, 0))

	fillStore(t, opts, n)
	for run := 1; run <= 3; run++ {
		s := startUntilConnack(t, bin, cfg, mqttAddr, httpAddr, n)
		t.Logf("start %d with %d queued: %s", run, n, s)
		if s.took > startTarget {
			t.Errorf("start %d: devices could connect only %v after the start, want within %v", run, s.took, startTarget)
		}
	}
	if got := storeQueued(t, opts); got != n {
		t.Errorf("the store holds %d events after the starts, want %d", got, n)
	}
}

// backlogEvents is FLOWGATE_BENCH_BACKLOG, or a million.
func backlogEvents(t *testing.T) int {
	s := os.Getenv("FLOWGATE_BENCH_BACKLOG")
	if s == "" {
		return 1_000_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("FLOWGATE_BENCH_BACKLOG=%q: want a positive number of events", s)
	}
	return n
}

// buildPlain builds flowgate without the race detector.
func buildPlain(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "flowgate")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// gatewayUplinkOptions are the uplink options the gateway derives from the
// config at path: its store, topic, classes and caps.
func gatewayUplinkOptions(t *testing.T, path string) uplink.Options {
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.UplinkOptions(slog.New(slog.DiscardHandler))
}

// fillStore enqueues n readings of about 300 bytes from two devices into
// the store of opts, from 256 goroutines so that many share each sync, and
// closes it. Run is never called: nothing is sent.
func fillStore(t *testing.T, opts uplink.Options, n int) {
	u, err := uplink.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && failed.Load() == nil; i = int(next.Add(1)) - 1 {
				if err := u.Enqueue(context.Background(), reading(i)); err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("filling the store: %v", *err)
	}
	if got := u.Stats().Queued; got != n {
		t.Fatalf("%d events queued after filling, want %d", got, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := u.Close(ctx); !errors.Is(err, uplink.ErrUndelivered) {
		t.Fatalf("Close after filling: %v, want ErrUndelivered", err)
	}
	t.Logf("store of %d events filled in %v; %d MB on disk", n, time.Since(start).Round(time.Millisecond), storeMB(t, opts.StoreDir))
}

// reading is event i as the pipeline would make it from a device publish.
func reading(i int) *event.Event {
	dev := fmt.Sprintf("dev-%d", i%2+1)
	return &event.Event{
		ID:              event.NewID(),
		Source:          "/gateways/gw-test/devices/" + dev,
		Type:            "env.reading",
		Subject:         dev,
		Time:            time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		DataContentType: "application/json",
		Data:            json.RawMessage(fmt.Sprintf(`{"temperature":%.1f,"humidity":%d,"seq":%d}`, 15+float64(i%200)/10, 30+i%40, i)),
	}
}

// storeMB is the size of the files in dir, in MB.
func storeMB(t *testing.T, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	return total >> 20
}

// storeQueued opens the store of opts and returns how many events it holds.
func storeQueued(t *testing.T, opts uplink.Options) int {
	u, err := uplink.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Open(); err != nil {
		t.Fatal(err)
	}
	n := u.Stats().Queued
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = u.Close(ctx) // ErrUndelivered: nothing was sent
	return n
}

// startStats is what one start measured.
type startStats struct {
	took    time.Duration    // from starting the process to a device's CONNACK
	mem     map[string]int64 // then: VmRSS, VmHWM, RssAnon and RssFile, in kB
	settled map[string]int64 // the same once the uplink has tried the cloud and /metrics was read
	heap    string           // the Go heap then, from /metrics
}

func (s startStats) String() string {
	return fmt.Sprintf("CONNACK %.0f ms after the process started; then %s; settled %s, Go heap %s",
		s.took.Seconds()*1000, memString(s.mem), memString(s.settled), s.heap)
}

func memString(m map[string]int64) string {
	return fmt.Sprintf("VmRSS %.1f MB (RssAnon %.1f, RssFile %.1f), VmHWM %.1f MB",
		mb(m["VmRSS"]), mb(m["RssAnon"]), mb(m["RssFile"]), mb(m["VmHWM"]))
}

func mb(kB int64) float64 { return float64(kB) / 1024 }

// startUntilConnack starts `flowgate run -c cfg`, polls the broker at addr
// with a device's CONNECT until it answers with a successful CONNACK, notes
// the process's memory, checks the log says n events were queued (if n > 0),
// notes the memory again once settled: the uplink has tried to reach the
// cloud, and /metrics on httpAddr, which reads the outbox, has answered.
// Then it stops the process with SIGTERM.
func startUntilConnack(t *testing.T, bin, cfg, addr, httpAddr string, n int) startStats {
	t.Helper()
	out := &uplinktest.SyncBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // exit 1 is expected: the backlog stays undelivered
		close(exited)
	}()
	defer stopProcess(t, cmd, exited, out)

	deadline := start.Add(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !connackFrom(addr) {
		if time.Now().After(deadline) {
			t.Fatalf("no CONNACK within %v of the start\n%s", 30*time.Second, out.String())
		}
		select {
		case <-exited:
			t.Fatalf("flowgate exited during its start\n%s", out.String())
		case <-tick.C:
		}
	}
	s := startStats{took: time.Since(start), mem: procMemory(t, cmd.Process.Pid)}
	waitFor(t, 10*time.Second, "the uplink's first connection attempt", func() bool {
		return strings.Contains(out.String(), "connect failed")
	})
	metrics := get(t, "http://"+httpAddr+"/metrics")
	s.settled = procMemory(t, cmd.Process.Pid)
	s.heap = fmt.Sprintf("in use %.1f MB of %.1f MB", mb(metric(metrics, "go_memstats_heap_inuse_bytes")>>10),
		mb(metric(metrics, "go_memstats_heap_sys_bytes")>>10))
	if want := fmt.Sprintf("queued=%d", n); n > 0 && !strings.Contains(out.String(), want) {
		t.Errorf("the log does not say the store opened with %s\n%s", want, out.String())
	}
	return s
}

// metric returns the value of an unlabelled metric in a Prometheus text
// exposition, 0 if absent.
func metric(text, name string) int64 {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// connackFrom reports whether a device's CONNECT to addr gets a successful
// CONNACK now.
func connackFrom(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "dev-1-client", Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: "dev-1-client", CleanStart: true, KeepAlive: 30,
		Username: "dev-1", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true})
	if err != nil {
		_ = conn.Close()
		return false
	}
	_ = c.Disconnect(&paho.Disconnect{})
	return ack.ReasonCode == 0
}

// stopProcess sends SIGTERM and waits for the exit, killing the process
// if it does not exit within 15 s.
func stopProcess(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}, out *uplinktest.SyncBuffer) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("flowgate did not exit within 15s of SIGTERM\n%s", out.String())
	}
}

// procMemory returns the memory figures of process pid, in kB, from Linux's
// /proc: VmRSS, VmHWM (the peak of VmRSS), RssAnon and RssFile.
func procMemory(t *testing.T, pid int) map[string]int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory of flowgate: %v", err)
	}
	defer f.Close()
	mem := make(map[string]int64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var key string
		var kB int64
		if _, err := fmt.Sscanf(sc.Text(), "%s %d kB", &key, &kB); err == nil {
			mem[strings.TrimSuffix(key, ":")] = kB
		}
	}
	return mem
}
