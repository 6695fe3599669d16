package sim

import (
	"sort"
	"time"
)

// The trackers below follow one key's values as a device sent them and
// say which notable events the shipped rules (configs/rules/) make of
// them. They are written from the rules' documented meaning
// (configs/rules/README.md), not from the engine's code, so that a
// scenario test compares two independent accounts of the same data.

// point is one value of a key at a time.
type point struct {
	t time.Time
	v float64
	s string
}

// values picks field from messages (skipping those without it).
func values(ms []Message, field string) []point {
	var out []point
	for _, m := range ms {
		if v, ok := m.Value(field); ok {
			out = append(out, point{t: m.Stamp, v: v})
		} else if s := m.Text(field); s != "" {
			out = append(out, point{t: m.Stamp, s: s})
		}
	}
	return out
}

// thresholdTruth: typ when a value goes above limit (strictly) while not
// already on; clearTyp when an on key's value goes below clearBelow.
func thresholdTruth(pts []point, limit, clearBelow float64, typ, clearTyp, subject string, extra map[string]any) []Truth {
	var out []Truth
	on := false
	for _, p := range pts {
		switch {
		case !on && p.v > limit:
			on = true
			out = append(out, truth(typ, subject, p.t, extra, "value", p.v))
		case on && p.v < clearBelow:
			on = false
			out = append(out, truth(clearTyp, subject, p.t, extra, "value", p.v))
		}
	}
	return out
}

// tumblingTruth: one event per window of size (aligned on the Unix epoch)
// that holds at least one value and has closed by end (its end no later
// than end), when having (if given) holds for its values; with the count.
func tumblingTruth(pts []point, size time.Duration, end time.Time, typ, subject string, having func([]float64) bool) []Truth {
	var out []Truth
	for i := 0; i < len(pts); {
		start := pts[i].t.Truncate(size) // Truncate works from the zero time; size divides a day, so it agrees with the epoch
		wEnd := start.Add(size)
		var vs []float64
		for ; i < len(pts) && pts[i].t.Before(wEnd); i++ {
			vs = append(vs, pts[i].v)
		}
		if wEnd.After(end) || (having != nil && !having(vs)) {
			continue
		}
		out = append(out, truth(typ, subject, wEnd, nil, "count", len(vs)))
	}
	return out
}

// sessionTruth: a session of values ends gap after its last value when no
// value comes by then (one coming exactly then still belongs to it); it is
// reported at that time, with its count, once that is no later than end.
func sessionTruth(pts []point, gap time.Duration, end time.Time, typ, subject string) []Truth {
	var out []Truth
	for i := 0; i < len(pts); {
		n := 1
		for i+n < len(pts) && !pts[i+n].t.After(pts[i+n-1].t.Add(gap)) {
			n++
		}
		closes := pts[i+n-1].t.Add(gap)
		if !closes.After(end) {
			out = append(out, truth(typ, subject, closes, nil, "count", n))
		}
		i += n
	}
	return out
}

// rateTruth: the change between a value and the last one it was compared
// with, per per, above limit; a value less than minGap after that one is
// skipped, as the rate operator's min_interval does.
func rateTruth(pts []point, per, minGap time.Duration, limit float64, typ, subject string) []Truth {
	var out []Truth
	for prev, i := 0, 1; i < len(pts); i++ {
		dt := pts[i].t.Sub(pts[prev].t)
		if dt <= 0 || dt < minGap {
			continue // skipped: the next reading is compared with the same one
		}
		if (pts[i].v-pts[prev].v)/float64(dt)*float64(per) > limit {
			out = append(out, truth(typ, subject, pts[i].t, nil, "value", pts[i].v))
		}
		prev = i
	}
	return out
}

// absenceTruth: a start not followed by an end within `within` (an end
// exactly at the deadline is in time) is reported at the deadline, if that
// is no later than end. Starts while one is pending are ignored. evs are
// the key's start (true) and end (false) events in time order.
func absenceTruth(evs []startEnd, within time.Duration, end time.Time, typ, subject string, extra map[string]any) []Truth {
	var out []Truth
	var deadline time.Time
	pending := false
	for _, e := range evs {
		if pending && e.t.After(deadline) {
			if !deadline.After(end) {
				out = append(out, truth(typ, subject, deadline, extra))
			}
			pending = false
		}
		switch {
		case e.start && !pending:
			pending, deadline = true, e.t.Add(within)
		case !e.start && pending:
			pending = false
		}
	}
	if pending && !deadline.After(end) {
		out = append(out, truth(typ, subject, deadline, extra))
	}
	return out
}

