package uplink

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The journal: where live events are durable before Badger holds them.
//
// Most events are acknowledged by the cloud within milliseconds of being
// accepted. Writing each into Badger, and its delete after, makes every one
// pass through a memtable, a level 0 table and a compaction: most of the
// outbox's CPU and memory at high rates, and the pauses of a memtable flush
// in its latency. So a group commit appends its records to a journal file
// and syncs that instead; the records stay in memory (they are what the
// sender sends) and are "hot". A hot record the cloud acknowledges is
// forgotten without touching Badger. One still held after hotFor, or beyond
// hotMax bytes of hot records, is written to Badger by a later commit (it
// "spills") and from then on is an ordinary stored record. Records spill in
// sequence order, across lanes, so Badger always holds exactly the records
// below a sequence number (hotFrom) and the journal those at or above it.
//
// A journal file is removed once each of its records is acknowledged or
// spilled (and Badger synced). Opening the store writes the records of the
// journal files left by a crash into Badger, those above both the highest
// sequence number Badger holds and their lane's low mark (and, after a
// power cut, those Badger lost: powercut.go), then removes the files. Closing spills every hot record, so a clean restart replays
// nothing. An event acknowledged above its lane's low mark before a crash is
// sent again after it, with the same id.
//
// A file is a sequence of frames, one per group commit (several for a
// commit whose frame would pass maxJournalFrame; a crash between them
// leaves the first of them, whose records are replayed like those of any
// commit synced but not yet acknowledged to its devices):
//
//	frame:  length uint32 | crc32c(payload) uint32 | payload
//	payload: record*
//	record: len(class) uint8 | class | segment uint32 | seq uint64 | len(value) uint32 | value
//
// all big-endian. A frame cut short or failing its checksum ends the file:
// the tail of the last file after a crash. Anywhere else it is damage, and
// the file is kept, renamed with .damaged, for inspection.

// journalDir is the journal's directory inside the store.
const journalDir = "journal"

// journalFileBytes is the size at which the journal starts a new file,
// unless the store's byte cap asks for less (journalLimits).
const journalFileBytes = 4 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Errors of readJournal: a frame that cannot be read, and one the file
// ends inside of (at the end of the last file, the write a crash
// interrupted; anywhere else, damage).
var (
	errJournalFrame = errors.New("uplink: journal: damaged frame")
	errJournalCut   = errors.New("uplink: journal: frame cut short by the end of the file")
)

// journal appends frames to numbered files in dir. Only the committer uses
// it, except when the store opens and closes.
type journal struct {
	dir  string
	f    *os.File
	cur  uint32 // number of f
	size int64  // bytes in f
	max  int64  // size at which a new file starts; 0: journalFileBytes
	buf  []byte
}

// openJournal opens dir, creating it, and returns the numbers of the files
// it holds, ascending. New frames go to a new file after them.
func openJournal(dir string) (*journal, []uint32, error) {
	if err := mkdirSynced(dir); err != nil {
		return nil, nil, fmt.Errorf("uplink: journal: %w", err)
	}
	nums, err := listJournal(dir)
	if err != nil {
		return nil, nil, err
	}
	j := &journal{dir: dir}
	if len(nums) > 0 {
		j.cur = nums[len(nums)-1]
	}
	return j, nums, nil
}

