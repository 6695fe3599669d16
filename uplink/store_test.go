package uplink_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// offline is a broker URL nothing listens on.
const offline = "mqtt://127.0.0.1:1"

// closeOK closes u with a deadline and returns Close's error.
func closeOK(t testing.TB, u *uplink.Uplink) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return u.Close(ctx)
}

func TestStoreKeepsEventsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	evs := makeEvents(2500) // more than one read-ahead window
	first := newUplink(t, uplink.Options{URL: offline, StoreDir: dir})
	enqueueAll(t, first, evs[:2000]) // no Run: nothing is delivered
	if s := first.Stats(); s.Queued != 2000 || s.Enqueued != 2000 || s.Syncs == 0 {
		t.Fatalf("Stats = %+v, want 2000 queued and enqueued, and syncs", s)
	}
	err := closeOK(t, first)
	if !errors.Is(err, uplink.ErrUndelivered) || !strings.Contains(err.Error(), "2000 ") ||
		!strings.Contains(err.Error(), dir) {
		t.Fatalf("Close: %v, want ErrUndelivered saying 2000 are kept in %s", err, dir)
	}

	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	second := newUplink(t, uplink.Options{URL: m.URL(), StoreDir: dir})
	if err := second.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if s := second.Stats(); s.Queued != 2000 {
		t.Fatalf("after reopening: Stats = %+v, want 2000 queued", s)
	}
	enqueueAll(t, second, evs[2000:2200]) // before Run: after the backlog
	run(t, second)
	enqueueAll(t, second, evs[2200:]) // live

	checkDelivered(t, evs, c.WaitN(t, len(evs), waitTimeout))
	eventually(t, "every event acknowledged", func() bool { return second.Stats().Queued == 0 })
	if err := closeOK(t, second); err != nil {
		t.Fatalf("Close after delivering everything: %v", err)
	}

	third := newUplink(t, uplink.Options{URL: offline, StoreDir: dir})
	if err := third.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if s := third.Stats(); s.Queued != 0 {
		t.Errorf("after delivery and a restart: Stats = %+v, want nothing queued", s)
	}
	if err := closeOK(t, third); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// crashEnv names the store directory of the helper process that
// TestStoreSurvivesKill starts and kills.
const crashEnv = "UPLINK_CRASH_STORE"

// TestStoreSurvivesKill runs enqueuers in a child process, kills it with
// SIGKILL while they run, and checks that every event whose Enqueue
// returned is delivered after a restart, in order per source.
func TestStoreSurvivesKill(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the helper process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	accepted := readAccepted(t, cmd, out, 3000)
	t.Logf("%d events accepted before SIGKILL", len(accepted))

	m := uplinktest.StartMosquitto(t)
	c := uplinktest.Subscribe(t, m.URL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL(), StoreDir: dir})
	run(t, u)
	eventually(t, "the backlog delivered", func() bool { s := u.Stats(); return s.Forwarded > 0 && s.Queued == 0 })
	// Acknowledged by the broker is not yet received by the subscriber.
	checkSurvivors(t, accepted, c.WaitN(t, int(u.Stats().Forwarded), waitTimeout))
}

// readAccepted reads the ids the helper reports accepted until it has
// reported n, kills it, and returns every id reported on a complete line.
func readAccepted(t *testing.T, cmd *exec.Cmd, out io.Reader, n int) []string {
	t.Helper()
	var ids []string
	r := bufio.NewReader(out)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // EOF after the kill; a line cut short by it does not count
		}
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "accepted "); ok {
			ids = append(ids, id)
		}
		if len(ids) >= n && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill helper: %v", err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("helper exited after reporting %d of %d events", len(ids), n)
	}
	return ids
}

// checkSurvivors checks that every accepted id arrived, and that each
// source's events first arrived in the order they were enqueued.
func checkSurvivors(t *testing.T, accepted []string, msgs []uplinktest.Message) {
	t.Helper()
	arrived := make(map[string]bool)
	last := make(map[string]int) // source → index of its latest first arrival
	for _, id := range ids(msgs) {
		if arrived[id] {
			continue
		}
		arrived[id] = true
		src, i := splitCrashID(t, id)
		if prev, ok := last[src]; ok && i < prev {
			t.Errorf("source %s: event %d arrived after event %d", src, i, prev)
		}
		last[src] = i
	}
	for _, id := range accepted {
		if !arrived[id] {
			t.Fatalf("event %s was accepted before the kill but never delivered (%d of %d accepted arrived)",
				id, countArrived(accepted, arrived), len(accepted))
		}
	}
}

