package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File is a rules file as written in YAML.
//
//	rules:
//	  - name: reefer-too-warm
//	    match: {types: [env.reading]}
//	    threshold: {field: data.temperature, above: 8, clear_below: 7}
//	    emit: {type: coldchain.excursion.started, clear_type: coldchain.excursion.ended}
type File struct {
	Rules []Spec `yaml:"rules"`
}

// Spec is one rule as written. A rule matches events, optionally filters
// them, keys them (by), and applies at most one building block: a window
// with aggregates, change, threshold, rate, sequence, absence, geofence,
// movement, rfid, dwell or distinct. A rule with no building block emits
// one event per matching event (a transform).
type Spec struct {
	Name        string `yaml:"name"`
	Version     string `yaml:"version"`
	Description string `yaml:"description"`

	Match  Match  `yaml:"match"`
	Filter string `yaml:"filter"` // an expression over the event (see Env)
	By     string `yaml:"by"`     // the key: subject (default), source, or data.<path>

	Window     *WindowSpec       `yaml:"window"`
	Aggregates map[string]string `yaml:"aggregates"` // output name → "avg(data.temperature)"
	Having     string            `yaml:"having"`     // expression over the aggregates; false: no output

	Change    *ChangeSpec    `yaml:"change"`
	Threshold *ThresholdSpec `yaml:"threshold"`
	Rate      *RateSpec      `yaml:"rate"`
	Sequence  *SequenceSpec  `yaml:"sequence"`
	Absence   *AbsenceSpec   `yaml:"absence"`
	Geofence  *GeofenceSpec  `yaml:"geofence"`
	Movement  *MovementSpec  `yaml:"movement"`
	RFID      *RFIDSpec      `yaml:"rfid"`
	Dwell     *DwellSpec     `yaml:"dwell"`
	Distinct  *DistinctSpec  `yaml:"distinct"`

	Emit EmitSpec `yaml:"emit"`

	// Dir is the directory that file names in the rule (geofence.file)
	// are relative to. Parse sets it to the rules file's directory; when
	// it is empty they are relative to the working directory.
	Dir string `yaml:"-"`
}

// Match selects the events a rule sees. Every list that is given must
// contain the event's value; the topic is an MQTT filter.
type Match struct {
	Types    []string `yaml:"types"`
	Subjects []string `yaml:"subjects"`
	Topic    string   `yaml:"topic"`
}

// WindowSpec is a window over event time, per key.
type WindowSpec struct {
	Kind  string   `yaml:"kind"`  // tumbling, hopping, sliding, session, count
	Size  Duration `yaml:"size"`  // tumbling, hopping, sliding
	Hop   Duration `yaml:"hop"`   // hopping: how far apart windows start
	Gap   Duration `yaml:"gap"`   // session: the quiet time that ends a session
	Count int      `yaml:"count"` // count: events per window
}

// ChangeSpec reports a field only when it changes: by any amount, by more
// than an absolute deadband, or by more than a percentage of the last
// reported value.
type ChangeSpec struct {
	Field       string  `yaml:"field"`
	Deadband    float64 `yaml:"deadband"`
	DeadbandPct float64 `yaml:"deadband_pct"`
}

// ThresholdSpec reports crossing a limit, with hysteresis: the condition
// starts beyond Above (or Below) and ends only back past ClearBelow (or
// ClearAbove), so a value wavering at the limit does not chatter.
type ThresholdSpec struct {
	Field      string   `yaml:"field"`
	Above      *float64 `yaml:"above"`
	ClearBelow *float64 `yaml:"clear_below"`
	Below      *float64 `yaml:"below"`
	ClearAbove *float64 `yaml:"clear_above"`
}

// RateSpec reports a field changing faster than a limit, per Per of event
// time, between consecutive events of a key.
type RateSpec struct {
	Field string   `yaml:"field"`
	Per   Duration `yaml:"per"` // default 1s
	Above *float64 `yaml:"above"`
	Below *float64 `yaml:"below"`
	// MinInterval: a reading closer than this to the one it would be
	// compared with is skipped, and the next is compared with that same
	// one, so that a rate always spans at least this long. Default 0.
	MinInterval Duration `yaml:"min_interval"`
}

