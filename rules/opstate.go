package rules

import (
	"time"

	"github.com/paulmach/orb"

	"github.com/flowgate/flowgate/event"
)

// Each operator's state, written to and read from a checkpoint (see
// state.go and checkpoint.go). load reads into a fresh operator of the
// same definition; a damaged checkpoint leaves an error in d.

func (w *enc) timer(k keyTimer) { w.i(k.at); w.bool(k.set) }
func (d *dec) timer() keyTimer  { return keyTimer{at: d.i(), set: d.bool()} }

// must reads an event an operator cannot do without.
func (d *dec) must() *event.Event {
	ev := d.ev()
	if ev == nil {
		d.fail()
	}
	return ev
}

func (transformOp) save(*enc) {}
func (transformOp) load(*dec) {}

func (o *windowOp) save(w *enc) {
	saveMap(w, o.keys, func(w *enc, k *winKey) {
		w.n(len(k.open))
		for _, win := range k.open {
			w.i(win.start)
			w.i(win.end)
			w.s(win.firstID)
			w.s(win.lastID)
			w.n(win.n)
			w.n(len(win.accs))
			for i := range win.accs {
				win.accs[i].save(w)
			}
		}
		w.ev(k.last)
		w.events(k.recent)
		w.bool(k.held)
	})
}

func (o *windowOp) load(d *dec) {
	o.keys = loadMap(d, func(d *dec) *winKey {
		k := &winKey{}
		for range d.n() {
			if d.err != nil {
				break
			}
			win := &win{start: d.i(), end: d.i(), firstID: d.s(), lastID: d.s(), n: d.n()}
			if n := d.n(); n != len(o.aggs) {
				d.fail()
				return k
			}
			win.accs = make([]acc, len(o.aggs))
			for i := range win.accs {
				win.accs[i].load(d)
				if o.aggs[i].fn == aggPercentile && int64(len(win.accs[i].vals)) != win.accs[i].n {
					d.fail() // percentile keeps every value it counted
				}
			}
			k.open = append(k.open, win)
		}
		k.last, k.recent, k.held = d.ev(), d.events(), d.bool()
		return k
	})
}

func (a *acc) save(w *enc) {
	w.i(a.n)
	for _, f := range []float64{a.sum, a.mean, a.m2, a.min, a.max, a.first, a.last} {
		w.f(f)
	}
	w.i(a.firstT)
	w.i(a.lastT)
	w.n(len(a.vals))
	for _, v := range a.vals {
		w.f(v)
	}
	saveMap(w, a.set, func(*enc, struct{}) {})
}

func (a *acc) load(d *dec) {
	a.n = d.i()
	a.sum, a.mean, a.m2, a.min, a.max, a.first, a.last = d.f(), d.f(), d.f(), d.f(), d.f(), d.f(), d.f()
	a.firstT, a.lastT = d.i(), d.i()
	for range d.n() {
		if d.err != nil {
			break
		}
		a.vals = append(a.vals, d.f())
	}
	if set := loadMap(d, func(*dec) struct{} { return struct{}{} }); len(set) > 0 {
		a.set = set
	}
}

func (o *changeOp) save(w *enc) {
	saveMap(w, o.last, func(w *enc, s *changeState) { w.raw(s.raw); w.f(s.num); w.bool(s.isN) })
}

func (o *changeOp) load(d *dec) {
	o.last = loadMap(d, func(d *dec) *changeState { return &changeState{raw: d.raw(), num: d.f(), isN: d.bool()} })
}

func (o *thresholdOp) save(w *enc) {
	saveMap(w, o.active, func(w *enc, s thresholdStart) { w.s(s.id); w.i(s.at.UnixNano()) })
}

func (o *thresholdOp) load(d *dec) {
	o.active = loadMap(d, func(d *dec) thresholdStart {
		return thresholdStart{id: d.s(), at: time.Unix(0, d.i()).UTC()}
	})
}

func (o *rateOp) save(w *enc) {
	saveMap(w, o.prev, func(w *enc, p *ratePrev) { w.f(p.v); w.i(p.t); w.s(p.id) })
}

