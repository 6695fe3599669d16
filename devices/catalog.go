package devices

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The event catalog (the "event library"): every event type that flows
// through the gateway, raw and derived, with its schema and its contract:
// version and compatibility, topic, SLA, retention, owner, publishers and
// subscribers. Every event is validated against its entry (see Validate),
// and the catalog is served to consumers for discovery (see JSON).

// CatalogFile is the shape of the catalog file (the config's catalog_file).
//
//	events:
//	  env.reading:
//	    category: raw
//	    version: 1.1.0
//	    compatibility: backward
//	    owner: cold-chain-team
//	    topic: devices/+/env
//	    sla: {class: telemetry, ttl: 72h}
//	    retention: 168h
//	    publishers: [reefer sensors]
//	    subscribers: [cold-chain dashboard]
//	    schema:
//	      fields:
//	        temperature: {type: number, unit: degC, required: true, min: -60, max: 85}
//	        humidity: {type: number, unit: "%", min: 0, max: 100}
type CatalogFile struct {
	Events map[string]EventSpec `yaml:"events"`
}

// EventSpec is one event type's entry as written.
type EventSpec struct {
	Description   string        `yaml:"description"`
	Category      string        `yaml:"category"`      // raw, derived or system
	Version       string        `yaml:"version"`       // 1, 1.2 or 1.2.3
	Compatibility string        `yaml:"compatibility"` // backward (default), forward, full or none
	DataSchema    string        `yaml:"dataschema"`    // URI; default urn:flowgate:schema:{name}:{version}
	Schema        SchemaSpec    `yaml:"schema"`
	Topic         string        `yaml:"topic"` // the MQTT topic (filter) it travels on
	SLA           SLASpec       `yaml:"sla"`
	Retention     time.Duration `yaml:"retention"` // how long the gateway keeps it
	Owner         string        `yaml:"owner"`
	Publishers    []string      `yaml:"publishers"`
	Subscribers   []string      `yaml:"subscribers"`
}

// SchemaSpec is the shape of an event's data.
type SchemaSpec struct {
	Fields     map[string]SchemaField `yaml:"fields" json:"fields"`
	Additional bool                   `yaml:"additional" json:"additional"` // allow fields not listed
}

// SchemaField is one field of an event's data.
type SchemaField struct {
	Type        string   `yaml:"type" json:"type"` // number, string, bool or object
	Unit        string   `yaml:"unit" json:"unit,omitempty"`
	Required    bool     `yaml:"required" json:"required,omitempty"`
	Min         *float64 `yaml:"min" json:"min,omitempty"`
	Max         *float64 `yaml:"max" json:"max,omitempty"`
	Enum        []string `yaml:"enum" json:"enum,omitempty"`
	Description string   `yaml:"description" json:"description,omitempty"`
}

// SLASpec is what an event type is promised upstream.
type SLASpec struct {
	Class string        `yaml:"class"` // an uplink class
	TTL   time.Duration `yaml:"ttl"`   // how long it may wait to be delivered
}

// Categories of event types.
const (
	CategoryRaw     = "raw"     // made by the normalizer from a device's payload
	CategoryDerived = "derived" // made by rules
	CategorySystem  = "system"  // made by the gateway itself (device.online…)
)

// maxSchemaFields bounds a schema so that validation tracks the fields
// seen in one machine word.
const maxSchemaFields = 64

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)

// Catalog is the compiled catalog. It is immutable, and so safe for
// concurrent use.
type Catalog struct {
	byName map[string]*catalogEntry
	json   []byte
}

// catalogEntry is one compiled event type.
type catalogEntry struct {
	name       string
	spec       EventSpec
	fields     []schemaField // sorted by name
	index      map[string]int
	required   uint64 // a bit per required field
	additional bool
}

// CompileCatalog checks every entry and compiles its schema. It returns
// every problem found; the Catalog is usable only when there are none.
func CompileCatalog(f CatalogFile) (*Catalog, []SpecError) {
	c := &Catalog{byName: make(map[string]*catalogEntry, len(f.Events))}
	var errs specErrors
	for _, name := range sortedKeys(f.Events) {
		c.byName[name] = compileEntry(name, f.Events[name], "events."+name, &errs)
	}
	c.json = c.render()
	return c, errs
}

func compileEntry(name string, s EventSpec, p string, errs *specErrors) *catalogEntry {
	if !ValidID(name) {
		errs.add(p, "event type %q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", name)
	}
	if !slices.Contains([]string{CategoryRaw, CategoryDerived, CategorySystem}, s.Category) {
		errs.add(p+".category", "%q must be raw, derived or system", s.Category)
	}
	if !versionRE.MatchString(s.Version) {
		errs.add(p+".version", "%q must be a version such as 1, 1.2 or 1.2.3", s.Version)
	}
	if s.Compatibility == "" {
		s.Compatibility = "backward"
	}
	if !slices.Contains([]string{"backward", "forward", "full", "none"}, s.Compatibility) {
		errs.add(p+".compatibility", "%q must be backward, forward, full or none", s.Compatibility)
	}
	if s.DataSchema == "" {
		s.DataSchema = "urn:flowgate:schema:" + name + ":" + s.Version
	} else if u, err := url.Parse(s.DataSchema); err != nil || u.Scheme == "" {
		errs.add(p+".dataschema", "%q must be an absolute URI", s.DataSchema)
	}
	if s.Topic != "" && !ValidFilter(s.Topic) {
		errs.add(p+".topic", "%q is not a valid MQTT topic or filter", s.Topic)
	}
	if s.SLA.TTL < 0 {
		errs.add(p+".sla.ttl", "must not be negative")
	}
	if s.Retention < 0 {
		errs.add(p+".retention", "must not be negative")
	}
	checkNames(s.Publishers, p+".publishers", errs)
	checkNames(s.Subscribers, p+".subscribers", errs)
	e := &catalogEntry{name: name, spec: s, index: map[string]int{}, additional: s.Schema.Additional}
	compileSchema(e, s.Schema, p+".schema", errs)
	return e
}

