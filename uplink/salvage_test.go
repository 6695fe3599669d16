package uplink

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// The records these tests store: "<class>-<n>" with a filler that
// compresses like JSON does, accepted at a time derived from n.
func testRecord(class string, n int) []byte {
	return fmt.Appendf(nil, `{"id":"%s-%06d","source":"/gateways/gw1/devices/truck-%d","data":{"seq":%d,"temp_c":21.5}}`,
		class, n, n%3, n)
}

func testTime(n int) time.Time { return time.UnixMilli(1_750_000_000_000 + int64(n)) }

// fillOutbox appends n records to each lane of o, interleaved, and commits.
func fillOutbox(t *testing.T, o *outbox, n int) {
	t.Helper()
	for i := range n {
		for li, l := range o.lanes {
			if _, err := o.Append(li, testRecord(l.Name, i), testTime(i)); err != nil {
				t.Fatal(err)
			}
		}
		if i%500 == 499 {
			commitAll(t, o)
		}
	}
	commitAll(t, o)
}

// makeStore makes a closed store in a new directory with n records per
// default class, and returns the directory.
func makeStore(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	o := newTestOutbox(t, dir, nil)
	fillOutbox(t, o, n)
	if err := o.db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// crashCopy fills a store and copies its directory while it is open, as a
// power cut would leave it: the last records only in the write-ahead log.
func crashCopy(t *testing.T, n int) string {
	t.Helper()
	o := newTestOutbox(t, t.TempDir(), nil)
	fillOutbox(t, o, n)
	dst := t.TempDir()
	uplinktest.CopyStore(t, o.dir, dst)
	return dst
}

// digest is a hash of every file in dir, to show that dir was not changed.
func digest(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := make(map[string][32]byte)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, _ = io.Copy(h, f)
		f.Close()
		out[e.Name()] = [32]byte(h.Sum(nil))
	}
	return out
}

// salvageOK salvages dir into a new directory and checks that dir did not
// change; it returns the report and the fresh directory.
func salvageOK(t *testing.T, dir string) (SalvageReport, string) {
	t.Helper()
	before := digest(t, dir)
	fresh := filepath.Join(t.TempDir(), "fresh")
	rep, err := Salvage(dir, fresh, nil, logTo(t))
	if err != nil {
		t.Fatalf("Salvage: %v (report %+v)", err, rep)
	}
	if after := digest(t, dir); !mapsEqual(before, after) {
		t.Errorf("Salvage changed %s", dir)
	}
	t.Logf("report: %+v", rep)
	return rep, fresh
}

