package rules

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"

	"github.com/flowgate/flowgate/event"
)

// Location: geofences (this file) and movement between fixes
// (movement.go). Geometry is github.com/paulmach/orb's: points are
// [lon, lat] in degrees, as in GeoJSON.

// zone is one geofence: a name and its shape, with the shape's bounding
// box for a quick rejection of the many fixes far from it.
type zone struct {
	name  string
	shape orb.MultiPolygon
	bound orb.Bound
}

func newZone(name string, shape orb.MultiPolygon) zone {
	return zone{name: name, shape: shape, bound: shape.Bound()}
}

// contains reports whether p is inside the zone or on its edge.
func (z *zone) contains(p orb.Point) bool {
	return z.bound.Contains(p) && planar.MultiPolygonContains(z.shape, p)
}

// position reads a fix from an event: two number fields, in range.
func position(lat, lon field, ev *event.Event) (orb.Point, bool) {
	la, ok := lat.number(ev)
	if !ok || math.IsNaN(la) || la < -90 || la > 90 {
		return orb.Point{}, false
	}
	lo, ok := lon.number(ev)
	if !ok || math.IsNaN(lo) || lo < -180 || lo > 180 {
		return orb.Point{}, false
	}
	return orb.Point{lo, la}, true
}

// geofenceOp emits when a key's fix enters a zone it was not in, and
// (with clear_type) when it leaves one it was in. It keeps, per key, the
// zones the key is inside; a key outside every zone has no state.
type geofenceOp struct {
	lat, lon field
	zones    []zone
	now      []bool // scratch: which zones hold the current fix
	keys     map[string][]fenceStay
	file     string // the GeoJSON file the zones came from, if any
}

// fenceStay is a key inside one zone since an event.
type fenceStay struct {
	zone  int
	since int64
	id    string
}

func (o *geofenceOp) fresh() operator {
	c := *o
	c.now = make([]bool, len(o.zones))
	c.keys = map[string][]fenceStay{}
	return &c
}

func (o *geofenceOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	p, ok := position(o.lat, o.lon, ev)
	if !ok {
		return
	}
	in := 0
	for i := range o.zones {
		o.now[i] = o.zones[i].contains(p)
		if o.now[i] {
			in++
		}
	}
	stays := o.keys[string(key)]
	same := in == len(stays)
	for _, s := range stays {
		same = same && o.now[s.zone]
	}
	if same {
		return // the common case: still where it was
	}
	k := string(key)
	kept := stays[:0]
	for _, s := range stays {
		if o.now[s.zone] {
			kept = append(kept, s)
			continue
		}
		if r.emit.clearType != "" {
			out := o.fixOut(s.zone, p)
			out["entered"] = time.Unix(0, s.since).UTC()
			r.produce(r.emit.clearType, k, t, out, ev, []string{s.id, ev.ID})
		}
	}
	for i, on := range o.now {
		if on && !slices.ContainsFunc(kept, func(s fenceStay) bool { return s.zone == i }) {
			kept = append(kept, fenceStay{zone: i, since: t, id: ev.ID})
			r.produce(r.emit.typ, k, t, o.fixOut(i, p), ev, []string{ev.ID})
		}
	}
	if len(kept) == 0 {
		delete(o.keys, k)
		return
	}
	slices.SortFunc(kept, func(a, b fenceStay) int { return a.zone - b.zone })
	o.keys[k] = kept
}

func (o *geofenceOp) fixOut(zone int, p orb.Point) map[string]any {
	return map[string]any{"zone": o.zones[zone].name, "lat": p.Lat(), "lon": p.Lon()}
}

func (o *geofenceOp) fire(*rule, string, int64) {}

// positionFields compiles a rule's lat and lon fields, data.lat and
// data.lon unless given.
func (c *compiler) positionFields(block, lat, lon string) (field, field) {
	if lat == "" {
		lat = "data.lat"
	}
	if lon == "" {
		lon = "data.lon"
	}
	return c.field(block+".lat", lat), c.field(block+".lon", lon)
}

// geofence compiles a geofence; dir is where its file is relative to.
func (c *compiler) geofence(s *GeofenceSpec, dir string) operator {
	o := &geofenceOp{}
	o.lat, o.lon = c.positionFields("geofence", s.Lat, s.Lon)
	names := map[string]bool{}
	add := func(key string, z zone) {
		if names[z.name] {
			c.errorf(key, "another zone is already named %q", z.name)
			return
		}
		names[z.name] = true
		o.zones = append(o.zones, z)
	}
	for i, zs := range s.Zones {
		key := fmt.Sprintf("geofence.zones[%d]", i)
		if zs.Name == "" {
			c.errorf(key+".name", "give the zone a name: it is in every event about it")
		}
		ring, ok := c.ring(key+".ring", zs.Ring)
		if ok && zs.Name != "" {
			add(key+".name", newZone(zs.Name, orb.MultiPolygon{{ring}}))
		}
	}
	if s.File != "" {
		c.zoneFile(s.File, dir, add)
		o.file = s.File
		if !filepath.IsAbs(o.file) {
			o.file = filepath.Join(dir, o.file)
		}
	}
	if len(s.Zones) == 0 && s.File == "" {
		c.errorf("geofence", "give zones, a GeoJSON file of zones, or both")
	}
	return o
}

