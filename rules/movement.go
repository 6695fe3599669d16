package rules

import (
	"math"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"

	"github.com/flowgate/flowgate/event"
)

// movementOp measures each key's movement between consecutive fixes and
// emits when the speed between them is beyond what the key can do: an
// impossible jump.
type movementOp struct {
	lat, lon    field
	maxSpeed    float64 // m/s
	minDistance float64 // m
	last        map[string]*lastFix
}

// lastFix is a key's previous fix.
type lastFix struct {
	p  orb.Point
	t  int64
	id string
}

func (o *movementOp) fresh() operator {
	c := *o
	c.last = map[string]*lastFix{}
	return &c
}

func (o *movementOp) event(r *rule, key []byte, ev *event.Event, t int64) {
	p, ok := position(o.lat, o.lon, ev)
	if !ok {
		return
	}
	prev := o.last[string(key)]
	if prev == nil {
		o.last[string(key)] = &lastFix{p, t, ev.ID}
		return
	}
	if t <= prev.t {
		return // the same instant, or out of order: no speed
	}
	d := geo.DistanceHaversine(prev.p, p)
	secs := float64(t-prev.t) / 1e9
	if speed := d / secs; speed > o.maxSpeed && d >= o.minDistance {
		out := map[string]any{
			"distance_m": math.Round(d*10) / 10, "seconds": round(secs), "speed": math.Round(speed*100) / 100,
			"max_speed": o.maxSpeed, "lat": p.Lat(), "lon": p.Lon(),
			"from_lat": prev.p.Lat(), "from_lon": prev.p.Lon(), "from_time": time.Unix(0, prev.t).UTC(),
		}
		r.produce(r.emit.typ, string(key), t, out, ev, []string{prev.id, ev.ID})
	}
	*prev = lastFix{p, t, ev.ID}
}

func (o *movementOp) fire(*rule, string, int64) {}

func (c *compiler) movement(s *MovementSpec) operator {
	o := &movementOp{maxSpeed: s.MaxSpeed, minDistance: s.MinDistance}
	o.lat, o.lon = c.positionFields("movement", s.Lat, s.Lon)
	if !(s.MaxSpeed > 0) || math.IsInf(s.MaxSpeed, 0) {
		c.errorf("movement.max_speed", "must be a positive number: the fastest the key can go, in m/s")
	}
	if !(s.MinDistance >= 0) || math.IsInf(s.MinDistance, 0) {
		c.errorf("movement.min_distance", "must be a number of metres, 0 or more")
	}
	return o
}
