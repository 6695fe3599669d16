package uplink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
)

// Reading a closed store without changing it: what `flowgate store check`
// and `flowgate store quarantine` show, and what Salvage copies.
//
// A reader goes through Badger when every file is intact: Badger opened
// read-only on a snapshot of the directory, because Badger changes even a
// store it opens read-only (it deletes tables the MANIFEST does not list,
// and it refuses a write-ahead log that needs truncating, which every log
// does after a power cut). The snapshot links the tables and value logs
// and copies the rest. Otherwise a reader merges the files' own entries
// (salvage_files.go) by key and version, as Badger would.

// examine checks that no process holds dir and reads all its files.
func examine(dir string) (*storeFiles, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("uplink: store %s: not a directory (%v)", dir, err)
	}
	if err := CheckNotInUse(dir); err != nil {
		return nil, err
	}
	files, err := listStore(dir)
	if err != nil {
		return nil, err
	}
	files.check(true)
	return files, nil
}

// CheckNotInUse returns an error wrapping ErrStoreInUse if a process, such
// as the gateway, holds the store in dir. It asks Badger for a shared lock
// on dir as the value directory beside an empty one: Badger then fails for
// want of a MANIFEST there, before it reads anything in dir, unless dir is
// locked.
func CheckNotInUse(dir string) error {
	scratch, err := os.MkdirTemp("", "flowgate-lock-")
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	defer os.RemoveAll(scratch)
	db, err := badger.Open(quietOptions(scratch).WithValueDir(dir).WithReadOnly(true))
	if err == nil {
		_ = db.Close()
	}
	if err != nil && strings.Contains(err.Error(), "Another process is using this Badger database") {
		return fmt.Errorf("%w: %s is locked", ErrStoreInUse, dir)
	}
	return nil
}

// quietOptions are the store's options with small caches and no logs.
// (badgerOptions's WithLoggingLevel replaces its logger with Badger's own,
// which writes to stderr: WithLogger must come after it.)
func quietOptions(dir string) badger.Options {
	return badgerOptions(dir, nil).WithLogger(badgerLogger{slog.New(slog.DiscardHandler)}).
		WithBlockCacheSize(1 << 20).WithIndexCacheSize(0)
}

// reader reads a closed store: through Badger, or from its files.
type reader struct {
	files *storeFiles
	db    *badger.DB // through Badger (on snapshot), or nil
	snap  string
	srcs  []y.Iterator // the files' sources, or nil
}

func (r *reader) method() string {
	if r.db != nil {
		return "badger"
	}
	return "files"
}

// openReader reads through Badger if every file is intact and Badger opens
// a snapshot, else from the files.
func openReader(files *storeFiles, log *slog.Logger) (*reader, error) {
	if len(files.problems) == 0 {
		r, err := openSnapshot(files, log)
		if err == nil {
			return r, nil
		}
		files.problem(files.dir, "Badger cannot open it: %v", err)
	}
	log.Warn("reading the store's files directly", "dir", files.dir, "problems", len(files.problems))
	r := &reader{files: files}
	for _, id := range files.tables {
		if t, err := files.openTable(id); err == nil {
			r.srcs = append(r.srcs, newTableSource(t))
		}
	}
	for _, name := range files.mems {
		if data, err := os.ReadFile(filepath.Join(files.dir, name)); err == nil && len(data) >= logHeaderSize {
			entries, _ := parseLog(data)
			r.srcs = append(r.srcs, newLogSource(entries))
		}
	}
	return r, nil
}

// openSnapshot opens a snapshot of the store read-only in Badger.
func openSnapshot(files *storeFiles, log *slog.Logger) (*reader, error) {
	snap, err := snapshot(files)
	if err != nil {
		return nil, err
	}
	opts := quietOptions(snap).WithReadOnly(true).WithLogger(badgerLogger{log}).
		WithChecksumVerificationMode(options.OnBlockRead).WithVerifyValueChecksum(true)
	db, err := badger.Open(opts)
	if err != nil {
		_ = os.RemoveAll(snap)
		// Badger's message names the snapshot's files: name the store's.
		return nil, fmt.Errorf("uplink: open store %s: %s", files.dir, strings.ReplaceAll(err.Error(), snap, files.dir))
	}
	return &reader{files: files, db: db, snap: snap}, nil
}