// StepSpec is one event a pattern waits for.
type StepSpec struct {
	Types  []string `yaml:"types"`
	Filter string   `yaml:"filter"`
}

// SequenceSpec reports its steps happening in order, per key, within a
// time from the first.
type SequenceSpec struct {
	Steps  []StepSpec `yaml:"steps"`
	Within Duration   `yaml:"within"`
}

// AbsenceSpec reports a Start event not followed by an End event of the
// same key within a time.
type AbsenceSpec struct {
	Start  StepSpec `yaml:"start"`
	End    StepSpec `yaml:"end"`
	Within Duration `yaml:"within"`
}

// GeofenceSpec reports a key's position entering and leaving zones:
// polygons of [longitude, latitude] points (WGS 84 degrees, GeoJSON's
// order). The position is two number fields of each event, lat and lon
// (default data.lat and data.lon). Zones are written inline, read from a
// GeoJSON file relative to the rules file, or both:
//
//	by: subject
//	geofence:
//	  zones:
//	    - name: depot-north
//	      ring: [[4.880, 52.370], [4.890, 52.370], [4.890, 52.378], [4.880, 52.378]]
//	  file: zones.geojson
//	emit: {type: fleet.zone.entered, clear_type: fleet.zone.left}
//
// An inline ring need not repeat its first point at the end. The file is
// a FeatureCollection whose features are Polygons (holes allowed) or
// MultiPolygons, each with a "name" property; it is read when the rules
// are loaded. Zone names must be unique.
//
// A fix inside a zone the key was not inside emits emit.type, with the
// zone's name and the fix's lat and lon; a fix outside a zone the key was
// inside emits emit.clear_type (if given), adding when it entered. A key's
// first fix counts as coming from outside every zone. Points on an edge
// are inside. Zones may overlap; exits are emitted before entries, each in
// the order the zones are written. Containment is planar in degrees
// (github.com/paulmach/orb/planar), which is exact enough for depots and
// sites but not for a zone across the 180° meridian.
type GeofenceSpec struct {
	Lat   string     `yaml:"lat"`   // default data.lat
	Lon   string     `yaml:"lon"`   // default data.lon
	Zones []ZoneSpec `yaml:"zones"` // inline zones
	File  string     `yaml:"file"`  // a GeoJSON FeatureCollection
}

// ZoneSpec is one inline geofence zone: a name and the outer ring of its
// polygon, at least three [lon, lat] points.
type ZoneSpec struct {
	Name string      `yaml:"name"`
	Ring [][]float64 `yaml:"ring"`
}

// MovementSpec measures each key's movement between consecutive fixes
// (lat and lon as in GeofenceSpec): the great-circle distance (haversine,
// github.com/paulmach/orb/geo), the time between and the speed. It
// reports impossible jumps: two fixes farther apart than the key could
// have travelled at max_speed in the time between.
//
//	by: subject
//	movement: {max_speed: 55, min_distance: 200}   # 55 m/s is about 200 km/h
//	emit: {type: fleet.position.jump}
//
// The output has distance_m (to 0.1 m), seconds, speed (m/s, to 0.01),
// max_speed, lat and lon, and from_lat, from_lon and from_time of the
// previous fix. Every fix becomes the previous one for the next, so a
// single bad fix is reported going there and coming back. A fix no later
// than the key's previous one is ignored.
type MovementSpec struct {
	Lat      string  `yaml:"lat"`       // default data.lat
	Lon      string  `yaml:"lon"`       // default data.lon
	MaxSpeed float64 `yaml:"max_speed"` // m/s; faster is a jump
	// MinDistance (m) is the shortest jump reported, however fast: GPS
	// fixes a second apart wander by tens of metres. Default 0.
	MinDistance float64 `yaml:"min_distance"`
}

