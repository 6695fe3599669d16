package uplink

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Native fuzz tests for what the store decodes from disk: a record's value
// header, its key, the meta record, records as the outbox reads them back,
// and the store's log files as salvage parses them. A damaged store is
// input like any other: none of these may panic, whatever the bytes.
//
//	go test -run='^$' -fuzz=FuzzStoreRecords -fuzztime=30s ./uplink/

func FuzzParseValue(f *testing.F) {
	for _, seed := range [][]byte{
		nil, {}, {1}, {valVersion, 0, 0, 0, 0, 0, 0, 0, 0},
		makeValue([]byte("packet"), time.UnixMilli(1_750_000_000_000)),
		makeValue([]byte{0x32, 0}, time.UnixMilli(-1)),
		{2, 0, 0, 0, 0, 0, 0, 0, 0, 'x'},
		bytes.Repeat([]byte{0xff}, 32),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, at, ok := parseValue(v)
		if !ok {
			if len(v) > headerSize && v[0] == valVersion {
				t.Fatalf("parseValue(%x) refused a value with a good header", v)
			}
			return
		}
		ms := int64(binary.BigEndian.Uint64(v[1:]))
		if !bytes.Equal(rec, v[headerSize:]) || at.UnixMilli() != ms && ms > -1<<60 && ms < 1<<60 {
			t.Fatalf("parseValue(%x) = %x, %v", v, rec, at)
		}
		if ms > -1<<60 && ms < 1<<60 && !bytes.Equal(makeValue(rec, at), v) {
			t.Fatalf("makeValue(parseValue(%x)) = %x", v, makeValue(rec, at))
		}
	})
}

func FuzzParseKey(f *testing.F) {
	l := &lane{prefix: lanePrefix("telemetry")}
	for _, seed := range [][]byte{
		nil, {recordTag}, lanePrefix("telemetry"), recordKey(l, 0, 1), recordKey(l, 7, guardSeq),
		recordKey(&lane{prefix: lanePrefix("alarm")}, 1, 2), append(recordKey(l, 0, 1), 0),
	} {
		f.Add("telemetry", seed)
	}
	f.Add("", []byte{recordTag, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, name string, key []byte) {
		if len(name) > 255 {
			return // class names are validated to be short
		}
		l := &lane{prefix: lanePrefix(name)}
		seg, seq, ok := parseKey(l, key)
		if ok && bytes.HasPrefix(key, l.prefix) && !bytes.Equal(recordKey(l, seg, seq), key) {
			t.Fatalf("parseKey(%q, %x) = %d, %d; recordKey gives %x", name, key, seg, seq, recordKey(l, seg, seq))
		}
		q := Quarantined{Key: key}
		if class, seq2, ok := q.ClassSeq(); ok && (len(key) != 2+len(class)+12 || (class == name && seq2 != seq)) {
			t.Fatalf("ClassSeq(%x) = %q, %d", key, class, seq2)
		}
		_, _ = (Quarantined{Value: key}).Accepted()
	})
}

// memOutbox opens an outbox in memory with small memtables.
func memOutbox(t *testing.T) *outbox {
	t.Helper()
	opts := Options{QueueSize: 1000, MaxBytes: 64 << 20, Classes: []Class{{Name: "alarm"}, {Name: "telemetry"}},
		Logger: slog.New(slog.DiscardHandler)}.withDefaults()
	o, err := openOutbox(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.db.Close() })
	return o
}

// reload reads the store under o again, as opening it would.
func reload(o *outbox) (*outbox, error) {
	ob := &outbox{db: o.db, dir: o.dir, log: o.log, limit: o.limit, segMax: o.segMax,
		dels: make(map[uint64]bool), drops: make(map[string]uint64),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	return ob, ob.load([]Class{{Name: "alarm"}, {Name: "telemetry"}})
}

func FuzzMeta(f *testing.F) {
	good, _ := json.Marshal(meta{Last: 3, Lanes: map[string]laneMeta{
		"telemetry": {N: 3, Bytes: 90, Segs: []segment{{Num: 0, First: 1}}, Low: 1}}})
	for _, seed := range []string{
		string(good), "", "{}", "null", "[]", `{"last":"x"}`, `{"lanes":{"telemetry":null}}`,
		`{"last":3,"lanes":{"telemetry":{"n":3,"segs":[{"num":5,"first":9},{"num":1,"first":2}],"low":7}}}`,
		`{"last":2,"lanes":{"alarm":{"n":0,"bytes":0,"segs":[],"low":99}}}`,
		`{"last":1e400}`, `{"lanes":{"":{"n":1}}}`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		var m meta
		badMeta := json.Unmarshal(v, &m) == nil && knownBadMeta(m)
		o := memOutbox(t)
		appendAll(t, o, 1, "t1", "t2", "t3")
		if err := o.db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey, v) }); err != nil {
			t.Fatal(err)
		}
		ob, err := reload(o)
		if err != nil {
			return // refused: fine
		}
		if badMeta {
			t.Fatalf("meta %q was accepted; load must refuse it", v)
		}
		exercise(t, ob)
	})
}

// knownBadMeta reports what load accepts but the outbox cannot work with.
func knownBadMeta(m meta) bool {
	if m.Last >= 1<<seqBits-1 {
		return true
	}
	for _, lm := range m.Lanes {
		if lm.N < 0 || lm.Low > m.Last+1 {
			return true
		}
	}
	return false
}

