package uplink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"testing/iotest"
)

// Tests of the journal's files and frames (journal.go): what append writes
// comes back from readJournal exactly, files rotate and are numbered in
// order, a torn tail ends a file quietly, and damage is reported, never a
// panic.
//
//	go test -run='^$' -fuzz=FuzzReadJournal -fuzztime=30s ./uplink/

// jtLanes returns the two lanes the journal tests write: alarm (0) and
// telemetry (1).
func jtLanes() []*lane {
	return []*lane{{Class: Class{Name: "alarm"}, idx: 0}, {Class: Class{Name: "telemetry"}, idx: 1}}
}

// jtValue returns n bytes that differ from those of another tag.
func jtValue(n int, tag byte) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i*31) ^ tag
	}
	return v
}

// jtWant returns the records readJournal must deliver for recs.
func jtWant(lanes []*lane, recs ...[]record) []journalRecord {
	var want []journalRecord
	for _, batch := range recs {
		for _, r := range batch {
			want = append(want, journalRecord{class: lanes[idLane(r.id)].Name, seg: r.seg, seq: idSeq(r.id), val: r.val})
		}
	}
	return want
}

// jtRead returns the records readJournal delivers from r, and its error.
func jtRead(t testing.TB, r io.Reader) ([]journalRecord, error) {
	t.Helper()
	var got []journalRecord
	err := readJournal(r, func(jr journalRecord) error {
		got = append(got, jr)
		return nil
	})
	return got, err
}

// jtReadFile returns the records of journal file path, and readJournal's error.
func jtReadFile(t testing.TB, path string) ([]journalRecord, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return jtRead(t, f)
}

// jtCheck fails t unless got and want are the same records in the same order.
func jtCheck(t testing.TB, what string, got, want []journalRecord) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.class != w.class || g.seg != w.seg || g.seq != w.seq || !bytes.Equal(g.val, w.val) {
			t.Fatalf("%s: record %d = {%q seg %d seq %d, %d bytes}, want {%q seg %d seq %d, %d bytes}",
				what, i, g.class, g.seg, g.seq, len(g.val), w.class, w.seg, w.seq, len(w.val))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
}

// jtFrame returns a frame of payload with its length and a correct checksum,
// whatever the payload holds.
func jtFrame(payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

// jtRecordBytes encodes one record of a payload, with value length field vl
// whatever the length of val.
func jtRecordBytes(class string, seg uint32, seq uint64, vl uint32, val []byte) []byte {
	b := append([]byte{byte(len(class))}, class...)
	b = binary.BigEndian.AppendUint32(b, seg)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, vl)
	return append(b, val...)
}

func TestJournalRoundTrip(t *testing.T) {
	lanes := jtLanes()
	const alarm, tele = 0, 1
	batches := [][]record{
		{{id: makeID(alarm, 1), seg: 0, val: nil}},
		{
			{id: makeID(tele, 2), seg: 3, val: []byte{}},
			{id: makeID(alarm, 3), seg: 1, val: []byte{0}},
			{id: makeID(tele, 4), seg: 3, val: jtValue(255, 4)},
		},
		{{id: makeID(tele, 5), seg: 4, val: jtValue(100<<10+7, 5)}}, // a burst's frame: append drops its buffer
		{
			{id: makeID(alarm, 6), seg: 1, val: []byte("after the burst")},
			{id: makeID(tele, 1<<seqBits-1), seg: math.MaxUint32, val: jtValue(65<<10, 7)},
		},
	}
	var many []record
	for i := range 50 {
		many = append(many, record{id: makeID(i%2, uint64(100+i)), seg: uint32(i / 10), val: jtValue(i*37, byte(i))})
	}
	batches = append(batches, many)

	dir := filepath.Join(t.TempDir(), journalDir)
	j, nums, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) != 0 {
		t.Fatalf("openJournal of a new directory lists files %v", nums)
	}
	var size int64
	for i, b := range batches {
		n, err := j.append(b, lanes)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if n != 1 {
			t.Fatalf("append %d went to file %d, want 1: the journal holds %d bytes of %d", i, n, size, journalFileBytes)
		}
		size += int64(len(appendFrame(nil, b, lanes)))
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	if err := j.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	_, nums, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nums, []uint32{1}) {
		t.Fatalf("openJournal lists files %v, want [1]", nums)
	}
	if fi, err := os.Stat(j.path(1)); err != nil || fi.Size() != size {
		t.Fatalf("file 1: %v, %v; want %d bytes", fi, err, size)
	}
	want := jtWant(lanes, batches...)
	var got []journalRecord
	for _, n := range nums {
		recs, err := jtReadFile(t, j.path(n))
		if err != nil {
			t.Fatalf("readJournal of file %d: %v", n, err)
		}
		got = append(got, recs...)
	}
	jtCheck(t, "read back", got, want)

	// However the reader splits its reads.
	data, err := os.ReadFile(j.path(1))
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(bytes.NewReader(data)),
		"half":     iotest.HalfReader(bytes.NewReader(data)),
		"eof":      iotest.DataErrReader(bytes.NewReader(data)),
	} {
		got, err := jtRead(t, r)
		if err != nil {
			t.Fatalf("%s reader: %v", name, err)
		}
		jtCheck(t, name+" reader", got, want)
	}
}