// logTo logs into the test's output.
func logTo(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mapsEqual(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// walkFresh opens the store in dir as the gateway would and returns, per
// lane, the record numbers it holds in order; it checks records and times.
func walkFresh(t *testing.T, dir string) map[string][]int {
	t.Helper()
	o := newTestOutbox(t, dir, nil)
	defer o.db.Close()
	got := make(map[string][]int)
	total := 0
	for li, l := range o.lanes {
		for from := uint64(0); ; {
			r, ok := o.nextRecord(li, from)
			if !ok {
				break
			}
			rec, at, _ := parseValue(r.val)
			var n int
			if _, err := fmt.Sscanf(string(rec), `{"id":"`+l.Name+`-%06d"`, &n); err != nil ||
				string(rec) != string(testRecord(l.Name, n)) || !at.Equal(testTime(n)) {
				t.Fatalf("class %s: record %q accepted at %v", l.Name, rec, at)
			}
			got[l.Name] = append(got[l.Name], n)
			total++
			from = idSeq(r.id) + 1
		}
	}
	if o.Len() != total {
		t.Errorf("the fresh store counts %d records, holds %d", o.Len(), total)
	}
	return got
}

// checkRun checks that ns is ascending and holds every number in [0, n)
// but those in missing.
func checkRun(t *testing.T, class string, ns []int, n int, missing func(int) bool) {
	t.Helper()
	if !slices.IsSorted(ns) {
		t.Errorf("class %s: out of order: %v", class, ns)
	}
	want := 0
	for i := range n {
		if !missing(i) {
			want++
			if !slices.Contains(ns, i) {
				t.Errorf("class %s: record %d not recovered", class, i)
				return
			}
		}
	}
	if len(ns) != want {
		t.Errorf("class %s: %d records recovered, want %d", class, len(ns), want)
	}
}

func none(int) bool { return false }

func TestSalvageHealthyStore(t *testing.T) {
	dir := makeStore(t, 3000)
	rep, fresh := salvageOK(t, dir)
	if rep.Method != "badger" || len(rep.Problems) != 0 || rep.Unreadable != 0 {
		t.Errorf("report %+v, want everything read through Badger", rep)
	}
	got := walkFresh(t, fresh)
	for _, c := range []string{"alarm", "telemetry"} {
		checkRun(t, c, got[c], 3000, none)
		if rep.Recovered[c] != 3000 {
			t.Errorf("report: %d %s records recovered, want 3000", rep.Recovered[c], c)
		}
	}
}

func TestSalvageTruncatedManifest(t *testing.T) {
	// Badger, even read-only, deletes every table the MANIFEST does not
	// list: opening this store would delete all of it.
	dir := makeStore(t, 3000)
	if err := os.Truncate(filepath.Join(dir, "MANIFEST"), 8); err != nil {
		t.Fatal(err)
	}
	rep, fresh := salvageOK(t, dir)
	if rep.Method != "files" || !hasProblem(rep.Problems, "not listed in the MANIFEST") {
		t.Errorf("report %+v, want the files read directly, tables reported unlisted", rep)
	}
	got := walkFresh(t, fresh)
	for _, c := range []string{"alarm", "telemetry"} {
		checkRun(t, c, got[c], 3000, none)
	}
}

func hasProblem(ps []FileProblem, s string) bool {
	return slices.ContainsFunc(ps, func(p FileProblem) bool { return strings.Contains(p.Problem, s) })
}

func TestSalvageRefusesInUseAndNonEmpty(t *testing.T) {
	o := newTestOutbox(t, t.TempDir(), nil)
	fillOutbox(t, o, 10)
	_, err := Salvage(o.dir, filepath.Join(t.TempDir(), "fresh"), nil, nil)
	if !errors.Is(err, ErrStoreInUse) || !strings.Contains(err.Error(), o.dir) {
		t.Errorf("Salvage of an open store: %v, want ErrStoreInUse naming %s", err, o.dir)
	}
	if _, err := CheckStore(o.dir, nil); !errors.Is(err, ErrStoreInUse) {
		t.Errorf("CheckStore of an open store: %v, want ErrStoreInUse", err)
	}
	dir := makeStore(t, 10)
	if _, err := Salvage(dir, dir, nil, nil); err == nil {
		t.Error("Salvage into the damaged directory itself: no error")
	}
	if _, err := Salvage(dir, makeStore(t, 1), nil, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Salvage into a store: %v, want refused as not empty", err)
	}
}

// flipAt inverts n bytes of the file at path from offset off.
func flipAt(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestSalvageDamagedTableBlock(t *testing.T) {
	dir := makeStore(t, 3000)
	sst := uplinktest.OnlyFile(t, dir, "*.sst")
	fi, _ := os.Stat(sst)
	flipAt(t, sst, fi.Size()/5, 8)
	rep, fresh := salvageOK(t, dir)
	if rep.Method != "files" || !hasProblem(rep.Problems, "cannot be read") {
		t.Errorf("report %+v, want the files read directly and a block reported", rep)
	}
	got := walkFresh(t, fresh)
	lost := 6000 - len(got["alarm"]) - len(got["telemetry"])
	if lost <= 0 || lost > 100 {
		t.Errorf("%d records lost, want those of one block (a few dozen)", lost)
	}
	for _, c := range []string{"alarm", "telemetry"} {
		ns := got[c]
		if !slices.IsSorted(ns) || len(ns) == 0 || ns[len(ns)-1] != 2999 {
			t.Errorf("class %s: %d records, last %v; want the records after the bad block too", c, len(ns), ns[len(ns)-1:])
		}
	}
}

func TestSalvageDamagedWriteAheadLog(t *testing.T) {
	dir := crashCopy(t, 2000)
	mem := uplinktest.OnlyFile(t, dir, "*.mem")
	data, _ := os.ReadFile(mem)
	end := committedEnd(data)
	flipAt(t, mem, int64(end/2), 16)
	rep, fresh := salvageOK(t, dir)
	if rep.Method != "files" || !hasProblem(rep.Problems, "cannot be read") {
		t.Errorf("report %+v, want the log's damage reported", rep)
	}
	got := walkFresh(t, fresh)
	lost := 4000 - len(got["alarm"]) - len(got["telemetry"])
	if lost <= 0 || lost > 4 {
		t.Errorf("%d records lost, want the one or two the damage hit", lost)
	}
	for _, c := range []string{"alarm", "telemetry"} {
		if ns := got[c]; len(ns) == 0 || ns[len(ns)-1] != 1999 || !slices.IsSorted(ns) {
			t.Errorf("class %s: the records after the damage were not recovered in order", c)
		}
	}
}

func TestSalvageDamagedValueLog(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, func(o *Options) { o.MaxBytes, o.noJournal = 64<<20, true }) // values over 128 kB go to the value log
	big := func(n int) []byte { return append(testRecord("big", n), strings.Repeat(" ", 200<<10)...) }
	for i := range 6 {
		rec := testRecord("telemetry", i)
		if i%2 == 1 {
			rec = big(i)
		}
		if _, err := o.Append(1, rec, testTime(i)); err != nil {
			t.Fatal(err)
		}
	}
	commitAll(t, o)
	_ = o.db.Close()
	vlog := uplinktest.OnlyFile(t, dir, "000001.vlog")
	fi, _ := os.Stat(vlog)
	flipAt(t, vlog, fi.Size()/2, 8) // inside the second of three large values
	rep, fresh := salvageOK(t, dir)
	if rep.Unreadable != 1 || rep.Recovered["telemetry"] != 5 || !hasProblem(rep.Problems, "cannot be read") {
		t.Errorf("report %+v, want 5 recovered and 1 unreadable", rep)
	}
	var q []Quarantined
	if err := ReadStoreQuarantine(fresh, func(r Quarantined) error { q = append(q, r); return nil }); err != nil || len(q) != 1 {
		t.Errorf("fresh quarantine: %d records (%v), want the unreadable one", len(q), err)
	}
}

func TestSalvageKeepsQuarantineSkipsDelivered(t *testing.T) {
	dir := t.TempDir()
	o := newTestOutbox(t, dir, func(o *Options) { o.Classes = []Class{{Name: "alarm"}, {Name: "bulk"}} })
	fillOutbox(t, o, 100)
	for seq := uint64(1); seq <= 20; seq += 2 { // the first ten of lane 0, acknowledged
		o.Delete(makeID(0, seq))
	}
	o.quarantine(makeID(1, 40), errBadHeader)
	commitAll(t, o)
	_ = o.db.Close()
	fresh := filepath.Join(t.TempDir(), "fresh")
	rep, err := Salvage(dir, fresh, []Class{{Name: "alarm"}}, logTo(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Quarantined != 1 || rep.Recovered["alarm"] != 90 || rep.Recovered["bulk"] != 99 {
		t.Errorf("report %+v, want 90 alarms, 99 bulk, 1 quarantined", rep)
	}
	c, err := CheckStore(fresh, []Class{{Name: "alarm"}})
	if err != nil || c.Quarantined != 1 || len(c.Classes) != 2 || c.Classes[1].Name != "bulk" || c.Classes[1].Queued != 99 {
		t.Errorf("CheckStore(fresh) = %+v, %v; want the unconfigured class kept, sent last", c, err)
	}
}

// TestSalvageMergesTablesAndLog: read from the files, the newest version of
// each key wins across tables and write-ahead log, deletes included.
func TestSalvageMergesTablesAndLog(t *testing.T) {
	dir := makeStore(t, 100) // records 1 to 200, in a table
	o := newTestOutbox(t, dir, nil)
	o.Delete(makeID(1, 50)) // not the oldest: a tombstone, in the log
	for i := 100; i < 150; i++ {
		if _, err := o.Append(1, testRecord("telemetry", i), testTime(i)); err != nil {
			t.Fatal(err)
		}
	}
	commitAll(t, o)
	crashed := t.TempDir()
	uplinktest.CopyStore(t, dir, crashed)
	if err := os.Truncate(filepath.Join(crashed, "MANIFEST"), 8); err != nil {
		t.Fatal(err)
	}
	rep, fresh := salvageOK(t, crashed)
	got := walkFresh(t, fresh)
	if rep.Method != "files" || len(got["alarm"]) != 100 || len(got["telemetry"]) != 149 || slices.Contains(got["telemetry"], 24) {
		t.Errorf("report %+v, %d alarms, %d telemetry; want 100 and 149, record 24 (seq 50) deleted",
			rep, len(got["alarm"]), len(got["telemetry"]))
	}
}

// TestSalvageBadMeta: a store whose meta record is damaged does not open;
// Salvage recovers every record and writes a new meta.
func TestSalvageBadMeta(t *testing.T) {
	dir := makeStore(t, 200)
	db, err := badger.Open(quietOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey, []byte(`{"last":7,"lanes":{"alarm"`)) })
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	opts := Options{StoreDir: dir}.withDefaults()
	if _, err := openOutbox(&opts); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "meta") {
		t.Fatalf("openOutbox with a damaged meta record: %v; want refused, naming the directory", err)
	}
	rep, fresh := salvageOK(t, dir)
	if !hasProblem(rep.Problems, "may be sent again") {
		t.Errorf("report %+v: want the meta record reported", rep)
	}
	got := walkFresh(t, fresh)
	checkRun(t, "alarm", got["alarm"], 200, none)
	checkRun(t, "telemetry", got["telemetry"], 200, none)
}