// snapshot makes a directory Badger can open read-only without changing
// files.dir: tables and value logs linked (copied where that fails), the
// MANIFEST and key registry copied, and each write-ahead log copied up to
// its last committed entry, where Badger would truncate it.
func snapshot(f *storeFiles) (string, error) {
	parent, base := filepath.Split(filepath.Clean(f.dir))
	snap, err := os.MkdirTemp(parent, "."+base+".snapshot-")
	if err != nil {
		if snap, err = os.MkdirTemp("", "flowgate-snapshot-"); err != nil {
			return "", fmt.Errorf("uplink: snapshot of %s: %w", f.dir, err)
		}
	}
	var names []string
	for _, id := range f.tables {
		names = append(names, table.IDToFilename(id))
	}
	for _, id := range f.vlogs {
		names = append(names, fmt.Sprintf("%06d.vlog", id))
	}
	for _, n := range names {
		err := os.Link(filepath.Join(f.dir, n), filepath.Join(snap, n))
		if err != nil { // another file system: copy
			err = copyFile(filepath.Join(f.dir, n), filepath.Join(snap, n), math.MaxInt64)
		}
		if err != nil {
			_ = os.RemoveAll(snap)
			return "", fmt.Errorf("uplink: snapshot of %s: %w", f.dir, err)
		}
	}
	for _, n := range append([]string{badger.ManifestFilename, badger.KeyRegistryFileName}, f.mems...) {
		src := filepath.Join(f.dir, n)
		size := int64(math.MaxInt64)
		if strings.HasSuffix(n, ".mem") {
			data, err := os.ReadFile(src)
			if err != nil || len(data) < logHeaderSize {
				continue
			}
			size = int64(committedEnd(data))
		}
		if err := copyFile(src, filepath.Join(snap, n), size); err != nil && !os.IsNotExist(err) {
			_ = os.RemoveAll(snap)
			return "", fmt.Errorf("uplink: snapshot of %s: %w", f.dir, err)
		}
	}
	return snap, nil
}

// committedEnd is where Badger's replay of a write-ahead log stops: after
// the last complete transaction before anything it cannot read.
func committedEnd(data []byte) int {
	end := logHeaderSize
	for off := end; off < len(data); {
		e, ok := decodeEntry(data[off:])
		if !ok {
			break
		}
		off += e.n
		if e.vs.Meta&bitTxn == 0 {
			end = off
		}
	}
	return end
}

func copyFile(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(in, size))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *reader) close() {
	if r.db != nil {
		_ = r.db.Close()
		_ = os.RemoveAll(r.snap) // links and copies only
	}
	for _, s := range r.srcs {
		_ = s.Close()
	}
}

