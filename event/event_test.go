package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	in := Event{ID: NewID(), Source: "/gateways/gw/devices/d\"1", Type: "env.reading", Subject: "d\"1\\\x01\n\xff",
		Time: time.Date(2026, 11, 22, 10, 0, 0, 123, time.UTC), DataContentType: "application/json",
		DataSchema: "urn:flowgate:schema:env.reading:1.0.0",
		Data:       json.RawMessage(`{"t":21.5}`), Topic: "devices/d/env"}
	b, err := in.MarshalJSON()
	if err != nil || !json.Valid(b) {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	var out Event
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Source != in.Source || out.Type != in.Type || out.Subject != "d\"1\\\x01\n\ufffd" ||
		!out.Time.Equal(in.Time) || string(out.Data) != `{"t":21.5}` || out.DataContentType != "application/json" ||
		out.DataSchema != in.DataSchema {
		t.Errorf("round trip: %+v", out)
	}
	if !strings.Contains(string(b), `,"dataschema":"urn:flowgate:schema:env.reading:1.0.0",`) {
		t.Errorf("no dataschema attribute in %s", b)
	}
	if out.Topic != "" {
		t.Errorf("topic is internal and must not travel: %q", out.Topic)
	}
}

func TestUnmarshalRequires(t *testing.T) {
	for _, s := range []string{
		`{"specversion":"0.3","id":"1","source":"s","type":"t"}`,
		`{"specversion":"1.0","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"1","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"s"}`,
	} {
		var e Event
		if err := json.Unmarshal([]byte(s), &e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", s, err)
		}
	}
}

func TestIDsAreUniqueAndOrdered(t *testing.T) {
	prev := NewID()
	for range 1000 {
		id := NewID()
		if id <= prev {
			t.Fatalf("id %s not after %s", id, prev)
		}
		prev = id
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	ev := Event{ID: NewID(), Source: "/gateways/gw/devices/truck-7", Type: "env.reading", Subject: "truck-7",
		Time: time.Now(), Data: json.RawMessage(`{"temperature":21.5,"humidity":40.2}`)}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}