func countArrived(ids []string, arrived map[string]bool) int {
	n := 0
	for _, id := range ids {
		if arrived[id] {
			n++
		}
	}
	return n
}

func splitCrashID(t *testing.T, id string) (string, int) {
	src, n, ok := strings.Cut(id, "-")
	i, err := strconv.Atoi(n)
	if !ok || err != nil {
		t.Fatalf("unexpected id %q", id)
	}
	return src, i
}

// TestCrashHelper is the process TestStoreSurvivesKill kills: four sources
// enqueue as fast as they can, each printing "accepted ID" once Enqueue
// has returned.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("run by TestStoreSurvivesKill")
	}
	u, err := uplink.New(uplink.Options{URL: offline, Topic: testTopic, StoreDir: dir, QueueSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				ev := crashEvent(fmt.Sprintf("s%d", g), i)
				if err := u.Enqueue(context.Background(), ev); err != nil {
					fmt.Fprintf(os.Stderr, "enqueue %s: %v\n", ev.ID, err)
					return
				}
				mu.Lock()
				fmt.Printf("accepted %s\n", ev.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait() // until killed
}

func crashEvent(src string, i int) *event.Event {
	return &event.Event{
		ID:              fmt.Sprintf("%s-%d", src, i),
		Source:          "/gateways/gw1/devices/" + src,
		Type:            "env.reading",
		Subject:         src,
		Time:            time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		Data:            json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i)),
	}
}

func TestGroupCommitShareSyncs(t *testing.T) {
	u := newUplink(t, uplink.Options{URL: offline, StoreDir: t.TempDir()})
	const workers, each = 100, 20
	evs := makeEvents(workers * each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { enqueueAll(t, u, evs[w*each:(w+1)*each]) })
	}
	wg.Wait()
	s := u.Stats()
	if s.Enqueued != workers*each || s.Queued != workers*each {
		t.Fatalf("Stats = %+v, want %d enqueued and queued", s, workers*each)
	}
	if s.Syncs == 0 || s.Syncs > workers*each/5 {
		t.Errorf("%d events took %d syncs; want at least 5 events a sync", s.Enqueued, s.Syncs)
	}
	if c := s.CommitTimes; c.Count != s.Syncs || c.Counts[len(c.Counts)-1] > c.Count || c.Sum <= 0 {
		t.Errorf("CommitTimes = %+v, want each of the %d syncs timed", c, s.Syncs)
	}
	t.Logf("%d events, %d syncs (%.1f events a sync), %d slow", s.Enqueued, s.Syncs,
		float64(s.Enqueued)/float64(s.Syncs), s.SlowCommits)
	_ = closeOK(t, u)
}

func TestStoreOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"regular file": file}
	if os.Geteuid() != 0 { // root reads anything
		locked := filepath.Join(t.TempDir(), "locked")
		if err := os.Mkdir(locked, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(locked, 0o700) })
		cases["unreadable directory"] = locked
	}
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			u := newUplink(t, uplink.Options{URL: offline, StoreDir: dir})
			want := "uplink: open store " + dir + ": "
			if err := u.Open(); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("Open: %v, want an error starting %q", err, want)
			}
			if err := u.Enqueue(context.Background(), makeEvents(1)[0]); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Enqueue: %v, want an error starting %q", err, want)
			}
			if err := u.Run(context.Background()); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Run: %v, want an error starting %q", err, want)
			}
			if err := closeOK(t, u); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file in the way was changed: %q, %v", b, err)
	}
}

func TestStoreClosedAfterClose(t *testing.T) {
	dir := t.TempDir()
	u := newUplink(t, uplink.Options{URL: offline, StoreDir: dir})
	if err := closeOK(t, u); err != nil { // never opened
		t.Fatalf("Close: %v", err)
	}
	if err := u.Open(); !errors.Is(err, uplink.ErrClosed) {
		t.Errorf("Open after Close: %v, want ErrClosed", err)
	}
	if err := u.Enqueue(context.Background(), makeEvents(1)[0]); !errors.Is(err, uplink.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
	// The directory lock was never taken, or was released: another opens it.
	other := newUplink(t, uplink.Options{URL: offline, StoreDir: dir})
	if err := other.Open(); err != nil {
		t.Errorf("Open by another uplink: %v", err)
	}
	_ = closeOK(t, other)
	_ = closeOK(t, other) // twice
}
