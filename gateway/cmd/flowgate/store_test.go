package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// storeDirOf is the store directory the config at path names.
func storeDirOf(t *testing.T, path string) string {
	t.Helper()
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Uplink.StoreDir
}

// queueReadings starts the gateway on cfg while the cloud is down, has a
// device publish n readings {"n":i} and stops it, leaving them queued.
func queueReadings(t *testing.T, cfg, mqttAddr, httpAddr string, n int) {
	t.Helper()
	g := startGateway(t, cfg, mqttAddr, httpAddr)
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if r := publish(t, dev, "devices/dev-1/env", fmt.Sprintf(`{"n":%d}`, i)); r.ReasonCode >= 0x80 {
			t.Fatalf("publish %d refused: %#x", i, r.ReasonCode)
		}
	}
	waitFor(t, 10*time.Second, "the readings to be enqueued", func() bool {
		return strings.Contains(get(t, "http://"+httpAddr+"/metrics"), fmt.Sprintf("flowgate_uplink_enqueued_total %d", n))
	})
	// The gateway holds the store: every store command refuses.
	for _, cmd := range []string{"check", "quarantine", "salvage"} {
		_, stderr, code := runFlowgate(t, "", "store", cmd, "-c", cfg)
		if code != 1 || !strings.Contains(stderr, "in use by another process") {
			t.Errorf("store %s while the gateway runs: exit %d, %q; want 1 and the store in use", cmd, code, stderr)
		}
	}
	if code := g.stop(t); code != 1 {
		t.Errorf("exit code %d, want 1 with readings left undelivered", code)
	}
}

// deliveredReadings runs the gateway against a cloud that is up and
// returns the n values of "n" that arrive, in arrival order.
func deliveredReadings(t *testing.T, cloud *uplinktest.Mosquitto, cfg, mqttAddr, httpAddr string, n int) []int {
	t.Helper()
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	g := startGateway(t, cfg, mqttAddr, httpAddr)
	defer g.stop(t)
	var ns []int
	for _, m := range got.WaitN(t, n, 20*time.Second) {
		var d struct{ N int }
		if err := json.Unmarshal(decodeEvent(t, m).Data, &d); err != nil {
			t.Fatal(err)
		}
		ns = append(ns, d.N)
	}
	return ns
}

