package uplink

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Segments: how the outbox gives disk space back.
//
// Badger deletes by writing a tombstone, and the space of the deleted value
// comes back only when a compaction brings the two together. For a queue
// that is a poor bargain: the tombstones are tiny, so the levels they sit in
// rarely fill enough to be compacted into the level that holds the old
// events, and a store that forwards everything can still grow many times
// larger than its backlog. So each lane is cut into segments of about
// segmentBytes, numbered in its keys, and once every record of a lane's
// oldest segment is deleted (acknowledged, expired or dropped) the whole
// segment is dropped with Badger's DropPrefix, which deletes the table files
// that hold only it and rewrites the few it shares. DropPrefix stops writes
// while it runs (about 100 ms on a Raspberry Pi class disk), so segments are
// large: it runs once per segment drained.

// DropPrefix looks for a live key under the prefix before it does anything,
// and the records of a segment ready to drop are all deleted; so each
// segment has a guard key, written with its first record and never deleted,
// that makes DropPrefix do its work. Its sequence number, guardSeq, sorts
// after every record of the segment.
const guardSeq = math.MaxUint64

// segment is the part of a lane whose keys carry number num; its first
// record has sequence number first.
type segment struct {
	Num   uint32 `json:"num"`
	First uint64 `json:"first"`
}

// segmentBytes is the size of a segment for a given byte cap: a sixteenth of
// the cap, so that a deleted segment waiting to be dropped costs little of
// it, between 1 MiB and 64 MiB.
func segmentBytes(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 64 << 20
	}
	return min(max(maxBytes/16, 1<<20), 64<<20)
}

// recordKey is the key of record seq in segment seg of lane l:
// 'r' len(name) name seg(4) seq(8).
func recordKey(l *lane, seg uint32, seq uint64) []byte {
	k := make([]byte, len(l.prefix), len(l.prefix)+12)
	copy(k, l.prefix)
	k = binary.BigEndian.AppendUint32(k, seg)
	return binary.BigEndian.AppendUint64(k, seq)
}

// segmentPrefix is the prefix of every key of segment seg of lane l.
func segmentPrefix(l *lane, seg uint32) []byte {
	k := make([]byte, len(l.prefix), len(l.prefix)+4)
	copy(k, l.prefix)
	return binary.BigEndian.AppendUint32(k, seg)
}

// parseKey returns the segment and sequence number in a key of lane l.
func parseKey(l *lane, key []byte) (seg uint32, seq uint64, ok bool) {
	if len(key) != len(l.prefix)+12 {
		return 0, 0, false
	}
	rest := key[len(l.prefix):]
	seg, seq = binary.BigEndian.Uint32(rest), binary.BigEndian.Uint64(rest[4:])
	if seq >= 1<<seqBits && seq != guardSeq { // not a key the outbox wrote
		return 0, 0, false
	}
	return seg, seq, true
}

// segOf is the segment that holds, or would hold, sequence number seq.
func (l *lane) segOf(seq uint64) uint32 {
	i, found := slices.BinarySearchFunc(l.segs, seq, func(s segment, q uint64) int { return cmp.Compare(s.First, q) })
	switch {
	case found:
		return l.segs[i].Num
	case i > 0:
		return l.segs[i-1].Num
	case len(l.segs) > 0:
		return l.segs[0].Num
	}
	return 0
}

// appendSeg returns the segment a record of cost bytes appended to l now,
// as sequence number seq, goes into: the open one, or a new one once the
// open one holds segmentBytes.
func (l *lane) appendSeg(seq uint64, cost, limit int64) uint32 {
	if len(l.segs) == 0 || l.openBytes+cost > limit && l.openBytes > 0 {
		num := uint32(0)
		if len(l.segs) > 0 {
			num = l.segs[len(l.segs)-1].Num + 1
		}
		l.segs = append(l.segs, segment{Num: num, First: seq})
		l.openBytes = 0
	}
	l.openBytes += cost
	return l.segs[len(l.segs)-1].Num
}

// segRef names one segment of one lane.
type segRef struct {
	lane int
	seg  uint32
}

// emptySegments takes the segments whose records are all deleted off the
// lanes and queues them to be dropped at the next commit. The open segment
// of a lane is never dropped.
func (o *outbox) emptySegments() {
	if len(o.redrop) > 0 {
		o.batch().drop = append(o.pend.drop, o.redrop...)
		o.redrop = nil
	}
	for _, l := range o.lanes {
		for len(l.segs) > 1 && l.low >= l.segs[1].First {
			o.batch().drop = append(o.pend.drop, segRef{l.idx, l.segs[0].Num})
			l.segs = l.segs[1:]
		}
	}
	if o.pend != nil && len(o.pend.drop) > 0 {
		o.poke()
	}
}

// dropSegments drops the segments in refs from the store, and from m once
// they are gone. Badger's DropPrefix does not always finish: when the
// compaction of its level 0 cannot run, it leaves what it holds there and
// says nothing. So every drop is checked, and a segment not yet gone is
// returned, to be dropped again at the next maintenance turn; it stays in
// meta meanwhile, so a restart tries again too.
func (o *outbox) dropSegments(refs []segRef, m *meta) (again []segRef, err error) {
	for _, r := range refs {
		l := o.lanes[r.lane]
		p := segmentPrefix(l, r.seg)
		if err := o.db.DropPrefix(p); err != nil {
			return nil, fmt.Errorf("drop segment %d of class %s: %w", r.seg, l.Name, err)
		}
		if !o.prefixEmpty(p) {
			again = append(again, r)
			continue
		}
		lm := m.Lanes[l.Name]
		lm.Segs = slices.DeleteFunc(slices.Clone(lm.Segs), func(s segment) bool { return s.Num == r.seg })
		m.Lanes[l.Name] = lm
	}
	return again, nil
}

// prefixEmpty reports whether no key starts with p.
func (o *outbox) prefixEmpty(p []byte) bool {
	empty := true
	_ = o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty
}

// noteSegment adds seg, starting at seq, to lane name's segments in m if it
// is new, and reports whether it was.
func (m *meta) noteSegment(name string, seg uint32, seq uint64) bool {
	lm := m.Lanes[name]
	if n := len(lm.Segs); n > 0 && lm.Segs[n-1].Num >= seg {
		return false
	}
	lm.Segs = append(slices.Clip(lm.Segs), segment{Num: seg, First: seq})
	m.Lanes[name] = lm
	return true
}
