package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/event"
)

// sampleNow is the receive time samples are decoded at.
var sampleNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Check verifies what `flowgate check` promises about profiles: every
// sample decodes to exactly the fields it lists (or is refused with the
// reason it names), and, given a catalog, every profile that names an
// event_type produces what that entry's schema takes and its samples'
// output passes Validate. Problems are returned with their paths.
func (ps *Profiles) Check(cat *Catalog) []SpecError {
	var errs specErrors
	for _, kind := range ps.Kinds() {
		p := ps.byKind[kind]
		at := "profiles." + kind
		if cat != nil && p.EventType != "" {
			p.checkSchema(cat, at, &errs)
		}
		for i, s := range p.Samples {
			p.checkSample(s, cat, fmt.Sprintf("%s.samples[%d]", at, i), &errs)
		}
	}
	return errs
}

// checkSchema compares the profile's fields with its catalog entry's.
func (p *Profile) checkSchema(cat *Catalog, at string, errs *specErrors) {
	e, ok := cat.byName[p.EventType]
	if !ok {
		errs.add(at+".event_type", "%q is not in the catalog (it has %s)", p.EventType, commaJoin(cat.Names()))
		return
	}
	produced := map[string]bool{}
	for i := range p.fields {
		f := &p.fields[i]
		produced[f.name] = !f.optional
		fp := at + ".fields." + f.name
		j, ok := e.index[f.name]
		if !ok {
			if !e.additional {
				errs.add(fp, "catalog entry %s has no field %s", e.name, f.name)
			}
			continue
		}
		sf := &e.fields[j]
		if want := outputType(f.typ); sf.typ != want {
			errs.add(fp, "makes a %s, but catalog entry %s says %s is a %s", want, e.name, f.name, sf.typ)
		}
		if f.unit != "" && sf.unit != "" && f.unit != sf.unit {
			errs.add(fp+".unit", "converts to %s, but catalog entry %s says %s is in %s", f.unit, e.name, f.name, sf.unit)
		}
		for _, k := range sortedKeys(f.mapping) {
			if sf.enum != nil && !slices.Contains(sf.enum, f.mapping[k]) {
				errs.add(fp+".map."+k, "%q is not in catalog entry %s's enum for %s (%s)", f.mapping[k], e.name, f.name, commaJoin(sf.enum))
			}
		}
	}
	for _, sf := range e.fields {
		if sf.required && !produced[sf.name] {
			errs.add(at+".fields", "catalog entry %s requires %s, which this profile does not always produce", e.name, sf.name)
		}
	}
}

// outputType is the schema type a field of type typ produces.
func outputType(typ string) string {
	if typ == TypeHex {
		return TypeString
	}
	return typ
}

// checkSample decodes one sample and compares the outcome with what it says.
func (p *Profile) checkSample(s SampleSpec, cat *Catalog, at string, errs *specErrors) {
	if s.Reject != "" && !slices.Contains(Reasons, Reason(s.Reject)) {
		errs.add(at+".reject", "%q is not a reason (%s)", s.Reject, reasonNames())
		return
	}
	if s.Reject != "" && s.Want != nil {
		errs.add(at, "give want or reject, not both")
		return
	}
	if s.Reject == "" && s.Want == nil {
		errs.add(at, "want: list the canonical fields the payload must produce (or give reject: REASON)")
		return
	}
	data, err := p.sampleData(s, cat)
	r, _ := AsReject(err)
	switch {
	case s.Reject != "" && r == nil:
		errs.add(at+".reject", "want the payload refused with %s, but it was accepted: %s", s.Reject, data)
	case s.Reject != "" && r.Reason != Reason(s.Reject):
		errs.add(at+".reject", "want the payload refused with %s, got %v", s.Reject, err)
	case s.Reject == "" && err != nil:
		errs.add(at+".payload", "refused: %v", err)
	case s.Reject == "":
		compareSample(data, s.Want, at, errs)
		p.checkSampleTime(s, at, errs)
	}
}

// sampleData decodes a sample's payload and validates the result against
// the profile's catalog entry, if there is one.
func (p *Profile) sampleData(s SampleSpec, cat *Catalog) ([]byte, error) {
	data, _, err := p.Canonical([]byte(s.Payload), nil, sampleNow)
	if err != nil || cat == nil || p.EventType == "" {
		return data, err
	}
	if _, ok := cat.byName[p.EventType]; !ok {
		return data, nil // reported by checkSchema
	}
	return data, cat.Validate(&event.Event{Type: p.EventType, Data: data})
}

// compareSample checks that data holds exactly the fields want lists.
func compareSample(data []byte, want map[string]string, at string, errs *specErrors) {
	var got map[string]json.RawMessage
	if err := json.Unmarshal(data, &got); err != nil {
		errs.add(at+".payload", "decoded to invalid JSON %s", data)
		return
	}
	delete(got, "skew_ms")
	for _, name := range sortedKeys(want) {
		raw, ok := got[name]
		switch {
		case !ok:
			errs.add(at+".want."+name, "the payload does not produce %s (it produces %s)", name, data)
		case !sameValue(raw, want[name]):
			errs.add(at+".want."+name, "%s is %s, not %s", name, raw, want[name])
		}
	}
	for _, name := range sortedKeys(got) {
		if _, ok := want[name]; !ok {
			errs.add(at+".want", "the payload also produces %s: %s (list it)", name, got[name])
		}
	}
}

// sameValue compares a produced JSON value with a value written in YAML:
// numbers by value (to 1e-9), strings and booleans as text.
func sameValue(raw json.RawMessage, want string) bool {
	switch kindOf(raw) {
	case rawNumber:
		g, err1 := strconv.ParseFloat(string(raw), 64)
		w, err2 := strconv.ParseFloat(want, 64)
		return err1 == nil && err2 == nil && math.Abs(g-w) <= 1e-9*math.Max(1, math.Abs(w))
	case rawString:
		s, ok := unquote(raw)
		return ok && s == want
	}
	return string(bytes.TrimSpace(raw)) == want
}

// checkSampleTime checks the device time a sample says its payload has.
func (p *Profile) checkSampleTime(s SampleSpec, at string, errs *specErrors) {
	if s.Time == "" {
		return
	}
	want, err := time.Parse(time.RFC3339Nano, s.Time)
	if err != nil {
		errs.add(at+".time", "%q is not an RFC 3339 time", s.Time)
		return
	}
	got, has, _ := p.deviceTime([]byte(s.Payload))
	switch {
	case !has:
		errs.add(at+".time", "the payload carries no time")
	case !got.Equal(want):
		errs.add(at+".time", "the payload's time is %s, not %s", got.Format(time.RFC3339Nano), s.Time)
	}
}

func reasonNames() string {
	names := make([]string, len(Reasons))
	for i, r := range Reasons {
		names[i] = string(r)
	}
	return commaJoin(names)
}
