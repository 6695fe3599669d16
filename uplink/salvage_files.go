package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/proto"
)

// Reading a store's files without opening it in Badger.
//
// Badger's own handling of a damaged store is the reason this file exists
// (corrupt_test.go and salvage_test.go hold the evidence). Opening a store,
// even read-only, deletes every table file the MANIFEST does not list, so
// a MANIFEST cut short makes Badger delete the whole store. A table whose
// footer is damaged crashes the process from one of Badger's goroutines. A
// block it cannot read ends iteration there without an error, and a
// compaction then drops the rest of that table. A write-ahead log (.mem) or
// the last value log damaged in the middle is cut off at the damage when
// the store is opened read-write, intact entries after it included.
//
// So Salvage and CheckStore never hand a damaged directory to Badger. They
// read every file here with their own bounds checks, read tables through
// Badger's table package one block at a time, stepping over blocks it
// cannot read, and parse the logs entry by entry, resynchronising after
// damage. Files are opened read-only; nothing in the directory changes.
// checkBeforeOpen runs the cheap part of the same checks before a store is
// opened, so that the gateway can refuse a damaged store instead of letting
// Badger destroy what is left of it.

// FileProblem is a file of a store that could not be read, entirely or in
// part, and why.
type FileProblem struct {
	File    string // its name in the store directory
	Problem string
}

func (p FileProblem) String() string { return p.File + ": " + p.Problem }

// storeFiles is what a store directory holds.
type storeFiles struct {
	dir      string
	manifest *badger.Manifest // nil if it cannot be read
	tables   []uint64         // .sst files present, by id
	unlisted []uint64         // of those, the ones the MANIFEST does not list
	mems     []string         // .mem files, oldest first
	vlogs    []uint32         // .vlog files, by id
	problems []FileProblem
}

func (f *storeFiles) problem(file, format string, args ...any) {
	f.problems = append(f.problems, FileProblem{file, fmt.Sprintf(format, args...)})
}

// listStore lists dir and reads its MANIFEST.
func listStore(dir string) (*storeFiles, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("uplink: read store directory: %w", err)
	}
	f := &storeFiles{dir: dir}
	for _, e := range entries {
		name := e.Name()
		base, ext, _ := strings.Cut(name, ".")
		id, err := strconv.ParseUint(base, 10, 32)
		switch {
		case ext == "sst" && err == nil:
			f.tables = append(f.tables, id)
		case ext == "mem" && err == nil:
			f.mems = append(f.mems, name)
		case ext == "vlog" && err == nil:
			f.vlogs = append(f.vlogs, uint32(id))
		}
	}
	slices.Sort(f.tables)
	slices.Sort(f.mems)
	slices.Sort(f.vlogs)
	f.readManifest()
	return f, nil
}

func (f *storeFiles) readManifest() {
	fp, err := os.Open(filepath.Join(f.dir, badger.ManifestFilename))
	if err != nil {
		f.problem(badger.ManifestFilename, "%v", err)
		return
	}
	defer fp.Close()
	m, err := replayManifest(fp)
	if err != nil {
		f.problem(badger.ManifestFilename, "%v", err)
		return
	}
	f.manifest = &m
	for id := range m.Tables {
		if !slices.Contains(f.tables, id) {
			f.problem(table.IDToFilename(id), "listed in the MANIFEST but missing")
		}
	}
	for _, id := range f.tables {
		if _, ok := m.Tables[id]; !ok {
			f.unlisted = append(f.unlisted, id)
		}
	}
}

// check reads the files: every table's index (deep: every block too), each
// write-ahead log and (deep) the value logs. Damage in a value log is not
// worth refusing to open the store for: Badger cuts the last one off at the
// damage, and each event it held is then quarantined and counted.
//
// A table the MANIFEST does not list may be left over from a crash: the
// output of a compaction (its writes all come from listed tables, none newer
// than theirs) or of a memtable flush (the same writes as a write-ahead log
// still there, up to the same newest version). Badger deletes those, and may.
// Any other holds writes no other file has, which is what a MANIFEST cut
// short no longer lists: Badger would delete them too.
func (f *storeFiles) check(deep bool) {
	newest, listedNewest := make(map[uint64]uint64), uint64(0)
	for _, id := range f.tables {
		t, err := f.openTable(id)
		if err != nil {
			f.problem(table.IDToFilename(id), "cannot be opened: %v", err)
			continue
		}
		newest[id] = t.MaxVersion()
		if !slices.Contains(f.unlisted, id) {
			listedNewest = max(listedNewest, t.MaxVersion())
		}
		s := newTableSource(t)
		if deep {
			for s.Rewind(); s.Valid(); s.Next() {
			}
		}
		for _, b := range s.bad {
			f.problem(table.IDToFilename(id), "%s", b)
		}
		_ = s.Close()
	}
	walNewest := make(map[uint64]bool)
	for _, name := range f.mems {
		v := uint64(0)
		for _, e := range f.checkLog(name) {
			v = max(v, y.ParseTs(e.key))
		}
		walNewest[v] = true
	}
	for _, id := range f.vlogs {
		if deep {
			f.checkLog(fmt.Sprintf("%06d.vlog", id))
		}
	}
	for _, id := range f.unlisted {
		if v, ok := newest[id]; ok && v > listedNewest && !walNewest[v] {
			f.problem(table.IDToFilename(id), "not listed in the MANIFEST, and holds writes no other file has: "+
				"Badger would delete it when it opens the store")
		}
	}
}