// TestStoreSalvage: a store whose MANIFEST was cut short, which Badger
// would open empty after deleting every table, is reported by `store
// check`, recovered by `store salvage`, and its readings then reach the
// cloud in order.
func TestStoreSalvage(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	cloud.Shutdown()
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, cloud.URL(), mqttAddr, httpAddr, "shutdown_timeout: 10s", "shutdown_timeout: 1s")
	dir := storeDirOf(t, cfg)
	const n = 50
	queueReadings(t, cfg, mqttAddr, httpAddr, n)

	stdout, stderr, code := runFlowgate(t, "", "store", "check", "-c", cfg)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("telemetry    %8d events", n)) || !strings.HasSuffix(stdout, "ok\n") {
		t.Fatalf("store check: exit %d\n%s%s\nwant 0 and %d telemetry events", code, stdout, stderr, n)
	}
	if err := os.Truncate(filepath.Join(dir, "MANIFEST"), 8); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runFlowgate(t, "", "store", "check", "-c", cfg)
	if code != 1 || !strings.Contains(stdout, "not listed in the MANIFEST") || !strings.Contains(stderr, "flowgate store salvage -c "+cfg) ||
		!strings.Contains(stdout, fmt.Sprintf("telemetry    %8d events", n)) {
		t.Errorf("store check of a damaged store: exit %d\n%s%s\nwant 1, what can be recovered, the damage and the salvage command", code, stdout, stderr)
	}
	stdout, stderr, code = runFlowgate(t, "", "store", "salvage", "-c", cfg)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("telemetry    %8d events recovered", n)) {
		t.Fatalf("store salvage: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("store salvage:\n%s", stdout)
	kept, _ := filepath.Glob(dir + ".damaged-*/*.sst")
	if len(kept) == 0 {
		t.Errorf("the damaged store was not kept beside %s", dir)
	}
	if stdout, _, code = runFlowgate(t, "", "store", "check", "-c", cfg); code != 0 || !strings.Contains(stdout, fmt.Sprintf("%8d events", n)) {
		t.Errorf("store check after salvage: exit %d\n%s", code, stdout)
	}

	cloud.Start()
	ns := deliveredReadings(t, cloud, cfg, mqttAddr, httpAddr, n)
	for i, v := range ns[:n] {
		if v != i {
			t.Fatalf("readings arrived as %v, want 0..%d in order", ns, n-1)
		}
	}
}

// TestStoreQuarantine: records damaged on disk are set aside by the
// running gateway, which delivers the rest; `store quarantine` prints them.
func TestStoreQuarantine(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	cloud.Shutdown()
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, cloud.URL(), mqttAddr, httpAddr, "shutdown_timeout: 10s", "shutdown_timeout: 1s")
	dir := storeDirOf(t, cfg)
	const n = 20
	queueReadings(t, cfg, mqttAddr, httpAddr, n)

	// Reading 3 gets a header no version wrote; reading 7 a good header
	// and a packet that does not parse.
	header := binary.BigEndian.AppendUint64([]byte{1}, uint64(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()))
	bad := map[uint64][]byte{4: []byte("\x09not a record"), 8: append(header, 0xff, 0xff, 0xff)}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for seq, v := range bad {
			key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte("r\x09telemetry"), 0), seq)
			if err := txn.Set(key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}

	cloud.Start()
	ns := deliveredReadings(t, cloud, cfg, mqttAddr, httpAddr, n-2)
	if len(ns) != n-2 || ns[3] != 4 || ns[6] != 8 {
		t.Errorf("readings arrived as %v, want all but 3 and 7", ns)
	}
	stdout, stderr, code := runFlowgate(t, "", "store", "quarantine", "-c", cfg)
	if code != 0 {
		t.Fatalf("store quarantine: exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("store quarantine printed %d lines, want 2:\n%s", len(lines), stdout)
	}
	for i, seq := range []uint64{4, 8} {
		var q struct {
			Class    string
			Seq      uint64
			Accepted *time.Time
			Value    []byte
		}
		if err := json.Unmarshal([]byte(lines[i]), &q); err != nil || q.Class != "telemetry" || q.Seq != seq ||
			!bytes.Equal(q.Value, bad[seq]) || (q.Accepted != nil) != (seq == 8) {
			t.Errorf("line %d: %s (%v); want class telemetry, seq %d, the stored value, accepted only if readable", i, lines[i], err, seq)
		}
	}
	if stdout, _, code := runFlowgate(t, "", "store", "check", "-c", cfg); code != 0 || !strings.Contains(stdout, "quarantined         2 records") {
		t.Errorf("store check: exit %d\n%s", code, stdout)
	}
}

func TestStoreUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"store", "-h"}, 0, "Usage: flowgate store COMMAND -c FILE"},
		{[]string{"store", "check", "-h"}, 0, "Usage: flowgate store check -c FILE"},
		{[]string{"store", "salvage", "-h"}, 0, "Usage: flowgate store salvage -c FILE"},
		{[]string{"store"}, 2, "Commands:"},
		{[]string{"store", "repair"}, 2, `unknown command "repair"`},
		{[]string{"store", "check"}, 2, "Usage: flowgate store check"},
		{[]string{"-h"}, 0, "flowgate store check|quarantine|salvage -c FILE"},
	} {
		stdout, stderr, code := runFlowgate(t, "", c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.want) {
			t.Errorf("flowgate %v: exit %d\n%s%s\nwant %d and %q", c.args, code, stdout, stderr, c.code, c.want)
		}
	}
	cfg := testConfig(t, "mqtt://127.0.0.1:1", uplinktest.FreeAddr(t), uplinktest.FreeAddr(t))
	memory := strings.Replace(readFile(t, cfg), "store_dir: ", "store_dir: memory\n  # ", 1)
	if err := os.WriteFile(cfg, []byte(memory), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runFlowgate(t, "", "store", "check", "-c", cfg); code != 1 || !strings.Contains(stderr, "no store on disk") {
		t.Errorf("store check with store_dir memory: exit %d, %q", code, stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