// scan calls fn for the newest version of every live key with prefix, in
// key order, with its value or why it cannot be read.
func (r *reader) scan(prefix []byte, fn func(key, val []byte, verr error) error) error {
	if r.db != nil {
		return r.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err := fn(it.Item().KeyCopy(nil), v, err); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return r.newest(prefix, func(key, vkey []byte, vs y.ValueStruct) error {
		if vs.Meta&bitDelete != 0 {
			return nil
		}
		val, verr := vs.Value, error(nil)
		if vs.Meta&bitValuePointer != 0 {
			val, verr = readValue(r.files.dir, vkey, vs.Value)
		}
		return fn(key, bytes.Clone(val), verr)
	})
}

// newest calls fn for the newest version of every key with prefix in the
// files, in key order: the key, the key with its version, and the value
// as stored.
func (r *reader) newest(prefix []byte, fn func(key, vkey []byte, vs y.ValueStruct) error) error {
	if len(r.srcs) == 0 {
		return nil
	}
	mi := table.NewMergeIterator(r.srcs, false)
	for mi.Seek(y.KeyWithTs(prefix, math.MaxUint64)); mi.Valid(); {
		key := bytes.Clone(y.ParseKey(mi.Key()))
		if !bytes.HasPrefix(key, prefix) {
			return nil
		}
		if err := fn(key, mi.Key(), mi.Value()); err != nil {
			return err
		}
		for mi.Next(); mi.Valid() && bytes.Equal(y.ParseKey(mi.Key()), key); mi.Next() {
		}
	}
	return nil
}

// Bits of Badger's entry meta byte (badger/value.go); not exported there.
const (
	bitDelete       = 1 << 0
	bitValuePointer = 1 << 1
	bitTxn          = 1 << 6
	bitFinTxn       = 1 << 7
	logHeaderSize   = 20 // key id and IV at the start of every .mem and .vlog file
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logEntry is one entry of a write-ahead log or value log.
type logEntry struct {
	key []byte // with its version
	vs  y.ValueStruct
	off int
	n   int
}

// decodeEntry reads the log entry at the start of b: header, key, value,
// and the CRC32-C of all three.
func decodeEntry(b []byte) (logEntry, bool) {
	if len(b) < 6 || b[0]&0x30 != 0 { // meta bits Badger does not use
		return logEntry{}, false
	}
	h := 2
	var f [3]uint64
	for i := range f {
		v, n := binary.Uvarint(b[h:])
		if n <= 0 {
			return logEntry{}, false
		}
		f[i], h = v, h+n
	}
	klen, vlen := f[0], f[1]
	if klen < 9 || klen > 1<<16 || vlen > uint64(len(b)) {
		return logEntry{}, false
	}
	end := h + int(klen) + int(vlen)
	if end+4 > len(b) || crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return logEntry{}, false
	}
	k := b[h : h+int(klen)]
	return logEntry{key: k, vs: y.ValueStruct{Meta: b[0], UserMeta: b[1], ExpiresAt: f[2],
		Value: b[h+int(klen) : end]}, n: end + 4}, true
}

// parseLog reads the entries of a .mem or .vlog file. Entries of a
// transaction count once its end marker is read, or once damage separates
// them from a later entry (the marker was lost in it); a transaction cut off
// at the end of the file was never committed. After damage it looks for the
// next intact entry; damage with none after it is a write cut short by a
// crash, which Badger discards too, and is not reported.
func parseLog(data []byte) (entries []logEntry, damage []string) {
	var txn []logEntry
	var txnTs uint64
	gap := false
	nz := len(bytes.TrimRight(data, "\x00")) // the preallocated rest is zeros
	for off := logHeaderSize; off < len(data); {
		e, ok := decodeEntry(data[off:])
		if !ok {
			next := resync(data, off+1, nz)
			if off >= nz || next >= nz {
				break // the zeros after the last entry, or a write cut short
			}
			damage = append(damage, fmt.Sprintf("bytes %d to %d cannot be read", off, next))
			off, gap = next, true
			continue
		}
		e.off, off = off, off+e.n
		switch ts := y.ParseTs(e.key); {
		case e.vs.Meta&bitFinTxn != 0:
			entries, txn = append(entries, txn...), txn[:0]
		case e.vs.Meta&bitTxn != 0:
			if len(txn) > 0 && ts != txnTs && gap {
				entries, txn = append(entries, txn...), txn[:0]
			}
			txn, txnTs = append(txn, e), ts
		default:
			entries = append(entries, e)
		}
		gap = false
	}
	return entries, damage
}

// resync finds the next offset from off on, and before limit, where an
// intact entry starts; limit if there is none. (An entry holds a non-zero
// byte after its first two: none starts in the zeros that end a log.)
func resync(data []byte, off, limit int) int {
	for ; off < limit; off++ {
		if _, ok := decodeEntry(data[off:]); ok {
			return off
		}
	}
	return limit
}

// logSource is the committed entries of a write-ahead log in key order, as
// a y.Iterator; of two entries with the same key and version, the later.
type logSource struct {
	entries []logEntry
	i       int
}

func newLogSource(entries []logEntry) *logSource {
	s := slices.Clone(entries)
	slices.SortStableFunc(s, func(a, b logEntry) int { return y.CompareKeys(a.key, b.key) })
	out := s[:0]
	for _, e := range s {
		if n := len(out); n > 0 && bytes.Equal(out[n-1].key, e.key) {
			out[n-1] = e
			continue
		}
		out = append(out, e)
	}
	return &logSource{entries: out}
}

func (s *logSource) Rewind() { s.i = 0 }
func (s *logSource) Next()   { s.i++ }
func (s *logSource) Seek(key []byte) {
	s.i, _ = slices.BinarySearchFunc(s.entries, key, func(e logEntry, k []byte) int { return y.CompareKeys(e.key, k) })
}
func (s *logSource) Key() []byte          { return s.entries[s.i].key }
func (s *logSource) Value() y.ValueStruct { return s.entries[s.i].vs }
func (s *logSource) Valid() bool          { return s.i < len(s.entries) }
func (s *logSource) Close() error         { return nil }

// readValue returns the value a value pointer vp (Badger's in-memory
// layout: file id, length, offset, native byte order) points to, checked
// against the entry's CRC and key.
func readValue(dir string, key, vp []byte) ([]byte, error) {
	if len(vp) != 12 {
		return nil, fmt.Errorf("value pointer of %d bytes", len(vp))
	}
	fid := binary.NativeEndian.Uint32(vp)
	n, off := binary.NativeEndian.Uint32(vp[4:]), binary.NativeEndian.Uint32(vp[8:])
	f, err := os.Open(filepath.Join(dir, fmt.Sprintf("%06d.vlog", fid)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(off)+int64(n) > fi.Size() || n < 6 {
		return nil, fmt.Errorf("%06d.vlog: value pointer past the end of the file (%d+%d of %d bytes)", fid, off, n, fi.Size())
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("%06d.vlog at %d: %w", fid, off, err)
	}
	e, ok := decodeEntry(buf)
	if !ok || !y.SameKey(e.key, key) {
		return nil, fmt.Errorf("%06d.vlog at %d: damaged entry", fid, off)
	}
	return e.vs.Value, nil
}

// scanDeleted calls fn for every key with prefix whose newest version is
// a delete: what scan steps over.
func (r *reader) scanDeleted(prefix []byte, fn func(key []byte)) error {
	if r.db != nil {
		return r.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, AllVersions: true})
			defer it.Close()
			var last []byte
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if bytes.Equal(k, last) {
					continue
				}
				last = it.Item().KeyCopy(nil)
				if it.Item().IsDeletedOrExpired() {
					fn(last)
				}
			}
			return nil
		})
	}
	return r.newest(prefix, func(key, _ []byte, vs y.ValueStruct) error {
		if vs.Meta&bitDelete != 0 {
			fn(key)
		}
		return nil
	})
}