// checkLog parses one log file and notes its damage.
func (f *storeFiles) checkLog(name string) []logEntry {
	data, err := os.ReadFile(filepath.Join(f.dir, name))
	switch {
	case err != nil:
		f.problem(name, "%v", err)
		return nil
	case len(data) < logHeaderSize:
		f.problem(name, "%d bytes: shorter than a log header", len(data))
		return nil
	case binary.BigEndian.Uint64(data) != 0:
		f.problem(name, "encrypted; Flowgate does not encrypt its store")
		return nil
	}
	entries, damage := parseLog(data)
	for _, d := range damage {
		f.problem(name, "%s, and intact entries follow", d)
	}
	return entries
}

// ErrDamaged is wrapped by the error of checkBeforeOpen.
var ErrDamaged = errors.New("uplink: the store is damaged")

// checkBeforeOpen checks, cheaply, for the damage that Badger would not
// report but turn into a silent loss or a crash when it opens the store in
// dir: a MANIFEST that does not list tables holding writes (Badger deletes
// them), a table footer it would crash on, a write-ahead log it would cut
// off before intact entries. It reads each table's index and the logs, not
// every block: that is `flowgate store check`.
func checkBeforeOpen(dir string) error {
	f, err := listStore(dir)
	if err != nil || len(f.tables)+len(f.mems)+len(f.vlogs) == 0 {
		return nil // a new store, or one Badger will report on itself
	}
	f.check(false)
	if len(f.problems) == 0 {
		return nil
	}
	var b strings.Builder
	for _, p := range f.problems {
		b.WriteString("\n\t" + p.String())
	}
	return fmt.Errorf("%w: %s:%s\nNothing was changed. Stop here and run `flowgate store salvage`, "+
		"which moves the store aside and recovers what can be read (see the README)", ErrDamaged, dir, b.String())
}

func replayManifest(fp *os.File) (m badger.Manifest, err error) {
	defer recoverTo(&err)
	quiet := badger.DefaultOptions("").WithLogger(badgerLogger{slog.New(slog.DiscardHandler)})
	m, _, err = badger.ReplayManifestFile(fp, 0, quiet)
	return m, err
}

// recoverTo turns a panic in Badger's code, reading a damaged file, into an
// error.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("unreadable (%v)", r)
	}
}

// compression is how table id was written: as the MANIFEST says, or
// Badger's default.
func (f *storeFiles) compression(id uint64) options.CompressionType {
	if f.manifest != nil {
		if tm, ok := f.manifest.Tables[id]; ok {
			return tm.Compression
		}
	}
	return options.Snappy
}

// checkFooter checks what Badger's table.OpenTable reads before it checks
// anything itself, where a damaged value makes it exit the process. An
// index that passes its checksum but is still malformed (forged, or a
// one-in-four-billion chance) makes the flatbuffer code panic: recovered.
func checkFooter(data []byte) (err error) {
	defer recoverTo(&err)
	pos := len(data) - 4
	if pos < 0 {
		return fmt.Errorf("%d bytes: too short to be a table", len(data))
	}
	chkLen := int(binary.BigEndian.Uint32(data[pos:]))
	if pos -= chkLen; chkLen > len(data) || pos < 4 {
		return fmt.Errorf("damaged footer (checksum length %d)", chkLen)
	}
	var chk pb.Checksum
	if err := proto.Unmarshal(data[pos:pos+chkLen], &chk); err != nil {
		return fmt.Errorf("damaged footer: %w", err)
	}
	if chk.Algo != pb.Checksum_CRC32C && chk.Algo != pb.Checksum_XXHash64 {
		return fmt.Errorf("damaged footer (checksum algorithm %d)", chk.Algo)
	}
	pos -= 4
	idxLen := int(binary.BigEndian.Uint32(data[pos:]))
	if idxLen > pos || idxLen < 8 {
		return fmt.Errorf("damaged footer (index length %d)", idxLen)
	}
	idx := data[pos-idxLen : pos]
	if err := y.VerifyChecksum(idx, &chk); err != nil {
		return fmt.Errorf("damaged index: %w", err)
	}
	ti := fb.GetRootAsTableIndex(idx, 0)
	if ti.OffsetsLength() == 0 {
		return fmt.Errorf("index lists no blocks")
	}
	var bo fb.BlockOffset
	for i := range ti.OffsetsLength() {
		if !ti.Offsets(&bo, i) || int(bo.Offset())+int(bo.Len()) > pos-idxLen {
			return fmt.Errorf("index block %d lies outside the table", i)
		}
	}
	return nil
}

