package rules

import (
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/flowgate/flowgate/event"
)

// The state codec: what checkpoints (checkpoint.go) are written in. A
// compact binary form of varints and length-prefixed strings, written and
// read field by field by each operator (opstate.go). Reading is
// defensive: a checkpoint is outside input, so a short or damaged one
// sets an error, never panics, and never allocates more than it holds.

// errState is what a damaged checkpoint reads as.
var errState = errors.New("rules: checkpoint is damaged or from another version")

type enc struct{ b []byte }

func (w *enc) u(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *enc) i(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *enc) n(v int)     { w.u(uint64(v)) }
func (w *enc) f(v float64) { w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v)) }
func (w *enc) s(v string)  { w.n(len(v)); w.b = append(w.b, v...) }
func (w *enc) raw(v []byte) {
	w.n(len(v))
	w.b = append(w.b, v...)
}

// sized starts a part whose length is written in front of it once it is
// done (size), so that a reader can skip it whole; it returns where.
func (w *enc) sized() int {
	w.b = append(w.b, 0, 0, 0, 0, 0, 0, 0, 0)
	return len(w.b)
}

func (w *enc) size(at int) { binary.LittleEndian.PutUint64(w.b[at-8:], uint64(len(w.b)-at)) }

func (w *enc) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// ev writes an event, or its absence.
func (w *enc) ev(e *event.Event) {
	w.bool(e != nil)
	if e == nil {
		return
	}
	for _, s := range []string{e.ID, e.Source, e.Type, e.Subject, e.DataContentType, e.Topic} {
		w.s(s)
	}
	w.i(e.Time.UnixNano())
	w.raw(e.Data)
}

func (w *enc) events(evs []*event.Event) {
	w.n(len(evs))
	for _, e := range evs {
		w.ev(e)
	}
}

// saveMap writes m's entries in key order, each value with val.
func saveMap[V any](w *enc, m map[string]V, val func(*enc, V)) {
	w.n(len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		w.s(k)
		val(w, m[k])
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err, d.b = errState, nil }

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// n reads a count or length, which cannot exceed what is left to read.
func (d *dec) n() int {
	v := d.u()
	if v > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *dec) f() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) raw() []byte {
	n := d.n()
	v := slices.Clone(d.b[:n])
	d.b = d.b[n:]
	return v
}

// sized reads a part written between enc.sized and enc.size, without
// copying it.
func (d *dec) sized() []byte {
	if len(d.b) < 8 {
		d.fail()
		return nil
	}
	n := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string {
	n := d.n()
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) bool() bool {
	if len(d.b) < 1 || d.b[0] > 1 {
		d.fail()
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *dec) ev() *event.Event {
	if !d.bool() {
		return nil
	}
	e := &event.Event{ID: d.s(), Source: d.s(), Type: d.s(), Subject: d.s(), DataContentType: d.s(), Topic: d.s()}
	e.Time = time.Unix(0, d.i()).UTC()
	e.Data = d.raw()
	if d.err != nil {
		return nil
	}
	return e
}

func (d *dec) events() []*event.Event {
	n := d.n()
	var evs []*event.Event
	for range n {
		if d.err != nil {
			break
		}
		if e := d.ev(); e != nil {
			evs = append(evs, e)
		}
	}
	return evs
}

// loadMap reads what saveMap wrote.
func loadMap[V any](d *dec, val func(*dec) V) map[string]V {
	n := d.n()
	m := make(map[string]V, min(n, 1024))
	for range n {
		if d.err != nil {
			break
		}
		k := d.s()
		v := val(d)
		if d.err != nil {
			return m
		}
		m[k] = v
	}
	return m
}