// exercise uses o as the Uplink would: it reads every lane, appends,
// commits, deletes and fills stats; any panic fails the test.
func exercise(t *testing.T, o *outbox) {
	t.Helper()
	for li := range o.lanes {
		for from, n := uint64(0), 0; n < 100; n++ {
			r, ok := o.nextRecord(li, from)
			if !ok {
				break
			}
			if _, _, ok := parseValue(r.val); !ok {
				t.Fatalf("Next returned a record with a bad header: %x", r.val)
			}
			o.Delete(r.id)
			from = idSeq(r.id) + 1
		}
	}
	if _, err := o.Append(0, []byte("new"), time.Now()); err == nil {
		b := o.take()
		o.written(b, o.write(b))
	}
	o.emptySegments()
	var s Stats
	o.fillStats(&s)
}

func FuzzStoreRecords(f *testing.F) {
	tele := &lane{prefix: lanePrefix("telemetry")}
	for _, seed := range []struct{ val, key, kval []byte }{
		{makeValue([]byte("ok"), time.Now()), nil, nil},
		{[]byte{9, 9}, recordKey(tele, 0, 99), []byte{1}},
		{nil, recordKey(tele, 0, 3), nil},
		{[]byte{valVersion}, []byte{recordTag, 9}, []byte("x")},
		{makeValue(nil, time.Time{}), recordKey(tele, 0, guardSeq), makeValue([]byte("guard"), time.Now())},
		{bytes.Repeat([]byte{1}, 300), []byte{quarantineTag, recordTag}, nil},
		{[]byte("{}"), metaKey, []byte("{}")},
		{[]byte("0"), []byte("r\t000000000000000000000"), []byte("0")}, // found by fuzzing: seq 0x3030...
	} {
		f.Add(seed.val, seed.key, seed.kval)
	}
	f.Fuzz(func(t *testing.T, val, key, kval []byte) {
		o := memOutbox(t)
		appendAll(t, o, 1, "t1", "t2", "t3", "t4")
		err := o.db.Update(func(txn *badger.Txn) error {
			if err := txn.Set(recordKey(o.lanes[1], 0, 2), val); err != nil {
				return err
			}
			if len(key) == 0 || bytes.Equal(key, metaKey) || len(key) > 1<<10 {
				return nil
			}
			return txn.Set(key, kval)
		})
		if err != nil {
			t.Fatal(err)
		}
		ob, err := reload(o)
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		// What lane 1's records 1 to 4 hold now: key may have replaced one,
		// or added a record to the lane.
		stored := map[uint64][]byte{1: nil, 2: val, 3: nil, 4: nil}
		for seq := range stored {
			if seq != 2 {
				stored[seq] = makeValue([]byte("t"), time.Time{}) // intact
			}
			if bytes.Equal(key, recordKey(o.lanes[1], 0, seq)) {
				stored[seq] = kval
			}
		}
		if _, seq, ok := parseKey(o.lanes[1], key); ok && bytes.HasPrefix(key, o.lanes[1].prefix) && seq != guardSeq {
			if _, known := stored[seq]; !known {
				stored[seq] = kval
			} else if !bytes.Equal(key, recordKey(o.lanes[1], 0, seq)) {
				stored = nil // two records with one sequence number: only check nothing panics
			}
		}
		got := map[uint64]bool{}
		for from := uint64(0); ; {
			r, ok := ob.nextRecord(1, from)
			if !ok {
				break
			}
			if _, _, ok := parseValue(r.val); !ok {
				t.Fatalf("Next returned a record with a bad header: %x", r.val)
			}
			got[idSeq(r.id)] = true
			from = idSeq(r.id) + 1
		}
		bad := 0
		if stored == nil {
			bad = int(ob.quarant)
		}
		for seq, v := range stored {
			_, _, ok := parseValue(v)
			if ok != got[seq] && (ok || seq != 2 || len(v) > 0) {
				t.Fatalf("record %d holding %x: read %v", seq, v, got[seq])
			}
			if !ok {
				bad++
			}
		}
		if int(ob.quarant) != bad {
			t.Fatalf("%d records quarantined, want the %d unreadable", ob.quarant, bad)
		}
		exercise(t, ob)
		b := ob.take()
		if b != nil {
			ob.written(b, ob.write(b))
		}
	})
}

// FuzzParseLog: salvage parses write-ahead and value logs itself, damage
// and all; it must never panic and never return an entry that fails its
// checksum.
func FuzzParseLog(f *testing.F) {
	f.Add(make([]byte, logHeaderSize), []byte{})
	f.Add(make([]byte, 64), []byte{0x40, 0, 9, 1, 0})
	f.Add([]byte("0"), make([]byte, 8))                     // found by fuzzing: an empty table index whose checksum matches
	f.Add([]byte("0000AAAAAAAAAAA"), []byte("00\xfd\xcc0")) // found by fuzzing: a value pointer 1 GB long
	dir := f.TempDir()
	vlog := filepath.Join(dir, "000000.vlog")
	f.Fuzz(func(t *testing.T, head, body []byte) {
		data := append(append(make([]byte, logHeaderSize), head...), body...)
		entries, _ := parseLog(data)
		for _, e := range entries {
			if _, ok := decodeEntry(data[e.off:]); !ok || e.off < logHeaderSize {
				t.Fatalf("entry at %d does not decode", e.off)
			}
		}
		_ = committedEnd(data)
		_ = checkFooter(body)
		if err := os.WriteFile(vlog, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(head) >= 12 {
			binary.NativeEndian.PutUint32(head, 0) // file 000000.vlog
			_, _ = readValue(dir, body, head[:12])
		}
	})
}
