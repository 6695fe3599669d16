package devices

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func testNormalizer() *Normalizer {
	return &Normalizer{Source: "/gateways/gw1", MaxPayload: 64, Topics: []IngestTopic{
		{Filter: "devices/+/env", Type: "env.reading"},
		{Filter: "devices/+/gps/#", Type: "gps.fix"},
	}}
}

func TestNormalize(t *testing.T) {
	n := testNormalizer()
	d := &Device{ID: "truck-7", TopicPrefix: DefaultPrefix("truck-7")}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.FixedZone("x", 3600))
	ev, err := n.Normalize(d, "devices/truck-7/env", []byte(`{"t":21.5}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "env.reading" || ev.Subject != "truck-7" || ev.Source != "/gateways/gw1/devices/truck-7" ||
		!ev.Time.Equal(now) || ev.Time.Location() != time.UTC || string(ev.Data) != `{"t":21.5}` ||
		ev.Topic != "devices/truck-7/env" {
		t.Errorf("unexpected event %+v", ev)
	}
	ev2, _ := n.Normalize(d, "devices/truck-7/gps/fix", []byte(`{}`), now)
	if ev2.Type != "gps.fix" || ev2.ID == ev.ID || ev.ID == "" {
		t.Errorf("second event: type %q id %q (first id %q)", ev2.Type, ev2.ID, ev.ID)
	}
}

func TestNormalizeRejects(t *testing.T) {
	n := testNormalizer()
	d := &Device{ID: "d"}
	for _, c := range []struct {
		topic, payload string
		want           Reason
	}{
		{"devices/d/unknown", `{}`, ReasonUnknownTopic},
		{"devices/d/env", `{"pad":"` + string(bytes.Repeat([]byte("x"), 64)) + `"}`, ReasonTooLarge},
		{"devices/d/env", `{"t":`, ReasonMalformed},
		{"devices/d/env", `[1,2]`, ReasonMalformed},
		{"devices/d/env", `42`, ReasonMalformed},
		{"devices/d/env", ``, ReasonMalformed},
		{"devices/d/env", `{} {}`, ReasonMalformed},
		{"devices/d/env", "{\"s\":\"\xff\"}", ReasonMalformed},
	} {
		_, err := n.Normalize(d, c.topic, []byte(c.payload), time.Now())
		r, ok := AsReject(err)
		if !ok || r.Reason != c.want {
			t.Errorf("Normalize(%q, %q) = %v, want reason %s", c.topic, c.payload, err, c.want)
		}
	}
}

// FuzzNormalize feeds arbitrary payloads through the device-payload path and
// checks the contract: an accepted payload yields an event whose CloudEvents
// JSON is itself valid and carries the payload unchanged; a refused one has
// a reason; nothing panics.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{`{"t":21.5}`, `{"a":[1,{"b":null}]}`, `{`, `[]`, `"x"`, ``, "{\"s\":\"\xff\"}", `{"t":1e999}`} {
		f.Add("devices/d/env", []byte(s))
	}
	f.Add("devices/d/other", []byte(`{}`))
	n := testNormalizer()
	n.MaxPayload = 4096
	d := &Device{ID: "d"}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		ev, err := n.Normalize(d, topic, payload, time.Unix(0, 0))
		if err != nil {
			if _, ok := AsReject(err); !ok {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		out, _ := ev.MarshalJSON()
		if !json.Valid(out) {
			t.Fatalf("invalid CloudEvent JSON %q", out)
		}
		var back struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(out, &back); err != nil || back.ID != ev.ID {
			t.Fatalf("round trip: %v, id %q", err, back.ID)
		}
		if !bytes.Equal(bytes.TrimSpace(back.Data), bytes.TrimSpace(payload)) {
			t.Fatalf("data changed: %q -> %q", payload, back.Data)
		}
	})
}
