package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Scenarios are the names NewPlan knows, in the order they are listed.
var Scenarios = []string{"facility", "coldchain", "fleet"}

// NewPlan plans scenario name.
func NewPlan(name string, o Options) (*Plan, error) {
	if o.Duration <= 0 {
		return nil, fmt.Errorf("sim: duration must be positive")
	}
	if o.Start.IsZero() {
		return nil, fmt.Errorf("sim: no start time")
	}
	o.Start = o.Start.UTC().Truncate(time.Second)
	switch name {
	case "facility":
		return Facility(o), nil
	case "coldchain":
		return Coldchain(o), nil
	case "fleet":
		return Fleet(o), nil
	}
	return nil, fmt.Errorf("sim: unknown scenario %q (one of %s)", name, strings.Join(Scenarios, ", "))
}

// Topics are the ingest types of the topics scenario devices publish on,
// as configs/scenarios/*.yaml map them.
var Topics = map[string]string{
	"env":         "env.reading",
	"door":        "door.event",
	"gps":         "gps.fix",
	"rfid":        "rfid.read",
	"shift/start": "fleet.shift.started",
	"shift/end":   "fleet.shift.ended",
	"status":      "device.heartbeat",
}

// WriteReadings writes the plan's messages that reach the rules as the
// readings `flowgate rules test -i` replays (one CloudEvent a line, in the
// order they are sent), so the truth can be checked against the rules
// engine without a gateway.
func WriteReadings(w io.Writer, p *Plan) error {
	type reading struct {
		Time    time.Time       `json:"time"`
		Type    string          `json:"type"`
		Source  string          `json:"source"`
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	var all []reading
	for i, d := range p.Devices {
		for _, m := range p.sent(i) {
			data := map[string]any{}
			for _, f := range m.Fields {
				if f.IsStr {
					data[f.Name] = f.Text
				} else {
					data[f.Name] = f.Num
				}
			}
			if len(d.Metadata) > 0 {
				data["device"] = d.Metadata
			}
			b, _ := json.Marshal(data)
			all = append(all, reading{Time: m.Stamp, Type: Topics[m.Topic], Source: "/gateways/replay/devices/" + d.ID, Subject: d.ID, Data: b})
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].Time.Before(all[b].Time) })
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, r := range all {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}
