package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Facility is environment sensors across the rooms of a warehouse, four
// to a room, reading every 15 s. A few of them fail: one gets stuck on a
// value, one drops out for 12 minutes (its radio still sends heartbeats),
// one spikes now and then (a loose probe). And once, one room's air
// conditioning fails: every sensor in it warms up and, like real firmware
// in alarm, reports eight times as often until the room is back to
// normal: an alarm storm. Judged by configs/rules/warehouse.yaml.
func Facility(o Options) *Plan {
	if o.Devices <= 0 {
		o.Devices = 12
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	p := &Plan{Scenario: "facility", Start: o.Start, End: o.Start.Add(o.Duration)}
	rooms := (o.Devices + 3) / 4
	layout := o.rng(0)
	for i := range o.Devices {
		room := fmt.Sprintf("room-%d", i/4+1)
		site := "warehouse-a"
		if i/4 >= (rooms+1)/2 {
			site = "warehouse-b"
		}
		p.Devices = append(p.Devices, DeviceSpec{ID: fmt.Sprintf("%s-s%d", room, i%4+1), Kind: "sim-env",
			Metadata: map[string]string{"site": site, "room": room}})
	}
	f := facilityFaults{stuck: -1, dropout: -1, spiky: -1, stormRoom: -1}
	if o.Devices >= 4 {
		perm := layout.Perm(o.Devices)
		f.stuck, f.dropout, f.spiky = perm[0], perm[1], perm[2]
		f.stormRoom = layout.IntN(rooms)
	}
	d := o.Duration
	f.stuckAt = o.Start.Add(d/10 + time.Duration(layout.Int64N(int64(d/4)+1)))
	f.dropAt = o.Start.Add(d/5 + time.Duration(layout.Int64N(int64(d/2)+1)))
	f.stormAt = o.Start.Add(d/4 + time.Duration(layout.Int64N(int64(d/4)+1)))
	for i := range p.Devices {
		p.Messages = append(p.Messages, f.sensor(o, p, i, o.rng(uint64(100+i))))
	}
	p.finish(o, 5*time.Minute, facilityTruth)
	return p
}

type facilityFaults struct {
	stuck, dropout, spiky, stormRoom int
	stuckAt, dropAt, stormAt         time.Time
}

// storm is how much warmer the storm room is at t: 20 minutes up to +9 °C,
// 20 minutes there, 20 minutes down; and whether the room is in alarm.
func (f facilityFaults) storm(t time.Time) (float64, bool) {
	x := t.Sub(f.stormAt).Minutes()
	switch {
	case x < 0 || x >= 60:
		return 0, false
	case x < 20:
		return 9 * x / 20, true
	case x < 40:
		return 9, true
	}
	return 9 * (60 - x) / 20, true
}

func (f facilityFaults) sensor(o Options, p *Plan, i int, rng *rand.Rand) []Message {
	var out []Message
	base := 19 + 3*rng.Float64()
	phase := rng.Float64() * 2 * math.Pi
	stuckValue := math.NaN()
	fast := max(o.Interval/8, time.Millisecond)
	for t := p.Start; t.Before(p.End); {
		v := base + 0.5*math.Sin(phase+2*math.Pi*t.Sub(p.Start).Hours()/6) + 0.05*rng.NormFloat64()
		warm, alarm := 0.0, false
		if i/4 == f.stormRoom {
			warm, alarm = f.storm(t)
		}
		v += warm
		if i == f.spiky && rng.IntN(100) == 0 {
			v += 35 // a loose probe
		}
		if i == f.stuck && !t.Before(f.stuckAt) {
			if math.IsNaN(stuckValue) {
				stuckValue = round2(v)
			}
			v = stuckValue
		}
		dropped := i == f.dropout && !t.Before(f.dropAt) && t.Before(f.dropAt.Add(12*time.Minute))
		if !dropped {
			out = append(out, Message{At: t, Topic: "env",
				Fields: []Field{Num("temperature", v), Num("humidity", 45+5*math.Sin(phase)+rng.NormFloat64()*0.5)}})
		}
		if alarm {
			t = t.Add(fast)
		} else {
			t = t.Add(o.Interval)
		}
	}
	return out
}

// facilityTruth judges a facility plan by configs/rules/warehouse.yaml.
func facilityTruth(p *Plan) []Truth {
	var out []Truth
	for i, d := range p.Devices {
		temps := values(p.sent(i, "env"), "temperature")
		site := map[string]any{"site": d.Metadata["site"]}
		out = append(out, thresholdTruth(temps, 25, 24, "warehouse.too_warm.started", "warehouse.too_warm.ended", d.ID, site)...)
		out = append(out, tumblingTruth(temps, 5*time.Minute, p.End, "warehouse.room.summary", d.ID, nil)...)
		out = append(out, rateTruth(temps, time.Minute, time.Second, 30, "warehouse.temperature.jump", d.ID)...)
		out = append(out, tumblingTruth(temps, 30*time.Minute, p.End, "warehouse.sensor.stuck", d.ID, stuck)...)
		out = append(out, sessionTruth(temps, 5*time.Minute, p.End, "warehouse.sensor.silent", d.ID)...)
	}
	return out
}

// stuck: at least 10 readings, all the same.
func stuck(vs []float64) bool {
	if len(vs) < 10 {
		return false
	}
	for _, v := range vs {
		if v != vs[0] {
			return false
		}
	}
	return true
}