// listJournal returns the numbers of the journal files in dir, ascending;
// none if dir does not exist.
func listJournal(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("uplink: journal: %w", err)
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := journalFileNum(e.Name()); ok {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

func journalFileName(n uint32) string { return fmt.Sprintf("%010d.log", n) }

func journalFileNum(name string) (uint32, bool) {
	s, ok := strings.CutSuffix(name, ".log")
	if !ok || len(s) != 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func (j *journal) path(n uint32) string { return filepath.Join(j.dir, journalFileName(n)) }

// append writes recs (as one frame, or several for a very large batch)
// and syncs them, starting a new file first when the current one is full;
// it returns the number of the file written.
func (j *journal) append(recs []record, lanes []*lane) (uint32, error) {
	if j.f == nil || j.size >= cmp.Or(j.max, journalFileBytes) {
		if err := j.rotate(); err != nil {
			return 0, err
		}
	}
	if n := framesBytes(recs, lanes); cap(j.buf) < n {
		j.buf = make([]byte, 0, n) // not slices.Grow: it would copy the old buffer
	}
	j.buf = appendFrames(j.buf[:0], recs, lanes, maxJournalFrame)
	_, err := j.f.Write(j.buf)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		// The frame's records are refused; what of it reached the file
		// must not hide the frames after it. A file that cannot be cut
		// back is left for a new one.
		if terr := j.f.Truncate(j.size); terr != nil {
			_ = j.f.Close()
			j.f = nil
		}
		return 0, fmt.Errorf("uplink: journal: %w", err)
	}
	j.size += int64(len(j.buf))
	if cap(j.buf) > keepJournalBuf {
		j.buf = nil // a burst's frame: do not keep it
	}
	return j.cur, nil
}

// rotate closes the current file and creates the next one, making its
// name durable.
func (j *journal) rotate() error {
	if j.f != nil {
		if err := j.f.Close(); err != nil {
			return fmt.Errorf("uplink: journal: %w", err)
		}
		j.f = nil
	}
	j.cur++
	f, err := os.OpenFile(j.path(j.cur), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("uplink: journal: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		_ = f.Close()
		return err
	}
	j.f, j.size = f, 0
	return nil
}

// remove deletes file n.
func (j *journal) remove(n uint32) error {
	if err := os.Remove(j.path(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("uplink: journal: %w", err)
	}
	return nil
}

// close closes the current file.
func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// mkdirSynced creates dir if it is missing, and makes its name durable.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("uplink: journal: %w", err)
	}
	return nil
}

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// appendFrames appends recs to b as frames of at most max bytes of payload
// each, so that the reader, which refuses a longer one as damage, reads
// them all back: one frame unless recs are a very large batch.
func appendFrames(b []byte, recs []record, lanes []*lane, max int) []byte {
	start, size := 0, 0
	for i, r := range recs {
		n := recordBytes(lanes[idLane(r.id)].Name, r.val)
		if i > start && size+n > max {
			b = appendFrame(b, recs[start:i], lanes)
			start, size = i, 0
		}
		size += n
	}
	return appendFrame(b, recs[start:], lanes)
}

// framesBytes is how long recs are as one frame: what appendFrames
// appends, unless recs are split.
func framesBytes(recs []record, lanes []*lane) int {
	n := 8
	for _, r := range recs {
		n += recordBytes(lanes[idLane(r.id)].Name, r.val)
	}
	return n
}

// keepJournalBuf is the largest frame buffer the journal keeps for the
// next commit: a commit under load (~500 events of a few hundred bytes)
// fits, so a busy store writes its frames without allocating.
const keepJournalBuf = 1 << 20

// recordBytes is the length of a record of class name and value val in a
// frame's payload.
func recordBytes(name string, val []byte) int { return 1 + len(name) + 4 + 8 + 4 + len(val) }

// appendFrame appends the frame of recs to b.
func appendFrame(b []byte, recs []record, lanes []*lane) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	for _, r := range recs {
		name := lanes[idLane(r.id)].Name
		b = append(b, byte(len(name)))
		b = append(b, name...)
		b = binary.BigEndian.AppendUint32(b, r.seg)
		b = binary.BigEndian.AppendUint64(b, idSeq(r.id))
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.val)))
		b = append(b, r.val...)
	}
	payload := b[start+8:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b
}

// journalRecord is one record read back from the journal.
type journalRecord struct {
	class string
	seg   uint32
	seq   uint64
	val   []byte
}

// maxJournalFrame bounds a frame's length field before it is trusted.
const maxJournalFrame = 1 << 30

// readJournal calls fn for each record of the frames in r, in order. It
// returns nil at the end of r, errJournalCut at a frame r ends inside of,
// errJournalFrame at a frame that fails its checksum or does not parse,
// and fn's error as it is.
func readJournal(r io.Reader, fn func(journalRecord) error) error {
	var hdr [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return errJournalCut
			}
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n > maxJournalFrame {
			return fmt.Errorf("%w: length %d", errJournalFrame, n)
		}
		var err error
		if payload, err = readPayload(r, payload[:0], n); err != nil {
			return err
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return fmt.Errorf("%w: checksum", errJournalFrame)
		}
		if err := parseFrame(payload, fn); err != nil {
			return err
		}
	}
}

// readPayload reads n bytes of r into buf, growing it a chunk at a time so
// that a damaged length costs no more memory than the file holds.
func readPayload(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		chunk := min(n-len(buf), 1<<20)
		buf = slices.Grow(buf, chunk)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return buf, errJournalCut
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// parseFrame calls fn for each record of a frame's payload.
func parseFrame(p []byte, fn func(journalRecord) error) error {
	for len(p) > 0 {
		nl := int(p[0])
		if len(p) < 1+nl+16 {
			return fmt.Errorf("%w: record cut short", errJournalFrame)
		}
		jr := journalRecord{class: string(p[1 : 1+nl])}
		p = p[1+nl:]
		jr.seg = binary.BigEndian.Uint32(p)
		jr.seq = binary.BigEndian.Uint64(p[4:])
		vl := binary.BigEndian.Uint32(p[12:])
		p = p[16:]
		if uint64(vl) > uint64(len(p)) || jr.seq >= 1<<seqBits { // guardSeq is above too
			return fmt.Errorf("%w: record of %d bytes, sequence %d", errJournalFrame, vl, jr.seq)
		}
		jr.val = slices.Clone(p[:vl])
		p = p[vl:]
		if err := fn(jr); err != nil {
			return err
		}
	}
	return nil
}
