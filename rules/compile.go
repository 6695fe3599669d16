package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/flowgate/flowgate/devices"
)

// RuleSet is a set of compiled rules, ready for an engine. It holds no
// rule state: an engine built from it starts empty. It serves one engine at
// a time, though: its rules share caches of an event's fields, which the
// engine's lock guards, so two engines running at once need a set each
// (compile the rules twice).
type RuleSet struct {
	rules []*rule
}

// Len is the number of rules.
func (s *RuleSet) Len() int { return len(s.rules) }

// Files lists the files the rules read besides their own (geofence
// zones), so that a change to one can reload the rules.
func (s *RuleSet) Files() []string {
	var files []string
	for _, r := range s.rules {
		if g, ok := r.op.(*geofenceOp); ok && g.file != "" && !slices.Contains(files, g.file) {
			files = append(files, g.file)
		}
	}
	return files
}

// Emits lists the event types the rules produce, sorted.
func (s *RuleSet) Emits() []string {
	set := map[string]bool{}
	for _, r := range s.rules {
		set[r.emit.typ] = true
		if r.emit.clearType != "" {
			set[r.emit.clearType] = true
		}
		if o, ok := r.op.(*rfidOp); ok && o.transitionType != "" {
			set[o.transitionType] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// SpecError is a problem with one rule: Key is the path below the rule
// ("window.size", "filter"), Offset the byte inside an expression.
type SpecError struct {
	Rule   int
	Key    string
	Offset int
	Msg    string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("rules: rule %d: %s: %s", e.Rule, e.Key, e.Msg)
}

// compiler collects the problems of one rule.
type compiler struct {
	i      int
	errs   []*SpecError
	lookup map[string]*lookupCache // the rule set's, by data path; nil: no sharing
}

// share gives f the rule set's cache of its data path.
func (c *compiler) share(f field) field {
	if f.attr != "" || c.lookup == nil {
		return f
	}
	k := strings.Join(f.path, "\x00") // keys may hold dots
	if c.lookup[k] == nil {
		c.lookup[k] = &lookupCache{}
	}
	f.cache = c.lookup[k]
	return f
}

func (c *compiler) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, &SpecError{Rule: c.i, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// expr compiles an expression, reporting where in it a problem is.
func (c *compiler) expr(key, src string, opts ...expr.Option) *vm.Program {
	if strings.TrimSpace(src) == "" {
		return nil
	}
	p, err := expr.Compile(src, append(opts, expr.AsBool())...)
	if err != nil {
		ce := compileError(0, src, err)
		c.errs = append(c.errs, &SpecError{Rule: c.i, Key: key, Offset: ce.Offset, Msg: ce.Msg})
		return nil
	}
	return p
}

// Compile compiles rule specs. It returns every problem, not the first.
func Compile(specs []Spec) (*RuleSet, []*SpecError) {
	set := &RuleSet{}
	var errs []*SpecError
	names := map[string]bool{}
	lookups := map[string]*lookupCache{}
	for i := range specs {
		c := &compiler{i: i, lookup: lookups}
		r := c.rule(&specs[i])
		if names[specs[i].Name] {
			c.errorf("name", "another rule is already named %q", specs[i].Name)
		}
		names[specs[i].Name] = true
		errs = append(errs, c.errs...)
		if len(c.errs) == 0 {
			r.def = definition(specs[i], r)
			set.rules = append(set.rules, r)
		}
	}
	return set, errs
}

func (c *compiler) rule(s *Spec) *rule {
	r := &rule{name: s.Name, version: s.Version, types: s.Match.Types, topic: s.Match.Topic}
	if !devices.ValidID(s.Name) {
		c.errorf("name", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", s.Name)
	}
	if r.version == "" {
		r.version = "1"
	}
	if len(s.Match.Subjects) > 0 {
		r.subjects = map[string]bool{}
		for _, sub := range s.Match.Subjects {
			r.subjects[sub] = true
		}
	}
	if r.topic != "" && !devices.ValidFilter(r.topic) {
		c.errorf("match.topic", "%q is not a valid MQTT topic filter", r.topic)
	}
	r.filter = c.expr("filter", s.Filter, expr.Env(Env{}))
	if r.filter != nil {
		if q := c.quickFilterOf(s.Filter); q != nil {
			r.quick, r.filter = q, nil
		}
	}
	if s.By != "" {
		for _, part := range strings.Split(s.By, ",") {
			f, ok := parseField(part)
			if !ok {
				c.errorf("by", "%q is not a field: subject, source, type, topic or data.<path>", strings.TrimSpace(part))
			}
			r.by = append(r.by, c.share(f))
		}
	}
	r.op = c.operator(s, r)
	c.emit(s, r)
	return r
}

// operator compiles the rule's one building block.
func (c *compiler) operator(s *Spec, r *rule) operator {
	var blocks []string
	for _, b := range []struct {
		name string
		set  bool
	}{{"window", s.Window != nil}, {"change", s.Change != nil}, {"threshold", s.Threshold != nil},
		{"rate", s.Rate != nil}, {"sequence", s.Sequence != nil}, {"absence", s.Absence != nil},
		{"geofence", s.Geofence != nil}, {"movement", s.Movement != nil}, {"rfid", s.RFID != nil},
		{"dwell", s.Dwell != nil}, {"distinct", s.Distinct != nil}} {
		if b.set {
			blocks = append(blocks, b.name)
		}
	}
	if len(blocks) > 1 {
		c.errorf(blocks[1], "a rule has one building block; this one also has %s (split it into two rules)", blocks[0])
		return nil
	}
	if s.Window == nil {
		if len(s.Aggregates) > 0 {
			c.errorf("aggregates", "aggregates need a window")
		}
		if s.Having != "" {
			c.errorf("having", "having needs a window")
		}
	}
	switch {
	case s.Window != nil:
		return c.window(s)
	case s.Change != nil:
		return c.change(s.Change)
	case s.Threshold != nil:
		return c.threshold(s.Threshold)
	case s.Rate != nil:
		return c.rate(s.Rate)
	case s.Sequence != nil:
		return c.sequence(s.Sequence, r)
	case s.Absence != nil:
		return c.absence(s.Absence, r)
	case s.Geofence != nil:
		return c.geofence(s.Geofence, s.Dir)
	case s.Movement != nil:
		return c.movement(s.Movement)
	case s.RFID != nil:
		return c.rfid(s)
	case s.Dwell != nil:
		return c.dwell(s.Dwell)
	case s.Distinct != nil:
		return c.distinct(s.Distinct)
	}
	return transformOp{}
}

func (c *compiler) field(key, s string) field {
	f, ok := parseField(s)
	if !ok {
		c.errorf(key, "%q is not a field: subject, source, type, topic or data.<path>", s)
	}
	return c.share(f)
}

func (c *compiler) change(s *ChangeSpec) operator {
	o := &changeOp{f: c.field("change.field", s.Field), deadband: s.Deadband, deadbandPct: s.DeadbandPct}
	switch {
	case s.Deadband < 0:
		c.errorf("change.deadband", "must not be negative")
	case s.DeadbandPct < 0:
		c.errorf("change.deadband_pct", "must not be negative")
	case s.Deadband > 0 && s.DeadbandPct > 0:
		c.errorf("change.deadband_pct", "give deadband or deadband_pct, not both")
	}
	return o
}

func (c *compiler) threshold(s *ThresholdSpec) operator {
	o := &thresholdOp{f: c.field("threshold.field", s.Field)}
	switch {
	case s.Above != nil && s.Below != nil:
		c.errorf("threshold.below", "give above or below, not both (write two rules for a band)")
	case s.Above != nil:
		o.above, o.limit, o.clearAt = true, *s.Above, *s.Above
		if s.ClearAbove != nil {
			c.errorf("threshold.clear_above", "with above, the clearing limit is clear_below")
		}
		if s.ClearBelow != nil {
			o.clearAt = *s.ClearBelow
			if o.clearAt > o.limit {
				c.errorf("threshold.clear_below", "%v must be at most above (%v)", o.clearAt, o.limit)
			}
		}
	case s.Below != nil:
		o.limit, o.clearAt = *s.Below, *s.Below
		if s.ClearBelow != nil {
			c.errorf("threshold.clear_below", "with below, the clearing limit is clear_above")
		}
		if s.ClearAbove != nil {
			o.clearAt = *s.ClearAbove
			if o.clearAt < o.limit {
				c.errorf("threshold.clear_above", "%v must be at least below (%v)", o.clearAt, o.limit)
			}
		}
	default:
		c.errorf("threshold", "give above (with clear_below) or below (with clear_above)")
	}
	return o
}

func (c *compiler) rate(s *RateSpec) operator {
	o := &rateOp{f: c.field("rate.field", s.Field), per: float64(time.Second), above: s.Above, below: s.Below}
	if s.Per < 0 {
		c.errorf("rate.per", "must be positive")
	} else if s.Per > 0 {
		o.per = float64(s.Per)
	}
	if s.Above == nil && s.Below == nil {
		c.errorf("rate", "give above, below or both: the rate that is notable")
	}
	if s.MinInterval < 0 {
		c.errorf("rate.min_interval", "must not be negative")
	}
	o.minGap = int64(s.MinInterval)
	return o
}

func (c *compiler) step(key string, s StepSpec) step {
	if len(s.Types) == 0 && s.Filter == "" {
		c.errorf(key, "give types, a filter or both: which event this step waits for")
	}
	return step{types: s.Types, filter: c.expr(key+".filter", s.Filter, expr.Env(Env{}))}
}

func (c *compiler) sequence(s *SequenceSpec, r *rule) operator {
	o := &sequenceOp{within: int64(s.Within)}
	if len(s.Steps) < 2 {
		c.errorf("sequence.steps", "a sequence needs at least two steps")
	}
	r.types = stepTypes(r.types, s.Steps)
	for i, st := range s.Steps {
		o.steps = append(o.steps, c.step(fmt.Sprintf("sequence.steps[%d]", i), st))
	}
	if s.Within <= 0 {
		c.errorf("sequence.within", "must be positive: how long the whole sequence may take")
	}
	return o
}

func (c *compiler) absence(s *AbsenceSpec, r *rule) operator {
	o := &absenceOp{within: int64(s.Within)}
	o.start = c.step("absence.start", s.Start)
	o.end = c.step("absence.end", s.End)
	r.types = stepTypes(r.types, []StepSpec{s.Start, s.End})
	if s.Within <= 0 {
		c.errorf("absence.within", "must be positive: how long to wait for the end event")
	}
	return o
}

// stepTypes is the types a pattern rule is indexed under: those of match,
// if given, else every step's; none (any type) if a step has none.
func stepTypes(match []string, steps []StepSpec) []string {
	if len(match) > 0 {
		return match
	}
	var types []string
	for _, s := range steps {
		if len(s.Types) == 0 {
			return nil
		}
		for _, t := range s.Types {
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
	}
	return types
}

func (c *compiler) emit(s *Spec, r *rule) {
	e := s.Emit
	r.emit = emitter{typ: e.Type, clearType: e.ClearType, route: e.Route}
	if !devices.ValidID(e.Type) {
		c.errorf("emit.type", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", e.Type)
	}
	if e.ClearType != "" {
		if s.Threshold == nil && s.Geofence == nil && s.RFID == nil && s.Dwell == nil {
			c.errorf("emit.clear_type", "only a threshold, geofence, rfid or dwell rule has a clearing event")
		} else if !devices.ValidID(e.ClearType) {
			c.errorf("emit.clear_type", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", e.ClearType)
		}
	}
	if e.TransitionType != "" {
		if s.RFID == nil {
			c.errorf("emit.transition_type", "only an rfid rule has a transition event")
		} else if !devices.ValidID(e.TransitionType) {
			c.errorf("emit.transition_type", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", e.TransitionType)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.Fields)) {
		p, err := expr.Compile(e.Fields[name], expr.Env(emitEnv{}))
		if err != nil {
			ce := compileError(0, e.Fields[name], err)
			c.errs = append(c.errs, &SpecError{Rule: c.i, Key: "emit.fields." + name, Offset: ce.Offset, Msg: ce.Msg})
			continue
		}
		r.emit.fields = append(r.emit.fields, emitField{name: name, prog: p})
	}
}

// maxHops bounds the hopping windows one event falls in, so a rule cannot
// make every event cost millions of updates.
const maxHops = 1000

func (c *compiler) window(s *Spec) operator {
	w := s.Window
	o := &windowOp{kind: w.Kind, size: int64(w.Size), hop: int64(w.Hop), gap: int64(w.Gap), count: w.Count}
	need := func(key string, ok bool, what string) {
		if !ok {
			c.errorf("window."+key, "a %s window needs %s", w.Kind, what)
		}
	}
	switch w.Kind {
	case Tumbling, Sliding:
		need("size", w.Size > 0, "a positive size")
	case Hopping:
		need("size", w.Size > 0, "a positive size")
		need("hop", w.Hop > 0 && w.Hop <= w.Size && w.Size/w.Hop <= maxHops,
			"a positive hop no larger than size, and at most 1000 windows per event (size/hop)")
	case Session:
		need("gap", w.Gap > 0, "a positive gap")
	case Count:
		need("count", w.Count > 0, "a positive count")
	default:
		c.errorf("window.kind", "%q must be one of tumbling, hopping, sliding, session, count", w.Kind)
	}
	env := map[string]any{"count": 0, "window": map[string]string{}}
	for _, name := range slices.Sorted(maps.Keys(s.Aggregates)) {
		a, err := parseAgg(name, s.Aggregates[name])
		if err != nil {
			c.errorf("aggregates."+name, "%v", err)
			continue
		}
		if name == "count" || name == "window" || !devices.ValidID(name) || strings.ContainsAny(name, ".:-") {
			c.errorf("aggregates."+name, "%q must be a plain name (letters, digits, _) other than count and window", name)
			continue
		}
		a.f = c.share(a.f)
		o.aggs = append(o.aggs, a)
		env[name] = 0.0
	}
	o.having = c.expr("having", s.Having, expr.Env(env))
	return o
}