// checkNames refuses empty names in a list of publishers or subscribers.
func checkNames(names []string, p string, errs *specErrors) {
	for i, who := range names {
		if strings.TrimSpace(who) == "" {
			errs.add(fmt.Sprintf("%s[%d]", p, i), "is empty")
		}
	}
}

func compileSchema(e *catalogEntry, s SchemaSpec, p string, errs *specErrors) {
	if len(s.Fields) > maxSchemaFields {
		errs.add(p+".fields", "has %d fields; at most %d", len(s.Fields), maxSchemaFields)
	}
	for _, name := range sortedKeys(s.Fields) {
		fp := p + ".fields." + name
		sf := compileSchemaField(name, s.Fields[name], fp, errs)
		i := len(e.fields)
		if sf.required && i < maxSchemaFields {
			e.required |= 1 << i
		}
		e.index[name] = i
		e.fields = append(e.fields, sf)
	}
}

func compileSchemaField(name string, s SchemaField, p string, errs *specErrors) schemaField {
	if !validFieldName(name) {
		errs.add(p, "field name %q must be a lowercase letter then letters, digits or '_' (at most 64)", name)
	}
	if slices.Contains(reservedFields, name) {
		errs.add(p, "%q is added by the gateway (skew_ms a number, device an object) and is always allowed; do not declare it", name)
	}
	f := schemaField{name: name, typ: s.Type, unit: s.Unit, required: s.Required, enum: s.Enum,
		min: negInf, max: posInf, kind: kindFor(s.Type)}
	switch s.Type {
	case TypeNumber, TypeString, TypeBool, "object":
	default:
		errs.add(p+".type", "%q must be number, string, bool or object", s.Type)
	}
	if (s.Min != nil || s.Max != nil) && s.Type != TypeNumber {
		errs.add(p, "min and max are for number fields")
	}
	if s.Min != nil {
		f.min = *s.Min
	}
	if s.Max != nil {
		f.max = *s.Max
	}
	switch {
	case s.Min != nil && (math.IsInf(*s.Min, 0) || math.IsNaN(*s.Min)):
		errs.add(p+".min", "must be a finite number (leave it out for no bound)")
	case s.Max != nil && (math.IsInf(*s.Max, 0) || math.IsNaN(*s.Max)):
		errs.add(p+".max", "must be a finite number (leave it out for no bound)")
	case f.min > f.max:
		errs.add(p+".min", "min %v must not be above max %v", f.min, f.max)
	}
	if s.Enum != nil && s.Type != TypeString {
		errs.add(p+".enum", "enum is for string fields")
	}
	return f
}

// Names lists the event types, sorted.
func (c *Catalog) Names() []string {
	if c == nil {
		return nil
	}
	return sortedKeys(c.byName)
}

// Entry returns the entry of event type name, as written (with defaults
// filled in: compatibility and dataschema).
func (c *Catalog) Entry(name string) (EventSpec, bool) {
	if c == nil {
		return EventSpec{}, false
	}
	e, ok := c.byName[name]
	if !ok {
		return EventSpec{}, false
	}
	return e.spec, true
}

// JSON is the catalog as served for discovery (GET /api/catalog and the
// retained catalog topic): {"events":[{"name":…,"schema":{…},…},…]},
// sorted by name. It holds no secrets: a catalog has none.
func (c *Catalog) JSON() []byte {
	if c == nil {
		return []byte(`{"events":[]}`)
	}
	return c.json
}

// eventJSON is one entry in JSON, durations written as Go durations
// ("72h0m0s") rather than nanoseconds.
type eventJSON struct {
	Name          string     `json:"name"`
	Description   string     `json:"description,omitempty"`
	Category      string     `json:"category"`
	Version       string     `json:"version"`
	Compatibility string     `json:"compatibility"`
	DataSchema    string     `json:"dataschema"`
	Schema        SchemaSpec `json:"schema"`
	Topic         string     `json:"topic,omitempty"`
	SLA           slaJSON    `json:"sla"`
	Retention     string     `json:"retention,omitempty"`
	Owner         string     `json:"owner,omitempty"`
	Publishers    []string   `json:"publishers,omitempty"`
	Subscribers   []string   `json:"subscribers,omitempty"`
}

type slaJSON struct {
	Class string `json:"class,omitempty"`
	TTL   string `json:"ttl,omitempty"`
}

func durationJSON(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func (c *Catalog) render() []byte {
	out := struct {
		Events []eventJSON `json:"events"`
	}{Events: []eventJSON{}}
	for _, name := range c.Names() {
		s := c.byName[name].spec
		out.Events = append(out.Events, eventJSON{Name: name, Description: s.Description, Category: s.Category,
			Version: s.Version, Compatibility: s.Compatibility, DataSchema: s.DataSchema, Schema: s.Schema,
			Topic: s.Topic, SLA: slaJSON{s.SLA.Class, durationJSON(s.SLA.TTL)}, Retention: durationJSON(s.Retention),
			Owner: s.Owner, Publishers: s.Publishers, Subscribers: s.Subscribers})
	}
	b, err := json.Marshal(out)
	if err != nil { // a NaN or infinite bound, which compiling refuses
		return []byte(`{"events":[]}`)
	}
	return b
}
