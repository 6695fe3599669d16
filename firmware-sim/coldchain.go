package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Coldchain is refrigerated units (reefers) on delivery rounds, each
// reporting its box temperature and humidity every minute and its door
// opening and closing. The box follows its surroundings with a thermal
// lag: towards the set point (4 °C) with the compressor running, towards
// the outside air slowly with the compressor off, and quickly with the
// door open. On every round the door opens for 2 to 4 minutes at each
// stop; one unit's door is left open for 12 minutes; one unit's
// compressor fails for 90 minutes; one unit's probe drops out for 25
// minutes. Judged by configs/rules/coldchain.yaml.
func Coldchain(o Options) *Plan {
	if o.Devices <= 0 {
		o.Devices = 6
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	p := &Plan{Scenario: "coldchain", Start: o.Start, End: o.Start.Add(o.Duration)}
	layout := o.rng(0)
	for i := range o.Devices {
		p.Devices = append(p.Devices, DeviceSpec{ID: fmt.Sprintf("reefer-%d", i+1), Kind: "sim-reefer",
			Metadata: map[string]string{"vehicle": fmt.Sprintf("TRK-%d", 101+i), "site": "depot-12"}})
	}
	perm := layout.Perm(o.Devices)
	pick := func(k int) int {
		if k < len(perm) {
			return perm[k]
		}
		return -1
	}
	for i := range p.Devices {
		u := reefer{o: o, p: p, rng: o.rng(uint64(100 + i))}
		u.plan(i == pick(0), i == pick(1), i == pick(2))
		p.Messages = append(p.Messages, u.run())
	}
	p.finish(o, 5*time.Minute, coldchainTruth)
	return p
}

// reefer is one unit's plan: when its door is open, when its compressor
// is off, when its probe is silent.
type reefer struct {
	o          Options
	p          *Plan
	rng        *rand.Rand
	doors      [][2]time.Time // open, close
	compOff    [2]time.Time
	probeOff   [2]time.Time
	setpoint   float64
	outsideAvg float64
}

// plan draws the unit's stops: one every 40 to 80 minutes, the door open
// 2 to 4 minutes (12 for the careless one), at a time with seconds, so
// door events never share a timestamp with a reading.
func (u *reefer) plan(careless, faulty, dropout bool) {
	u.setpoint, u.outsideAvg = 4, 16+6*u.rng.Float64()
	d := u.o.Duration
	t := u.p.Start.Add(time.Duration(20+u.rng.IntN(40))*time.Minute + time.Duration(1+u.rng.IntN(58))*time.Second)
	stop := 0
	for ; t.Before(u.p.End.Add(-20 * time.Minute)); stop++ {
		open := time.Duration(120+u.rng.IntN(120)) * time.Second
		if careless && stop == 1 {
			open = 12 * time.Minute
		}
		u.doors = append(u.doors, [2]time.Time{t, t.Add(open)})
		t = t.Add(open + time.Duration(40+u.rng.IntN(40))*time.Minute)
	}
	if faulty {
		at := u.p.Start.Add(d/3 + time.Duration(u.rng.Int64N(int64(d/3)+1))).Truncate(time.Minute).Add(30 * time.Second)
		u.compOff = [2]time.Time{at, at.Add(90 * time.Minute)}
	}
	if dropout {
		at := u.p.Start.Add(d/4 + time.Duration(u.rng.Int64N(int64(d/2)+1))).Truncate(time.Minute).Add(30 * time.Second)
		u.probeOff = [2]time.Time{at, at.Add(25 * time.Minute)}
	}
}

func within(t time.Time, span [2]time.Time) bool {
	return !t.Before(span[0]) && t.Before(span[1])
}

// run integrates the box temperature in steps of a second and emits a
// reading every interval and each door event as it happens.
func (u *reefer) run() []Message {
	var out []Message
	temp := u.setpoint + u.rng.NormFloat64()*0.2
	next := u.p.Start
	door := 0
	for t := u.p.Start; t.Before(u.p.End); t = t.Add(time.Second) {
		open := door < len(u.doors) && within(t, u.doors[door])
		if door < len(u.doors) && t.Equal(u.doors[door][0]) {
			out = append(out, Message{At: t, Topic: "door", Fields: []Field{Str("door", "open")}})
		}
		if door < len(u.doors) && t.Equal(u.doors[door][1]) {
			out = append(out, Message{At: t, Topic: "door", Fields: []Field{Str("door", "closed")}})
			door++
		}
		outside := u.outsideAvg + 4*math.Sin(2*math.Pi*t.Sub(u.p.Start).Hours()/24)
		target, tau := u.setpoint, 8.0 // minutes
		switch {
		case open:
			target, tau = outside, 15
		case within(t, u.compOff):
			target, tau = outside, 90
		}
		temp += (target - temp) * (1 - math.Exp(-1/(60*tau)))
		if !t.Before(next) {
			next = next.Add(u.o.Interval)
			if !within(t, u.probeOff) {
				out = append(out, Message{At: t, Topic: "env", Fields: []Field{
					Num("temperature", temp+0.1*u.rng.NormFloat64()), Num("humidity", 85+3*u.rng.NormFloat64())}})
			}
		}
	}
	return out
}

// coldchainTruth judges a coldchain plan by configs/rules/coldchain.yaml.
func coldchainTruth(p *Plan) []Truth {
	var out []Truth
	for i, d := range p.Devices {
		all := p.sent(i, "env", "door")
		temps := values(p.sent(i, "env"), "temperature")
		vehicle := map[string]any{"vehicle": d.Metadata["vehicle"]}
		out = append(out, thresholdTruth(temps, 8, 7, "coldchain.excursion.started", "coldchain.excursion.ended", d.ID, vehicle)...)
		var doors []startEnd
		for _, m := range p.sent(i, "door") {
			doors = append(doors, startEnd{t: m.Stamp, start: m.Text("door") == "open"})
		}
		out = append(out, absenceTruth(doors, 5*time.Minute, p.End, "coldchain.door.left_open", d.ID, nil)...)
		opened := func(m *Message) bool { return m.Topic == "door" && m.Text("door") == "open" }
		warm := func(m *Message) bool { v, ok := m.Value("temperature"); return m.Topic == "env" && ok && v > 8 }
		out = append(out, sequenceTruth(all, opened, warm, 10*time.Minute, "coldchain.door_excursion", d.ID)...)
		out = append(out, sessionTruth(temps, 10*time.Minute, p.End, "coldchain.reefer.silent", d.ID)...)
		out = append(out, tumblingTruth(temps, time.Hour, p.End, "coldchain.reefer.hourly", d.ID, nil)...)
	}
	return out
}
