package sim

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"
)

// DeviceSpec is one simulated device as the gateway's registry knows it.
type DeviceSpec struct {
	ID       string
	Kind     string            // its profile in configs/scenarios/profiles.yaml
	Metadata map[string]string // enrichment kept by the registry
}

// Message is one publish a device makes.
type Message struct {
	At     time.Time // simulated time it is sent
	Stamp  time.Time // the time in its payload (At, plus the device's clock skew)
	Topic  string    // under the device's prefix: "env" is devices/{id}/env
	Fields []Field   // the payload's fields besides "ts", in order
	Broken bool      // sent malformed (-faults): the gateway dead-letters it
	Retain bool
}

// Field is one payload field: a number (when Text is empty) or a string.
type Field struct {
	Name  string
	Num   float64
	Text  string
	IsStr bool
}

// Num is a numeric field, rounded to two decimals as it is sent.
func Num(name string, v float64) Field { return Field{Name: name, Num: round2(v)} }

// Str is a string field.
func Str(name, v string) Field { return Field{Name: name, Text: v, IsStr: true} }

// Value is the field's numeric value and whether the message has it.
func (m *Message) Value(name string) (float64, bool) {
	for _, f := range m.Fields {
		if f.Name == name && !f.IsStr {
			return f.Num, true
		}
	}
	return 0, false
}

// Text is the field's string value, or "".
func (m *Message) Text(name string) string {
	for _, f := range m.Fields {
		if f.Name == name && f.IsStr {
			return f.Text
		}
	}
	return ""
}

// Payload is the message as sent: a JSON object with the fields and "ts"
// (the stamp in epoch milliseconds), or a truncated one when Broken.
func (m *Message) Payload() []byte { return m.AppendPayload(nil) }

// AppendPayload appends the payload to b. Payloads are made when they are
// sent, not kept in the plan: at 10,000 devices a plan holds hundreds of
// thousands of messages.
func (m *Message) AppendPayload(b []byte) []byte {
	start := len(b)
	b = append(b, '{')
	for _, f := range m.Fields {
		b = strconv.AppendQuote(b, f.Name)
		b = append(b, ':')
		if f.IsStr {
			b = strconv.AppendQuote(b, f.Text)
		} else {
			b = strconv.AppendFloat(b, f.Num, 'f', -1, 64)
		}
		b = append(b, ',')
	}
	b = append(b, `"ts":`...)
	b = strconv.AppendInt(b, m.Stamp.UnixMilli(), 10)
	b = append(b, '}')
	if m.Broken {
		b = b[:start+(len(b)-start)/2] // a firmware bug cuts the buffer short
	}
	return b
}

// Plan is everything a scenario's devices will send, and the notable
// events that implies.
type Plan struct {
	Scenario string
	Start    time.Time // the first simulated instant
	End      time.Time // every device's last message is at End
	Devices  []DeviceSpec
	Messages [][]Message // per device, in the order of Devices, by At
	Truth    []Truth     // sorted by time, type, subject
}

// Count is the number of messages in the plan.
func (p *Plan) Count() int {
	n := 0
	for _, ms := range p.Messages {
		n += len(ms)
	}
	return n
}

// Options are what every scenario takes.
type Options struct {
	Seed     uint64
	Start    time.Time     // simulated time of the first instant
	Duration time.Duration // how much simulated time the plan covers
	Devices  int           // how many devices (scenario-specific meaning; 0: the scenario's default)
	Interval time.Duration // time between two readings of one device (0: the scenario's default)
	Faults   float64       // share of messages sent malformed, 0 to 1
	Skew     time.Duration // each device's clock is off by up to this much, either way
}

// rng returns the random stream number stream of the seed: every part of
// a scenario draws from its own, so that changing one part's draws leaves
// the others alone.
func (o Options) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(o.Seed, stream))
}

// finish sorts each device's messages, adds heartbeats every hb and one at
// End for every device (so the gateway's watermark reaches End), applies
// clock skew and faults, and computes the truth with judge.
func (p *Plan) finish(o Options, hb time.Duration, judge func(p *Plan) []Truth) {
	faults, skews := o.rng(1<<40), o.rng(1<<41)
	for i := range p.Messages {
		// A device's story may run past the end (a drive under way); what
		// would be sent after it is not, and the truth is judged on what is.
		ms := slices.DeleteFunc(p.Messages[i], func(m Message) bool { return m.At.After(p.End) })
		for t := p.Start.Add(hb); t.Before(p.End); t = t.Add(hb) {
			ms = append(ms, heartbeat(t, 0))
		}
		ms = append(ms, heartbeat(p.End, 0))
		sort.SliceStable(ms, func(a, b int) bool { return ms[a].At.Before(ms[b].At) })
		skew := time.Duration(0)
		if o.Skew > 0 {
			skew = time.Duration(skews.Int64N(2*int64(o.Skew)+1)) - o.Skew
			skew = skew.Truncate(time.Millisecond)
		}
		for j := range ms {
			ms[j].Stamp = ms[j].At.Add(skew)
			last := j == len(ms)-1
			if o.Faults > 0 && !last && faults.Float64() < o.Faults {
				ms[j].Broken = true
			}
		}
		p.Messages[i] = append(make([]Message, 0, len(ms)), ms...) // without append's spare room
	}
	p.Truth = judge(p)
	sortTruth(p.Truth)
}

// heartbeat is a device's periodic status message: it keeps the device's
// clock moving at the gateway when it has nothing else to say.
func heartbeat(t time.Time, battery float64) Message {
	if battery == 0 {
		battery = 90
	}
	return Message{At: t, Topic: "status", Fields: []Field{Num("battery", battery)}}
}

// sent is the messages of device i that reached the rules: not broken,
// on one of topics (all when none given).
func (p *Plan) sent(i int, topics ...string) []Message {
	var out []Message
	for _, m := range p.Messages[i] {
		if m.Broken {
			continue
		}
		if len(topics) == 0 {
			out = append(out, m)
			continue
		}
		for _, t := range topics {
			if m.Topic == t {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func round2(v float64) float64 {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	r, _ := strconv.ParseFloat(s, 64)
	return r
}
