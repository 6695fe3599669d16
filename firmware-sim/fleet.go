package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// depot is the zone of configs/rules/fleet.yaml's depot-geofence rule.
var depot = rect{name: "depot", minLat: 51.898, minLon: 4.397, maxLat: 51.902, maxLon: 4.403}

// Fleet is delivery vans working from a depot. Each van's telematics unit
// reports a GPS fix every 30 s while driving (every 5 minutes parked), its
// cargo bay's temperature every 5 minutes, its driver's shift starting and
// ending (from the cab tablet), and the parcels its RFID reader sees.
// Parcels wait at the depot's dock reader, are loaded into a van (a move
// between readers) and delivered at a stop (they depart the van). Vans
// drive urban legs at about 12 m/s and long legs on the motorway at about
// 28 m/s (speeding above 25); every third driver's shift runs past 8
// hours; one van's cargo bay warms past 25 °C in the afternoon. Judged by
// configs/rules/fleet.yaml.
func Fleet(o Options) *Plan {
	if o.Devices <= 0 {
		o.Devices = 4
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	p := &Plan{Scenario: "fleet", Start: o.Start, End: o.Start.Add(o.Duration)}
	hub := &[]Message{}
	for i := range o.Devices {
		id := fmt.Sprintf("van-%d", i+1)
		p.Devices = append(p.Devices, DeviceSpec{ID: id, Kind: "sim-vehicle", Metadata: map[string]string{"depot": "depot-12"}})
		v := &van{o: o, p: p, id: id, i: i, rng: o.rng(uint64(100 + i)), hub: hub}
		p.Messages = append(p.Messages, v.run())
	}
	p.Devices = append(p.Devices, DeviceSpec{ID: "hub-depot", Kind: "sim-reader", Metadata: map[string]string{"depot": "depot-12"}})
	p.Messages = append(p.Messages, *hub)
	p.finish(o, 5*time.Minute, fleetTruth)
	return p
}

type van struct {
	o     Options
	p     *Plan
	id    string
	i     int
	rng   *rand.Rand
	hub   *[]Message
	out   []Message
	t     time.Time
	lat   float64
	lon   float64
	cargo []string // tags on board
}

func (v *van) fix(speed float64) {
	v.out = append(v.out, Message{At: v.t, Topic: "gps", Fields: []Field{Num("lat", v.lat), Num("lon", v.lon), Num("speed", math.Max(0, speed))}})
}

// parked reports every 5 minutes until `until`.
func (v *van) parked(until time.Time) {
	for ; v.t.Before(until) && v.t.Before(v.p.End); v.t = v.t.Add(5 * time.Minute) {
		v.fix(0)
		v.onBoard()
	}
	if v.t.Before(v.p.End) {
		v.t = until
	}
}

// onBoard has the van's reader see every parcel on board (at most once a
// minute is enough: it is called at each fix).
func (v *van) onBoard() {
	for _, tag := range v.cargo {
		v.out = append(v.out, Message{At: v.t, Topic: "rfid", Fields: []Field{Str("tag", tag), Str("reader", v.id)}})
	}
}

// drive goes to (lat, lon) at cruise speed, a fix every interval.
func (v *van) drive(lat, lon, cruise float64) {
	dist := haversine(v.lat, v.lon, lat, lon)
	steps := int(dist/cruise/v.o.Interval.Seconds()) + 1
	fromLat, fromLon := v.lat, v.lon
	for k := 1; k <= steps && v.t.Before(v.p.End); k++ {
		v.t = v.t.Add(v.o.Interval)
		f := float64(k) / float64(steps)
		v.lat, v.lon = fromLat+(lat-fromLat)*f, fromLon+(lon-fromLon)*f
		speed := cruise + 0.8*v.rng.NormFloat64()
		if k == steps {
			speed = 0
		}
		v.fix(speed)
		if k%2 == 0 {
			v.onBoard()
		}
	}
}

func (v *van) run() []Message {
	v.lat, v.lon = 51.9+0.0005*float64(v.i%3), 4.4+0.0008*float64(v.i%4) // its bay in the depot
	v.t = v.p.Start
	// Shifts start every 10 minutes from 40 minutes in, over 8 hours, so a
	// large fleet does not stretch the morning (or the dock's reads) on.
	shiftStart := v.p.Start.Add(time.Duration(40+10*(v.i%48))*time.Minute + time.Duration(1+v.rng.IntN(58))*time.Second)
	shiftLen := time.Duration(6*60+v.rng.IntN(60)) * time.Minute
	if v.i%3 == 0 {
		shiftLen = 9 * time.Hour
	}
	tags := []string{}
	for k := range 3 {
		tag := fmt.Sprintf("PKG-%d%02d", v.i+1, k+1)
		tags = append(tags, tag)
		for t := v.p.Start.Add(time.Duration(5+k)*time.Minute + 7*time.Second); t.Before(shiftStart.Add(-11*time.Minute)) && t.Before(v.p.End); t = t.Add(time.Minute) {
			*v.hub = append(*v.hub, Message{At: t, Topic: "rfid", Fields: []Field{Str("tag", tag), Str("reader", "hub-depot")}})
		}
	}
	v.parked(shiftStart.Add(-9 * time.Minute))
	v.cargo = tags // loaded: two minutes after the dock last saw them
	v.parked(shiftStart)
	driver := fmt.Sprintf("D-%d", 17+v.i)
	v.out = append(v.out, Message{At: v.t, Topic: "shift/start", Fields: []Field{Str("driver_id", driver)}})
	stops := 0
	for v.t.Before(shiftStart.Add(shiftLen-time.Hour)) && v.t.Before(v.p.End) {
		ang := v.rng.Float64() * 2 * math.Pi
		km, cruise := 3+5*v.rng.Float64(), 12.0
		if v.rng.IntN(3) == 0 {
			km, cruise = 12+8*v.rng.Float64(), 28
		}
		v.drive(51.9+km/111*math.Sin(ang), 4.4+km/69*math.Cos(ang), cruise)
		if len(v.cargo) > 0 && stops%2 == 1 {
			v.cargo = v.cargo[1:] // delivered: its last read was on the way here
		}
		stops++
		v.parkedFor(time.Duration(5+v.rng.IntN(6)) * time.Minute)
	}
	v.drive(51.9+0.0005*float64(v.i%3), 4.4+0.0008*float64(v.i%4), 12)
	v.parkedFor(5 * time.Minute)
	if end := shiftStart.Add(shiftLen); v.t.Before(end) {
		v.parked(end) // paperwork at the depot until the shift's planned end
	}
	if v.t.Before(v.p.End) {
		v.out = append(v.out, Message{At: v.t.Add(13 * time.Second), Topic: "shift/end", Fields: []Field{Str("driver_id", driver)}})
	}
	v.cargo = nil
	v.parked(v.p.End)
	for t := v.p.Start.Add(2*time.Minute + 30*time.Second); t.Before(v.p.End); t = t.Add(5 * time.Minute) {
		warm := 3.0
		if v.i == 1 {
			warm = 9
		}
		x := t.Sub(shiftStart).Hours() / shiftLen.Hours()
		temp := 19 + 0.2*v.rng.NormFloat64()
		if x > 0 && x < 1 {
			temp += warm * math.Sin(math.Pi*x)
		}
		v.out = append(v.out, Message{At: t, Topic: "env", Fields: []Field{Num("temperature", temp)}})
	}
	return v.out
}

// parkedFor stays put for d with a fix every interval, speed 0.
func (v *van) parkedFor(d time.Duration) {
	until := v.t.Add(d)
	for k := 1; ; k++ {
		v.t = v.t.Add(v.o.Interval)
		if !v.t.Before(until) || !v.t.Before(v.p.End) {
			break
		}
		v.fix(0)
		if k%2 == 0 {
			v.onBoard()
		}
	}
}

func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371000.0
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

// fleetTruth judges a fleet plan by configs/rules/fleet.yaml.
func fleetTruth(p *Plan) []Truth {
	var out []Truth
	reads := map[string][]point{}
	for i, d := range p.Devices {
		for _, m := range p.sent(i, "rfid") {
			reads[m.Text("tag")] = append(reads[m.Text("tag")], point{t: m.Stamp, s: m.Text("reader")})
		}
		if d.Kind != "sim-vehicle" {
			continue
		}
		fixes := p.sent(i, "gps")
		speeds := values(fixes, "speed")
		out = append(out, thresholdTruth(speeds, 25, 23, "fleet.vehicle.speeding.started", "fleet.vehicle.speeding.ended", d.ID, nil)...)
		out = append(out, tumblingTruth(speeds, 5*time.Minute, p.End, "fleet.vehicle.speed_summary", d.ID, nil)...)
		out = append(out, geofenceTruth(fixes, depot, d.ID)...)
		out = append(out, thresholdTruth(values(p.sent(i, "env"), "temperature"), 25, 23, "fleet.cargo.too_warm.started", "fleet.cargo.too_warm.ended", d.ID, nil)...)
		var shifts []startEnd
		driver := ""
		for _, m := range p.sent(i, "shift/start", "shift/end") {
			shifts = append(shifts, startEnd{t: m.Stamp, start: m.Topic == "shift/start"})
			driver = m.Text("driver_id")
		}
		out = append(out, absenceTruth(shifts, 8*time.Hour, p.End, "fleet.driver.driving_time_exceeded", driver, map[string]any{"vehicle": d.ID})...)
	}
	for tag, rs := range reads {
		sortPoints(rs)
		out = append(out, rfidTruth(rs, 10*time.Minute, p.End, tag)...)
	}
	return out
}