// openTable opens table id read-only, with every block's checksum checked
// as it is read. A table that Badger's OpenTable refuses leaks its mapping:
// Badger does not say whether it unmapped it, and unmapping twice is worse.
// OpenTable reads the last block to learn the biggest key: if that block is
// damaged, the table cannot be read at all.
func (f *storeFiles) openTable(id uint64) (t *table.Table, err error) {
	defer recoverTo(&err)
	path := table.NewFilename(id, f.dir)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return nil, fmt.Errorf("empty or unreadable: %v", err)
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if tm, ok := f.manifestTable(id); ok && tm.KeyID != 0 {
		err = fmt.Errorf("encrypted; Flowgate does not encrypt its store")
	} else {
		err = checkFooter(mf.Data)
	}
	if err != nil {
		_ = mf.Close(-1)
		return nil, err
	}
	return table.OpenTable(mf, table.Options{ReadOnly: true, ChkMode: options.OnBlockRead,
		BlockSize: 4 << 10, Compression: f.compression(id)})
}

func (f *storeFiles) manifestTable(id uint64) (badger.TableManifest, bool) {
	if f.manifest == nil {
		return badger.TableManifest{}, false
	}
	tm, ok := f.manifest.Tables[id]
	return tm, ok
}

// tableSource iterates a table, block by block, stepping over the blocks
// that cannot be read, which Badger's own iterator silently stops at. It
// is a y.Iterator, for Badger's merge iterator.
type tableSource struct {
	t      *table.Table
	it     *table.Iterator
	starts [][]byte // the first key of every block
	blk    int      // the block the iterator is in
	valid  bool
	bad    []string // why blocks could not be read
}

func newTableSource(t *table.Table) *tableSource {
	s := &tableSource{t: t, it: t.NewIterator(0)}
	for _, k := range t.KeySplits(1<<30, nil) {
		s.starts = append(s.starts, []byte(k))
	}
	return s
}

// try runs a move of the iterator; a panic in it means the block is damaged.
func (s *tableSource) try(move func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.bad = append(s.bad, fmt.Sprintf("block %d: %v", s.blk, firstLine(r)))
			ok = false
		}
	}()
	move()
	return s.it.Valid()
}

// seekBlock moves to the first readable block from b on.
func (s *tableSource) seekBlock(b int) {
	for s.valid = false; b < len(s.starts); b++ {
		s.blk = b
		if s.try(func() { s.it.Seek(s.starts[b]) }) {
			s.valid = true
			return
		}
		s.bad = append(s.bad, fmt.Sprintf("block %d of %d cannot be read (checksum or decompression failed)", b, len(s.starts)))
	}
}

func (s *tableSource) Rewind() { s.seekBlock(0) }

func (s *tableSource) Next() {
	if !s.try(s.it.Next) {
		s.seekBlock(s.blk + 1)
		return
	}
	for s.blk+1 < len(s.starts) && y.CompareKeys(s.it.Key(), s.starts[s.blk+1]) >= 0 {
		s.blk++
	}
}

// Seek moves to the first key at or after key.
func (s *tableSource) Seek(key []byte) {
	b, _ := slices.BinarySearchFunc(s.starts, key, func(start, k []byte) int { return y.CompareKeys(start, k) })
	s.seekBlock(max(b-1, 0))
	for s.valid && y.CompareKeys(s.it.Key(), key) < 0 {
		s.Next()
	}
}

func (s *tableSource) Key() []byte          { return s.it.Key() }
func (s *tableSource) Value() y.ValueStruct { return s.it.Value() }
func (s *tableSource) Valid() bool          { return s.valid }

// Close releases the iterator and unmaps the table; the file stays.
func (s *tableSource) Close() error {
	_ = s.it.Close()
	return s.t.Close(-1)
}

func firstLine(r any) string {
	l, _, _ := strings.Cut(fmt.Sprint(r), "\n")
	return l
}