func (o *rateOp) load(d *dec) {
	o.prev = loadMap(d, func(d *dec) *ratePrev { return &ratePrev{v: d.f(), t: d.i(), id: d.s()} })
}

func (o *sequenceOp) save(w *enc) {
	saveMap(w, o.state, func(w *enc, s *seqState) {
		w.n(s.next)
		w.i(s.start)
		w.n(len(s.ids))
		for _, id := range s.ids {
			w.s(id)
		}
	})
}

func (o *sequenceOp) load(d *dec) {
	o.state = loadMap(d, func(d *dec) *seqState {
		s := &seqState{next: d.n(), start: d.i()}
		for range d.n() {
			if d.err != nil {
				break
			}
			s.ids = append(s.ids, d.s())
		}
		if s.next >= len(o.steps) {
			d.fail()
		}
		return s
	})
}

func (o *absenceOp) save(w *enc) {
	saveMap(w, o.pending, func(w *enc, s *absState) { w.i(s.deadline); w.s(s.id); w.ev(s.trigger) })
}

func (o *absenceOp) load(d *dec) {
	o.pending = loadMap(d, func(d *dec) *absState { return &absState{deadline: d.i(), id: d.s(), trigger: d.must()} })
}

func (o *geofenceOp) save(w *enc) {
	saveMap(w, o.keys, func(w *enc, stays []fenceStay) {
		w.n(len(stays))
		for _, s := range stays {
			w.n(s.zone)
			w.i(s.since)
			w.s(s.id)
		}
	})
}

func (o *geofenceOp) load(d *dec) {
	o.keys = loadMap(d, func(d *dec) []fenceStay {
		var stays []fenceStay
		for range d.n() {
			if d.err != nil {
				break
			}
			s := fenceStay{zone: d.n(), since: d.i(), id: d.s()}
			if s.zone >= len(o.zones) {
				d.fail()
				return nil
			}
			stays = append(stays, s)
		}
		return stays
	})
}

func (o *movementOp) save(w *enc) {
	saveMap(w, o.last, func(w *enc, f *lastFix) { w.f(f.p[0]); w.f(f.p[1]); w.i(f.t); w.s(f.id) })
}

func (o *movementOp) load(d *dec) {
	o.last = loadMap(d, func(d *dec) *lastFix { return &lastFix{p: orb.Point{d.f(), d.f()}, t: d.i(), id: d.s()} })
}

func (o *rfidOp) save(w *enc) {
	saveMap(w, o.tags, func(w *enc, s *rfidStay) {
		w.s(s.reader)
		w.i(s.first)
		w.i(s.last)
		w.s(s.firstID)
		w.ev(s.lastEv)
		w.n(s.reads)
		w.timer(s.timer)
	})
}

func (o *rfidOp) load(d *dec) {
	o.tags = loadMap(d, func(d *dec) *rfidStay {
		return &rfidStay{reader: d.s(), first: d.i(), last: d.i(), firstID: d.s(), lastEv: d.must(), reads: d.n(), timer: d.timer()}
	})
}

func (o *dwellOp) save(w *enc) {
	saveMap(w, o.keys, func(w *enc, s *dwellStay) { w.s(s.zone); w.i(s.since); w.i(s.last); w.ev(s.trigger); w.bool(s.over) })
}

func (o *dwellOp) load(d *dec) {
	o.keys = loadMap(d, func(d *dec) *dwellStay {
		return &dwellStay{zone: d.s(), since: d.i(), last: d.i(), trigger: d.must(), over: d.bool()}
	})
}

func (o *distinctOp) save(w *enc) {
	saveMap(w, o.keys, func(w *enc, k *distinctKey) {
		saveMap(w, k.seen, func(w *enc, s seenAt) { w.i(s.t); w.s(s.id) })
		w.bool(k.active)
		w.timer(k.timer)
	})
}

func (o *distinctOp) load(d *dec) {
	o.keys = loadMap(d, func(d *dec) *distinctKey {
		k := &distinctKey{seen: loadMap(d, func(d *dec) seenAt { return seenAt{t: d.i(), id: d.s()} })}
		k.active, k.timer = d.bool(), d.timer()
		return k
	})
}
