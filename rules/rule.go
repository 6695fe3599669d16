package rules

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/google/uuid"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/event"
)

// operator is a rule's building block: what it does with each event of a
// key, and when one of the key's timers fires. Its state lives inside it;
// the engine's lock guards it.
type operator interface {
	event(r *rule, key []byte, ev *event.Event, t int64)
	fire(r *rule, key string, at int64)
	// fresh returns an operator of the same definition and no state.
	fresh() operator
	// save writes the operator's state to a checkpoint; load reads it
	// back into a fresh operator (opstate.go).
	save(w *enc)
	load(d *dec)
}

// rule is a compiled rule, bound to one engine.
type rule struct {
	name, version string
	types         []string
	subjects      map[string]bool // nil: any
	topic         string          // MQTT filter; "": any
	filter        *vm.Program     // nil: every matching event
	quick         quickFilter     // the filter, when it is a quick one (then filter is nil)
	by            []field         // the key; empty: the subject
	op            operator
	emit          emitter
	def           [32]byte // the definition's fingerprint (replace.go)

	e       *Engine
	idx     int    // its place in the engine, for a stable order of timers
	scratch []byte // key building, under the engine's lock
}

// emitter makes a rule's notable events.
type emitter struct {
	typ, clearType string
	route          string
	fields         []emitField
	source         string // set by the engine: {Source}/rules/{name}
}

// emitField is one output field: a name and the expression that computes
// it from the triggering event and the rule's results (out).
type emitField struct {
	name string
	prog *vm.Program
}

// emitEnv is what an emit field's expression sees: the triggering event,
// as filters see it, and the rule's own results under out.
type emitEnv struct {
	Env
	Out map[string]any `expr:"out"`
}

// fresh returns a copy of r with no state, not yet bound to an engine.
func (r *rule) fresh() *rule {
	c := *r
	c.op = r.op.fresh()
	c.scratch = nil
	c.e = nil
	return &c
}

// offer runs one event through the rule if it matches.
func (r *rule) offer(ev *event.Event) {
	if ev.Source == r.emit.source {
		return // its own output
	}
	if r.subjects != nil && !r.subjects[ev.Subject] {
		return
	}
	if r.topic != "" && !devices.MatchTopic(r.topic, ev.Topic) {
		return
	}
	if r.quick != nil && !r.quick.match(ev) {
		return
	}
	if r.filter != nil && !runBool(r.filter, r.e.env(ev)) {
		return
	}
	key, ok := r.keyOf(ev)
	if !ok {
		return // no key: the rule does not apply to this event
	}
	r.op.event(r, key, ev, ev.Time.UnixNano())
}

// keySep joins the parts of a key made of several fields.
const keySep = "\x1f"

func (r *rule) keyOf(ev *event.Event) ([]byte, bool) {
	switch len(r.by) {
	case 0:
		r.scratch = append(r.scratch[:0], ev.Subject...)
		return r.scratch, true
	case 1:
		return r.by[0].key(ev, &r.scratch)
	}
	var buf []byte
	for i, f := range r.by {
		var part []byte
		k, ok := f.key(ev, &part)
		if !ok {
			return nil, false
		}
		if i > 0 {
			buf = append(buf, keySep...)
		}
		buf = append(buf, k...)
	}
	return buf, true
}

func runBool(p *vm.Program, env any) bool {
	ok, err := expr.Run(p, env)
	return err == nil && ok == true
}

// keyFields names the parts of a key in an output.
func (r *rule) keyFields(key string, out map[string]any) {
	if len(r.by) == 0 {
		out["subject"] = key
		return
	}
	parts := strings.Split(key, keySep)
	for i, f := range r.by {
		if i < len(parts) {
			out[f.name()] = parts[i]
		}
	}
}

// produce makes a notable event of type typ for key at event time at:
// its data are the key, the rule's results (out), the emit fields computed
// from the trigger event, the rule's name and version, and the ids of the
// inputs that caused it. Its id is derived from all of those, so that the
// same finding made again (after a restart that replays inputs) carries the
// same id and the cloud can deduplicate it.
func (r *rule) produce(typ, key string, at int64, out map[string]any, trigger *event.Event, causes []string) {
	data := make(map[string]any, len(out)+len(r.emit.fields)+4)
	for k, v := range out {
		data[k] = v
	}
	r.keyFields(key, data)
	if trigger != nil && len(r.emit.fields) > 0 {
		env := emitEnv{Env: *newEnv(trigger), Out: out}
		for _, f := range r.emit.fields {
			if v, err := expr.Run(f.prog, env); err == nil {
				data[f.name] = v
			}
		}
	}
	data["rule"] = map[string]string{"name": r.name, "version": r.version}
	if len(causes) > 0 {
		data["caused_by"] = causes
	}
	body, err := json.Marshal(data)
	if err != nil { // a NaN or Inf in an aggregate: say so rather than lose the event
		data = map[string]any{"rule": data["rule"], "error": err.Error(), "caused_by": causes}
		body, _ = json.Marshal(data)
	}
	ts := time.Unix(0, at).UTC()
	name := r.name + "\x00" + r.version + "\x00" + typ + "\x00" + key + "\x00" + ts.Format(time.RFC3339Nano) + "\x00" + strings.Join(causes, ",")
	ev := &event.Event{
		ID:              uuid.NewSHA1(idSpace, []byte(name)).String(),
		Source:          r.emit.source,
		Type:            typ,
		Subject:         strings.ReplaceAll(key, keySep, "/"),
		Time:            ts,
		DataContentType: "application/json",
		Data:            body,
	}
	r.e.produce(r, ev)
}

// idSpace is the UUID namespace of derived events' ids.
var idSpace = uuid.MustParse("6f1c1f0e-8b9a-4e0c-9d57-3f4f5d2a9b10")

// exprEnvOption is the environment of filters: an event as Env shows it.
func exprEnvOption() expr.Option { return expr.Env(Env{}) }