// ring checks and converts an inline ring of [lon, lat] points.
func (c *compiler) ring(key string, pts [][]float64) (orb.Ring, bool) {
	ring := make(orb.Ring, 0, len(pts)+1)
	ok := true
	for i, pt := range pts {
		if len(pt) != 2 {
			c.errorf(fmt.Sprintf("%s[%d]", key, i), "want a point [lon, lat], got %d numbers", len(pt))
			ok = false
			continue
		}
		if msg := checkPoint(pt[0], pt[1]); msg != "" {
			c.errorf(fmt.Sprintf("%s[%d]", key, i), "%s", msg)
			ok = false
			continue
		}
		ring = append(ring, orb.Point{pt[0], pt[1]})
	}
	if !ok {
		return nil, false
	}
	if msg := checkRing(ring); msg != "" {
		c.errorf(key, "%s", msg)
		return nil, false
	}
	return closeRing(ring), true
}

// checkPoint says what is wrong with a [lon, lat] point, or "".
func checkPoint(lon, lat float64) string {
	switch {
	case !(lon >= -180 && lon <= 180):
		return fmt.Sprintf("longitude %v is outside -180..180 (points are [lon, lat])", lon)
	case !(lat >= -90 && lat <= 90):
		return fmt.Sprintf("latitude %v is outside -90..90 (points are [lon, lat])", lat)
	}
	return ""
}

// checkRing says what is wrong with a polygon's ring, or "".
func checkRing(ring orb.Ring) string {
	n := len(ring)
	if n > 1 && ring[0] == ring[n-1] {
		n-- // closed already
	}
	switch {
	case n < 3:
		return fmt.Sprintf("a ring needs at least three distinct points, got %d", n)
	case ring.Orientation() == 0:
		return "the ring encloses no area (its points are on one line)"
	}
	return ""
}

// closeRing repeats the first point at the end, if it is not there, as
// GeoJSON writes rings.
func closeRing(ring orb.Ring) orb.Ring {
	if ring[0] != ring[len(ring)-1] {
		ring = append(ring, ring[0])
	}
	return ring
}

// geoJSON is the part of a GeoJSON FeatureCollection that zones use.
// (orb/geojson would decode it too, but it brings the BSON driver along.)
type geoJSON struct {
	Type     string `json:"type"`
	Features []struct {
		Properties struct {
			Name any `json:"name"`
		} `json:"properties"`
		Geometry *struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		} `json:"geometry"`
	} `json:"features"`
}

// zoneFile reads the zones of a GeoJSON file and adds them.
func (c *compiler) zoneFile(name, dir string, add func(key string, z zone)) {
	const key = "geofence.file"
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	data, err := readZoneFile(path)
	if err != nil {
		c.errorf(key, "reading zones: %v", err)
		return
	}
	var fc geoJSON
	if err := json.Unmarshal(data, &fc); err != nil {
		c.errorf(key, "%s: not GeoJSON: %v", name, err)
		return
	}
	if fc.Type != "FeatureCollection" {
		c.errorf(key, "%s: want a GeoJSON FeatureCollection, got type %q", name, fc.Type)
		return
	}
	if len(fc.Features) == 0 {
		c.errorf(key, "%s: the collection has no features", name)
	}
	for i, f := range fc.Features {
		where := fmt.Sprintf("%s: features[%d]", name, i)
		zn, ok := f.Properties.Name.(string)
		if !ok || zn == "" {
			c.errorf(key, "%s: want a \"name\" property (a string)", where)
			continue
		}
		where += fmt.Sprintf(" (%q)", zn)
		if f.Geometry == nil {
			c.errorf(key, "%s: no geometry", where)
			continue
		}
		shape, msg := geoJSONShape(f.Geometry.Type, f.Geometry.Coordinates)
		if msg != "" {
			c.errorf(key, "%s: %s", where, msg)
			continue
		}
		add(key, newZone(zn, shape))
	}
}

// maxZoneFile bounds a zone file, so that a rule naming a device or a
// huge file by mistake is refused rather than read until memory runs out.
const maxZoneFile = 32 << 20

func readZoneFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case fi.Size() > maxZoneFile:
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxZoneFile>>20)
	}
	return io.ReadAll(io.LimitReader(f, maxZoneFile))
}

// geoJSONShape converts a Polygon's or MultiPolygon's coordinates, or
// says what is wrong with them.
func geoJSONShape(typ string, coords json.RawMessage) (orb.MultiPolygon, string) {
	var polys [][][][]float64
	var err error
	switch typ {
	case "Polygon":
		var p [][][]float64
		err = json.Unmarshal(coords, &p)
		polys = [][][][]float64{p}
	case "MultiPolygon":
		err = json.Unmarshal(coords, &polys)
	default:
		return nil, fmt.Sprintf("want a Polygon or MultiPolygon, got %q", typ)
	}
	if err != nil {
		return nil, fmt.Sprintf("bad %s coordinates: %v", typ, err)
	}
	var shape orb.MultiPolygon
	for pi, p := range polys {
		if len(p) == 0 {
			return nil, fmt.Sprintf("polygon %d has no rings", pi)
		}
		var poly orb.Polygon
		for ri, r := range p {
			ring := make(orb.Ring, 0, len(r)+1)
			for _, pt := range r {
				if len(pt) < 2 { // a third number is an altitude
					return nil, fmt.Sprintf("polygon %d ring %d: a position needs [lon, lat]", pi, ri)
				}
				if msg := checkPoint(pt[0], pt[1]); msg != "" {
					return nil, fmt.Sprintf("polygon %d ring %d: %s", pi, ri, msg)
				}
				ring = append(ring, orb.Point{pt[0], pt[1]})
			}
			if msg := checkRing(ring); msg != "" {
				return nil, fmt.Sprintf("polygon %d ring %d: %s", pi, ri, msg)
			}
			poly = append(poly, closeRing(ring))
		}
		shape = append(shape, poly)
	}
	if len(shape) == 0 {
		return nil, "no polygons"
	}
	return shape, ""
}
