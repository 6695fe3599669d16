package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/event"
)

// aggFn is an aggregate function.
type aggFn uint8

const (
	aggCount aggFn = iota
	aggSum
	aggMin
	aggMax
	aggAvg
	aggStddev
	aggFirst
	aggLast
	aggPercentile
	aggDistinct
)

var aggNames = map[string]aggFn{
	"count": aggCount, "sum": aggSum, "min": aggMin, "max": aggMax, "avg": aggAvg,
	"stddev": aggStddev, "first": aggFirst, "last": aggLast, "percentile": aggPercentile,
	"distinct": aggDistinct,
}

// aggSpec is one compiled aggregate: "name: fn(field[, arg])".
type aggSpec struct {
	name  string
	fn    aggFn
	f     field   // absent only for count()
	p     float64 // percentile, 0..100
	field bool    // count(field) counts events that have it
}

// parseAgg reads "avg(data.temperature)", "count()", "percentile(data.t, 95)".
func parseAgg(name, s string) (aggSpec, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return aggSpec{}, fmt.Errorf("%q: write fn(field), e.g. avg(data.temperature)", s)
	}
	fn, ok := aggNames[strings.TrimSpace(s[:open])]
	if !ok {
		return aggSpec{}, fmt.Errorf("%q: unknown aggregate %q (count, sum, min, max, avg, stddev, first, last, percentile, distinct)", s, s[:open])
	}
	args := strings.Split(s[open+1:len(s)-1], ",")
	a := aggSpec{name: name, fn: fn}
	if len(args) == 1 && strings.TrimSpace(args[0]) == "" {
		if fn != aggCount {
			return aggSpec{}, fmt.Errorf("%q: needs a field", s)
		}
		return a, nil
	}
	f, ok := parseField(args[0])
	if !ok {
		return aggSpec{}, fmt.Errorf("%q: %q is not a field (data.<name>, subject, source…)", s, strings.TrimSpace(args[0]))
	}
	a.f, a.field = f, true
	switch {
	case fn == aggPercentile && len(args) == 2:
		p, err := strconv.ParseFloat(strings.TrimSpace(args[1]), 64)
		if err != nil || p < 0 || p > 100 {
			return aggSpec{}, fmt.Errorf("%q: the percentile must be a number from 0 to 100", s)
		}
		a.p = p
	case fn == aggPercentile:
		return aggSpec{}, errors.New("percentile takes a field and a percentile: percentile(data.temperature, 95)")
	case len(args) > 1:
		return aggSpec{}, fmt.Errorf("%q: takes one field", s)
	}
	return a, nil
}

// acc accumulates one aggregate over one window. The running sums cost
// nothing per value; only percentile keeps the values and distinct the set.
type acc struct {
	n             int64
	sum, mean, m2 float64 // Welford's running variance
	min, max      float64
	first, last   float64
	firstT, lastT int64
	vals          []float64
	set           map[string]struct{}
}

func (a *acc) reset() {
	vals, set := a.vals[:0], a.set
	clear(set)
	*a = acc{vals: vals, set: set}
}

// add folds one event into the aggregate.
func (a *acc) add(s *aggSpec, ev *event.Event, t int64, scratch *[]byte) {
	switch {
	case !s.field:
		a.n++
		return
	case s.fn == aggDistinct:
		k, ok := s.f.key(ev, scratch)
		if !ok {
			return
		}
		if a.set == nil {
			a.set = map[string]struct{}{}
		}
		if _, seen := a.set[string(k)]; !seen {
			a.set[string(k)] = struct{}{}
		}
		a.n++
		return
	case s.fn == aggCount:
		if _, _, ok := s.f.raw(ev); ok {
			a.n++
		}
		return
	}
	v, ok := s.f.number(ev)
	if !ok {
		return
	}
	a.addValue(s, v, t)
}

func (a *acc) addValue(s *aggSpec, v float64, t int64) {
	a.n++
	if a.n == 1 {
		a.min, a.max, a.first, a.last, a.firstT, a.lastT = v, v, v, v, t, t
	} else {
		a.min, a.max = min(a.min, v), max(a.max, v)
		if t < a.firstT {
			a.first, a.firstT = v, t
		}
		if t >= a.lastT {
			a.last, a.lastT = v, t
		}
	}
	a.sum += v
	d := v - a.mean
	a.mean += d / float64(a.n)
	a.m2 += d * (v - a.mean)
	if s.fn == aggPercentile {
		a.vals = append(a.vals, v)
	}
}

// result is the aggregate's value; ok is false when it has none (no
// values).
func (a *acc) result(s *aggSpec) (float64, bool) {
	switch s.fn {
	case aggCount:
		return float64(a.n), true
	case aggDistinct:
		return float64(len(a.set)), true
	}
	if a.n == 0 {
		return 0, false
	}
	switch s.fn {
	case aggSum:
		return a.sum, true
	case aggMin:
		return a.min, true
	case aggMax:
		return a.max, true
	case aggAvg:
		return a.sum / float64(a.n), true
	case aggStddev:
		return math.Sqrt(a.m2 / float64(a.n)), true
	case aggFirst:
		return a.first, true
	case aggLast:
		return a.last, true
	default:
		return percentile(a.vals, s.p), true
	}
}

// percentile is the p-th percentile of vals by linear interpolation
// between closest ranks; it sorts vals.
func percentile(vals []float64, p float64) float64 {
	slices.Sort(vals)
	switch len(vals) {
	case 0:
		return 0 // only a damaged checkpoint gets here: a window has its values
	case 1:
		return vals[0]
	}
	rank := p / 100 * float64(len(vals)-1)
	lo := int(rank)
	if lo >= len(vals)-1 {
		return vals[len(vals)-1]
	}
	frac := rank - float64(lo)
	return vals[lo] + frac*(vals[lo+1]-vals[lo])
}

// results puts every aggregate's value into out (absent when it has none).
func results(specs []aggSpec, accs []acc, out map[string]any) {
	for i := range specs {
		if v, ok := accs[i].result(&specs[i]); ok {
			out[specs[i].name] = round(v)
		}
	}
}

// round trims float noise (0.1+0.2) from outputs: 12 significant digits.
func round(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	if err != nil {
		return v
	}
	return r
}
