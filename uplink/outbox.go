package uplink

// outbox holds accepted events, encoded, in the order they were accepted,
// until the broker acknowledges them: reading a record does not consume it,
// only Delete does (ack-then-delete).
//
// memOutbox keeps records in memory; diskOutbox (store.go) in a Badger
// store. The Uplink calls every method with its mutex held, so an
// implementation needs no locking of its own and must not block; diskOutbox
// reads Badger there, which is memory or page cache in the common case.
type outbox interface {
	// Append adds rec at the end and returns its sequence number, greater
	// than every earlier one. It returns errFull when the outbox is full.
	Append(rec []byte) (seq uint64, err error)

	// Next returns the oldest record whose sequence number is at least from.
	Next(from uint64) (seq uint64, rec []byte, ok bool)

	// Delete removes a record; an unknown sequence number is ignored.
	Delete(seq uint64)

	// Len is the number of records held.
	Len() int
}

// memOutbox is an outbox in memory, bounded by a record count. Records are
// usually deleted oldest first; a record rejected by the broker can leave a
// hole, which Next skips.
type memOutbox struct {
	recs  [][]byte // recs[i] has sequence number first+i; nil once deleted
	first uint64
	n     int // non-nil entries in recs
	limit int
}

func newMemOutbox(limit int) *memOutbox {
	return &memOutbox{first: 1, limit: limit}
}

func (m *memOutbox) Append(rec []byte) (uint64, error) {
	if m.n >= m.limit {
		return 0, errFull
	}
	m.recs = append(m.recs, rec)
	m.n++
	return m.first + uint64(len(m.recs)) - 1, nil
}

func (m *memOutbox) Next(from uint64) (uint64, []byte, bool) {
	from = max(from, m.first)
	for i := from - m.first; i < uint64(len(m.recs)); i++ {
		if m.recs[i] != nil {
			return m.first + i, m.recs[i], true
		}
	}
	return 0, nil, false
}

func (m *memOutbox) Delete(seq uint64) {
	if seq < m.first || seq-m.first >= uint64(len(m.recs)) || m.recs[seq-m.first] == nil {
		return
	}
	m.recs[seq-m.first] = nil
	m.n--
	for len(m.recs) > 0 && m.recs[0] == nil {
		m.recs = m.recs[1:]
		m.first++
	}
}

func (m *memOutbox) Len() int { return m.n }