// startEnd is a start or an end event of an absence.
type startEnd struct {
	t     time.Time
	start bool
}

// zoneStay is one interval a key spends somewhere: a reader, a zone.
type zoneStay struct {
	where       string
	first, last time.Time
}

// rfidTruth: a tag's reads (by time, across readers) become arrivals,
// moves and departures: arrived at a reader's first read; departed (quiet)
// quiet after its last read there, if the tag is not read elsewhere by
// then; a read at another reader before that is a move: departed (moved),
// moved, arrived, all at that read's time.
func rfidTruth(reads []point, quiet time.Duration, end time.Time, subject string) []Truth {
	var out []Truth
	var cur *zoneStay
	for _, r := range reads {
		if cur != nil && r.t.After(cur.last.Add(quiet)) { // gone quiet before this read
			out = append(out, truth("rfid.tag.departed", subject, cur.last.Add(quiet), nil, "reader", cur.where, "reason", "quiet"))
			cur = nil
		}
		switch {
		case cur == nil:
			cur = &zoneStay{where: r.s, first: r.t, last: r.t}
			out = append(out, truth("rfid.tag.arrived", subject, r.t, nil, "reader", r.s))
		case r.s == cur.where:
			cur.last = r.t
		default:
			out = append(out,
				truth("rfid.tag.departed", subject, r.t, nil, "reader", cur.where, "reason", "moved"),
				truth("rfid.tag.moved", subject, r.t, nil, "from", cur.where, "to", r.s),
				truth("rfid.tag.arrived", subject, r.t, nil, "reader", r.s))
			cur = &zoneStay{where: r.s, first: r.t, last: r.t}
		}
	}
	if cur != nil && !cur.last.Add(quiet).After(end) {
		out = append(out, truth("rfid.tag.departed", subject, cur.last.Add(quiet), nil, "reader", cur.where, "reason", "quiet"))
	}
	return out
}

// truth builds a Truth with extra fields and key/value pairs.
func truth(typ, subject string, t time.Time, extra map[string]any, kv ...any) Truth {
	tr := Truth{Type: typ, Subject: subject, Time: t.UTC()}
	if len(kv) > 0 || len(extra) > 0 {
		tr.Fields = map[string]any{}
	}
	for k, v := range extra {
		tr.Fields[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		tr.Fields[kv[i].(string)] = kv[i+1]
	}
	return tr
}

// sequenceTruth: a first step (first(m)) followed, within `within` of it,
// by a second (second(m)) is reported at the second. A first step opens a
// wait only when none is open; a wait older than within is dropped when
// the next message comes.
func sequenceTruth(ms []Message, first, second func(*Message) bool, within time.Duration, typ, subject string) []Truth {
	var out []Truth
	var start time.Time
	open := false
	for i := range ms {
		m := &ms[i]
		if open && m.Stamp.Sub(start) > within {
			open = false
		}
		switch {
		case !open && first(m):
			open, start = true, m.Stamp
		case open && second(m):
			open = false
			out = append(out, truth(typ, subject, m.Stamp, nil))
		}
	}
	return out
}

// rect is a zone given by its corners (edges belong to it).
type rect struct {
	name                           string
	minLat, minLon, maxLat, maxLon float64
}

func (r rect) contains(lat, lon float64) bool {
	return lat >= r.minLat && lat <= r.maxLat && lon >= r.minLon && lon <= r.maxLon
}

// geofenceTruth: entered at the first fix inside the zone (a key's first
// fix comes from outside), left at the first fix outside after that.
func geofenceTruth(ms []Message, z rect, subject string) []Truth {
	var out []Truth
	in := false
	for _, m := range ms {
		lat, ok1 := m.Value("lat")
		lon, ok2 := m.Value("lon")
		if !ok1 || !ok2 {
			continue
		}
		switch now := z.contains(lat, lon); {
		case now && !in:
			out = append(out, truth("fleet.zone.entered", subject, m.Stamp, nil, "zone", z.name))
		case !now && in:
			out = append(out, truth("fleet.zone.left", subject, m.Stamp, nil, "zone", z.name))
		}
		in = z.contains(lat, lon)
	}
	return out
}

func sortPoints(ps []point) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].t.Before(ps[j].t) })
}