// TestJournalFrameFormat pins the bytes of a frame to the format documented
// in journal.go, with a checksum computed here, so that files written by
// one version stay readable by the next.
func TestJournalFrameFormat(t *testing.T) {
	lanes := jtLanes()
	recs := []record{
		{id: makeID(0, 5), seg: 7, val: []byte("hi")},
		{id: makeID(1, 0x02030405060708), seg: 0x0a0b0c0d, val: nil},
	}
	payload := []byte{5, 'a', 'l', 'a', 'r', 'm', 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 'h', 'i'}
	payload = append(payload, 9, 't', 'e', 'l', 'e', 'm', 'e', 't', 'r', 'y', 0x0a, 0x0b, 0x0c, 0x0d, 0, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0)
	want := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	want = binary.BigEndian.AppendUint32(want, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	want = append(want, payload...)

	prefix := []byte("kept")
	got := appendFrame(slices.Clone(prefix), recs, lanes)
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("appendFrame = %x\nwant           %x%x", got, prefix, want)
	}
	if got := appendFrame(nil, nil, lanes); !bytes.Equal(got, make([]byte, 8)) {
		t.Fatalf("appendFrame of no records = %x, want 8 zero bytes", got)
	}
}

// TestJournalSplitsLargeBatches: a batch whose frame would pass the
// reader's limit on a frame's length (maxJournalFrame, 1 GiB) is written
// as several frames within it, which read back as the one batch; a record
// longer than the limit alone still gets a frame of its own.
func TestJournalSplitsLargeBatches(t *testing.T) {
	lanes := jtLanes()
	var recs []record
	for i := range 20 {
		recs = append(recs, record{id: makeID(i%2, uint64(i+1)), seg: 1, val: jtValue(10+i*3, byte(i))})
	}
	recs = append(recs, record{id: makeID(0, 21), seg: 1, val: jtValue(500, 21)}) // over the limit alone
	const limit = 120
	data := appendFrames(nil, recs, lanes, limit)
	frames, total := 0, 0
	for rest := data; len(rest) > 0; frames++ {
		n := int(binary.BigEndian.Uint32(rest))
		if n > limit && n != recordBytes("alarm", recs[20].val) {
			t.Errorf("frame %d holds %d bytes, over the limit of %d", frames, n, limit)
		}
		total += n
		rest = rest[8+n:]
	}
	if want := len(appendFrame(nil, recs, lanes)) - 8; total != want {
		t.Errorf("the frames hold %d bytes of records, want %d (recordBytes disagrees with appendFrame)", total, want)
	}
	if frames < 5 {
		t.Errorf("%d frames for %d bytes under a limit of %d", frames, total, limit)
	}
	got, err := jtRead(t, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	jtCheck(t, "split batch", got, jtWant(lanes, recs))
	if one := appendFrames(nil, recs, lanes, maxJournalFrame); !bytes.Equal(one, appendFrame(nil, recs, lanes)) {
		t.Error("a batch under the real limit is not written as one frame")
	}
}

func TestJournalRotates(t *testing.T) {
	lanes := jtLanes()
	dir := filepath.Join(t.TempDir(), journalDir)
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	val := jtValue(1<<20, 1)
	rec := func(i int) record { return record{id: makeID(i%2, uint64(i+1)), seg: uint32(i), val: val} }
	frame := func(r record) int64 { return int64(len(appendFrame(nil, []record{r}, lanes))) }

	// The file each append goes to: a new one once the current holds
	// journalFileBytes or more.
	const appends = 10
	var want []uint32
	for i, cur, size := 0, uint32(0), int64(0); i < appends; i++ {
		if cur == 0 || size >= journalFileBytes {
			cur, size = cur+1, 0
		}
		size += frame(rec(i))
		want = append(want, cur)
	}
	if want[appends-1] < 3 {
		t.Fatalf("test writes only %d files", want[appends-1])
	}
	var got []uint32
	inFile := map[uint32][]record{}
	for i := range appends {
		r := rec(i)
		n, err := j.append([]record{r}, lanes)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if len(got) > 0 && n < got[len(got)-1] {
			t.Fatalf("append %d went to file %d, after file %d", i, n, got[len(got)-1])
		}
		got = append(got, n)
		inFile[n] = append(inFile[n], r)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("appends went to files %v, want %v", got, want)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}

	// Other files in the directory are not the journal's.
	for _, name := range []string{"x.log", journalFileName(2) + ".damaged", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not a journal file"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	j, nums, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nums, []uint32{1, 2, 3}) {
		t.Fatalf("openJournal lists files %v, want [1 2 3]", nums)
	}
	for _, n := range nums {
		recs, err := jtReadFile(t, j.path(n))
		if err != nil {
			t.Fatalf("file %d: %v", n, err)
		}
		jtCheck(t, fmt.Sprintf("file %d", n), recs, jtWant(lanes, inFile[n]))
		var size int64
		for _, r := range inFile[n] {
			size += frame(r)
		}
		if fi, err := os.Stat(j.path(n)); err != nil || fi.Size() != size {
			t.Fatalf("file %d: %v, %v; want %d frames, %d bytes", n, fi, err, len(inFile[n]), size)
		}
	}

	// remove deletes a file; a file already gone is no error.
	if err := j.remove(2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.path(2)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file 2 after remove: %v", err)
	}
	for _, n := range []uint32{2, 12345} {
		if err := j.remove(n); err != nil {
			t.Fatalf("remove(%d) of a missing file: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, journalFileName(2)+".damaged")); err != nil {
		t.Fatalf("remove(2) touched the damaged file 2: %v", err)
	}

	// A new journal writes after the highest file, leaving the others alone.
	j, nums, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nums, []uint32{1, 3}) {
		t.Fatalf("openJournal after remove(2) lists files %v, want [1 3]", nums)
	}
	small := []record{{id: makeID(0, 100), val: []byte("after reopen")}}
	if n, err := j.append(small, lanes); err != nil || n != 4 {
		t.Fatalf("first append after reopen: file %d, %v; want file 4", n, err)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{1, 3} {
		recs, err := jtReadFile(t, j.path(n))
		if err != nil {
			t.Fatal(err)
		}
		jtCheck(t, fmt.Sprintf("file %d after reopen", n), recs, jtWant(lanes, inFile[n]))
	}
	if recs, err := jtReadFile(t, j.path(4)); err != nil {
		t.Fatal(err)
	} else {
		jtCheck(t, "file 4", recs, jtWant(lanes, small))
	}

	// Numbering follows the highest file, not the count of files.
	if err := os.WriteFile(j.path(41), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	j, nums, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nums, []uint32{1, 3, 4, 41}) {
		t.Fatalf("openJournal lists files %v, want [1 3 4 41]", nums)
	}
	if n, err := j.append(small, lanes); err != nil || n != 42 {
		t.Fatalf("append after file 41: file %d, %v; want file 42", n, err)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
}

// TestJournalRemoveFails checks that remove reports what it cannot remove.
func TestJournalRemoveFails(t *testing.T) {
	j, _, err := openJournal(filepath.Join(t.TempDir(), journalDir))
	if err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where file 7 would be: os.Remove refuses it.
	if err := os.MkdirAll(filepath.Join(j.path(7), "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := j.remove(7); err == nil {
		t.Fatal("remove(7) of a non-empty directory: no error")
	}
}

func TestJournalTornTail(t *testing.T) {
	lanes := jtLanes()
	frames := [][]record{
		{{id: makeID(0, 1), seg: 1, val: []byte("first")}, {id: makeID(1, 2), seg: 2, val: nil}},
		{{id: makeID(1, 3), seg: 2, val: jtValue(40, 3)}},
		{{id: makeID(0, 4), seg: 1, val: jtValue(100, 4)}, {id: makeID(1, 5), seg: 2, val: jtValue(150, 5)}},
	}
	var data []byte
	var ends []int // where each frame ends
	for _, f := range frames {
		data = appendFrame(data, f, lanes)
		ends = append(ends, len(data))
	}
	path := filepath.Join(t.TempDir(), journalFileName(1))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Cut the file at every offset, longest first: inside the last frame,
	// and on through the others. What remains is the complete frames.
	for size := len(data); size >= 0; size-- {
		if err := os.Truncate(path, int64(size)); err != nil {
			t.Fatal(err)
		}
		complete := 0
		for complete < len(ends) && ends[complete] <= size {
			complete++
		}
		got, err := jtReadFile(t, path)
		atBoundary := size == 0 || complete > 0 && ends[complete-1] == size
		if atBoundary && err != nil || !atBoundary && !errors.Is(err, errJournalCut) {
			t.Fatalf("file cut at %d of %d: %v; want %v", size, len(data), err, map[bool]error{true: nil, false: errJournalCut}[atBoundary])
		}
		jtCheck(t, fmt.Sprintf("file cut at %d of %d", size, len(data)), got, jtWant(lanes, frames[:complete]...))
	}
}

func TestJournalDamage(t *testing.T) {
	lanes := jtLanes()
	first := []record{{id: makeID(0, 1), seg: 1, val: []byte("first")}, {id: makeID(1, 2), seg: 2, val: jtValue(30, 2)}}
	middle := []record{{id: makeID(1, 3), seg: 2, val: jtValue(50, 3)}, {id: makeID(0, 4), seg: 1, val: nil}}
	last := []record{{id: makeID(1, 5), seg: 2, val: []byte("last")}}
	f1 := appendFrame(nil, first, lanes)
	f2 := appendFrame(nil, middle, lanes)
	f3 := appendFrame(nil, last, lanes)
	wantFirst := jtWant(lanes, first)

	// check reads data and wants the first frame's records, then damage.
	check := func(t *testing.T, what string, data []byte) {
		t.Helper()
		got, err := jtRead(t, bytes.NewReader(data))
		if !errors.Is(err, errJournalFrame) {
			t.Fatalf("%s: readJournal = %v, want errJournalFrame", what, err)
		}
		jtCheck(t, what, got, wantFirst)
	}

	t.Run("flipped byte", func(t *testing.T) {
		// Every byte of the middle frame's checksum and payload, each bit
		// position in turn. (Its length field is not flipped: a length
		// past the end of the data reads as a torn tail.)
		for i := 4; i < len(f2); i++ {
			data := slices.Concat(f1, f2, f3)
			data[len(f1)+i] ^= 1 << (i % 8)
			check(t, fmt.Sprintf("byte %d of the middle frame flipped", i), data)
		}
	})

	t.Run("length over maxJournalFrame", func(t *testing.T) {
		for _, n := range []uint32{maxJournalFrame + 1, 1 << 31, math.MaxUint32} {
			hdr := binary.BigEndian.AppendUint32(nil, n)
			hdr = binary.BigEndian.AppendUint32(hdr, 0)
			check(t, fmt.Sprintf("length %d", n), slices.Concat(f1, hdr, f2, f3))
		}
	})

	// Payloads that pass their checksum but do not parse: a record's
	// fields claim more than the payload holds, or a sequence number no id
	// can carry.
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"value one byte past the payload", jtRecordBytes("alarm", 1, 7, 4, []byte("abc"))},
		{"value length 2^32-1", jtRecordBytes("alarm", 1, 7, math.MaxUint32, nil)},
		{"value length 2^31", jtRecordBytes("telemetry", 1, 7, 1<<31, jtValue(10, 0))},
		{"class cut short", []byte{5, 'a', 'l'}},
		{"class length 255, payload short", append([]byte{255}, jtValue(100, 1)...)},
		{"fields cut short", jtRecordBytes("alarm", 1, 7, 0, nil)[:1+5+15]},
		{"sequence 1<<seqBits", jtRecordBytes("alarm", 1, 1<<seqBits, 0, nil)},
		{"sequence guardSeq", jtRecordBytes("alarm", 1, guardSeq, 0, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, tc.name, slices.Concat(f1, jtFrame(tc.payload), f3))
		})
	}

	// A bad record after good ones in a frame: the read stops there, and
	// no record of a later frame is delivered.
	t.Run("bad record after a good one", func(t *testing.T) {
		good := jtRecordBytes("alarm", 1, 9, 2, []byte("ok"))
		bad := jtRecordBytes("alarm", 1, 10, 3, []byte("no"))
		got, err := jtRead(t, bytes.NewReader(slices.Concat(f1, jtFrame(slices.Concat(good, bad)), f3)))
		if !errors.Is(err, errJournalFrame) {
			t.Fatalf("readJournal = %v, want errJournalFrame", err)
		}
		if len(got) < len(wantFirst) || len(got) > len(wantFirst)+1 {
			t.Fatalf("%d records delivered, want %d or %d", len(got), len(wantFirst), len(wantFirst)+1)
		}
		jtCheck(t, "first frame", got[:len(wantFirst)], wantFirst)
		if len(got) > len(wantFirst) {
			jtCheck(t, "good record", got[len(wantFirst):], []journalRecord{{class: "alarm", seg: 1, seq: 9, val: []byte("ok")}})
		}
	})
}

// TestJournalReadErrors checks that readJournal returns the reader's and the
// callback's errors as they are, not as damage.
func TestJournalReadErrors(t *testing.T) {
	lanes := jtLanes()
	recs := []record{{id: makeID(0, 1), val: []byte("a")}, {id: makeID(1, 2), val: []byte("b")}, {id: makeID(0, 3), val: []byte("c")}}
	f1 := appendFrame(nil, recs[:1], lanes)
	data := slices.Concat(f1, appendFrame(nil, recs[1:], lanes))
	errRead := errors.New("read failed")

	for _, tc := range []struct {
		name string
		r    io.Reader
		want []journalRecord
	}{
		{"at the start", iotest.ErrReader(errRead), nil},
		{"after a frame", io.MultiReader(bytes.NewReader(f1), iotest.ErrReader(errRead)), jtWant(lanes, recs[:1])},
		{"inside a header", io.MultiReader(bytes.NewReader(data[:3]), iotest.ErrReader(errRead)), nil},
		{"inside a payload", io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(errRead)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jtRead(t, tc.r)
			if !errors.Is(err, errRead) || errors.Is(err, errJournalFrame) {
				t.Fatalf("readJournal = %v, want the reader's error", err)
			}
			jtCheck(t, tc.name, got, tc.want)
		})
	}

	t.Run("callback", func(t *testing.T) {
		errStop := errors.New("stop")
		calls := 0
		err := readJournal(bytes.NewReader(data), func(jr journalRecord) error {
			calls++
			if jr.seq == 2 {
				return errStop
			}
			return nil
		})
		if err != errStop {
			t.Fatalf("readJournal = %v, want the callback's error as it is", err)
		}
		if calls != 2 {
			t.Fatalf("callback called %d times after it failed on the second record, want 2", calls)
		}
	})
}

func TestJournalFileNames(t *testing.T) {
	for _, n := range []uint32{0, 1, 9, 10, 42, 1 << 31, math.MaxUint32} {
		name := journalFileName(n)
		if len(name) != 14 {
			t.Errorf("journalFileName(%d) = %q: want 10 digits and .log", n, name)
		}
		if got, ok := journalFileNum(name); !ok || got != n {
			t.Errorf("journalFileNum(%q) = %d, %v; want %d, true", name, got, ok, n)
		}
	}
	// Names sort as their numbers do.
	if a, b := journalFileName(9), journalFileName(10); a >= b {
		t.Errorf("journalFileName(9) = %q sorts after journalFileName(10) = %q", a, b)
	}
	for _, name := range []string{
		"", ".log", "x.log", "1.log", "00000000001.log", "000000001.log",
		"0000000001.log.damaged", "0000000001", "0000000001.LOG", "0000000001.log ",
		"000000000x.log", "+000000001.log", "-000000001.log", " 000000001.log",
		"0x00000001.log", "0_00000001.log", "4294967296.log", "9999999999.log",
	} {
		if n, ok := journalFileNum(name); ok {
			t.Errorf("journalFileNum(%q) = %d, true; want it refused", name, n)
		}
	}
}

// A damaged length field is not trusted with memory: reading a frame
// that claims 512 MiB from an 11-byte file allocates about what the file
// holds, and reports the frame cut short.
func TestJournalHugeLengthAllocatesLittle(t *testing.T) {
	data := binary.BigEndian.AppendUint32(nil, 512<<20)
	data = append(data, 0, 0, 0, 0, 1, 2, 3)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := readJournal(bytes.NewReader(data), func(journalRecord) error { return nil })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errJournalCut) {
		t.Errorf("readJournal = %v, want errJournalCut", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("allocated %d bytes for an 11-byte file", got)
	}
}

func FuzzReadJournal(f *testing.F) {
	lanes := jtLanes()
	one := appendFrame(nil, []record{{id: makeID(0, 1), seg: 2, val: []byte("event")}}, lanes)
	several := appendFrame(nil, []record{
		{id: makeID(0, 3), seg: 1, val: jtValue(20, 1)},
		{id: makeID(1, 4), seg: 1, val: []byte{}},
		{id: makeID(1, 1<<seqBits-1), seg: math.MaxUint32, val: jtValue(300, 2)},
	}, lanes)
	empty := appendFrame(nil, []record{{id: makeID(1, 5), val: nil}}, lanes)
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	for _, seed := range [][]byte{
		nil, {}, one, several, empty, appendFrame(nil, nil, lanes),
		slices.Concat(one, several, empty),
		one[:len(one)-1], slices.Concat(one, several[:len(several)/2]), several[:5],
		jtFrame(jtRecordBytes("alarm", 1, 7, 9, []byte("short"))),
		jtFrame(random(64)), random(16), random(200),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []journalRecord
		err := readJournal(bytes.NewReader(data), func(jr journalRecord) error {
			if jr.seq >= 1<<seqBits || jr.seq == guardSeq || len(jr.class) > 255 || len(jr.val) > len(data) {
				t.Fatalf("readJournal delivered {%q seg %d seq %d, %d bytes} from %d bytes", jr.class, jr.seg, jr.seq, len(jr.val), len(data))
			}
			got = append(got, jr)
			return nil
		})
		if err != nil && !errors.Is(err, errJournalFrame) && !errors.Is(err, errJournalCut) {
			t.Fatalf("readJournal = %v: neither nil, errJournalFrame nor errJournalCut", err)
		}
		// Every record came out of the data, fields and all.
		used := 0
		for _, jr := range got {
			used += 1 + len(jr.class) + 16 + len(jr.val)
		}
		if used > len(data) {
			t.Fatalf("%d records of %d bytes from %d bytes of data", len(got), used, len(data))
		}
		// How the reader splits its reads changes nothing.
		got1, err1 := jtRead(t, iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err1 == nil) || err != nil && err.Error() != err1.Error() {
			t.Fatalf("readJournal = %v, one byte at a time %v", err, err1)
		}
		jtCheck(t, "one byte at a time", got1, got)
		// The callback's error stops the read and comes back as it is.
		if len(got) > 0 {
			errStop := errors.New("stop")
			calls := 0
			err := readJournal(bytes.NewReader(data), func(journalRecord) error {
				calls++
				return errStop
			})
			if err != errStop || calls != 1 {
				t.Fatalf("callback failing at once: %d calls, readJournal = %v", calls, err)
			}
		}
	})
}