// RFIDSpec turns a stream of raw reads into presence. The rule's key is
// the tag (by: data.tag); the reader is a field of each read (default
// data.reader).
//
//	by: data.tag
//	rfid: {reader: data.reader, quiet: 30s}
//	emit: {type: rfid.tag.arrived, clear_type: rfid.tag.departed, transition_type: rfid.tag.moved}
//
// A tag's first read at a reader emits emit.type (arrived); repeated reads
// there emit nothing. When the watermark passes the last read plus quiet,
// the tag has departed: emit.clear_type (if given), at that time, with
// the reader, when it arrived, when it was last read and how many reads
// there were. A read at another reader ends the stay at the old one at
// once: departed (with reason "moved"), then emit.transition_type (if
// given) with from and to, then arrived at the new reader. A read older
// than the tag's last read is counted if it is at the same reader and
// otherwise ignored, since the tag has moved on since.
type RFIDSpec struct {
	Reader string   `yaml:"reader"` // default data.reader
	Quiet  Duration `yaml:"quiet"`  // unread this long: departed
}

// DwellSpec reports a key staying in one zone longer than a time. The
// zone is the value of a field (data.zone, or data.reader for a tag):
//
//	by: data.tag
//	dwell: {zone: data.reader, longer_than: 2h}
//	emit: {type: yard.tag.overstayed, clear_type: yard.tag.left}
//
// A key enters a zone at its first event with that value and leaves it at
// an event with another value, or with null or "". When the watermark
// passes entry plus longer_than and the key has not left, the rule emits
// emit.type once, at that time, with the zone and when it entered. When a
// key that overstayed leaves, it emits emit.clear_type (if given) with
// how many seconds it stayed. An event older than the key's latest is
// ignored; one without the field says nothing about where the key is.
type DwellSpec struct {
	Zone       string   `yaml:"zone"`
	LongerThan Duration `yaml:"longer_than"`
}

// DistinctSpec reports a key for which at least AtLeast distinct values
// of a field have been seen within a sliding period of event time, which
// may span days or weeks:
//
//	by: data.plate
//	distinct: {field: source, at_least: 10, within: 14d}
//	emit: {type: watchlist.plate.widely_seen}
//
// Only each value's last-seen time is kept, and values not seen within
// the period are forgotten. The rule emits once when the count reaches
// at_least, with the count and the values, caused by each value's latest
// event; it emits again only after the count has fallen below at_least.
type DistinctSpec struct {
	Field   string   `yaml:"field"`
	AtLeast int      `yaml:"at_least"`
	Within  Duration `yaml:"within"`
}

// EmitSpec is the notable event a rule produces.
type EmitSpec struct {
	Type string `yaml:"type"`
	// ClearType is the event when the condition ends: a threshold clears,
	// a geofence zone is left, an RFID tag departs, an overstaying key
	// leaves (dwell). Other rules have none.
	ClearType string `yaml:"clear_type"`
	// TransitionType (rfid) is the event when a tag moves from one reader
	// to another; empty: none.
	TransitionType string            `yaml:"transition_type"`
	Route          string            `yaml:"route"`  // a route of the gateway config; empty: every route that matches the type
	Fields         map[string]string `yaml:"fields"` // output name → field of the triggering event, copied
}

// Duration is a time.Duration that also reads days and weeks ("14d",
// "2w", "1d12h"), because rules look across days.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a Go duration whose leading part may count days (d)
// and weeks (w): "14d", "1w2d", "1d12h30m".
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	var total time.Duration
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || (s[i] != 'd' && s[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		unit := 24 * time.Hour
		if s[i] == 'w' {
			unit *= 7
		}
		if err != nil || n > int64(time.Duration(1<<62)/unit) {
			return 0, fmt.Errorf("duration %q is out of range", orig)
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
	}
	if s == "" {
		if total == 0 && !strings.ContainsAny(orig, "0123456789") {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		return total, nil
	}
	rest, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write 90s, 10m, 8h, 14d)", orig)
	}
	if rest < 0 && total > 0 {
		return 0, fmt.Errorf("invalid duration %q", orig)
	}
	return total + rest, nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
