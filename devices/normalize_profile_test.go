package devices

import (
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
)

const benchProfiles = `
profiles:
  ws-2902:
    event_type: env.reading
    fields:
      temperature: {path: outdoor.tempf, unit: degF, decimals: 2, min: -60, max: 85}
      humidity: {path: outdoor.humidity, unit: "%", min: 0, max: 100}
    time: {path: ts, format: epoch_ms, max_skew: 1h}
`

func profileNormalizer(t testing.TB) *Normalizer {
	t.Helper()
	return &Normalizer{Source: "/gateways/gw1", MaxPayload: 4096,
		Topics:   []IngestTopic{{Filter: "devices/+/env", Type: "env.reading"}},
		Profiles: mustProfiles(t, benchProfiles), Catalog: mustCatalog(t, testCatalog)}
}

func TestNormalizeWithProfile(t *testing.T) {
	n := profileNormalizer(t)
	d := &Device{ID: "reefer-7", Kind: "ws-2902", Metadata: map[string]string{"vehicle": "TRK-7"}}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	ev, err := n.Normalize(d, "devices/reefer-7/env", []byte(`{"outdoor":{"tempf":39.2,"humidity":60},"ts":1772366399000}`), now)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"humidity":60,"temperature":4,"skew_ms":3599000,"device":{"vehicle":"TRK-7"}}`
	if string(ev.Data) != want || ev.Type != "env.reading" || ev.Subject != "reefer-7" || ev.ID == "" ||
		!ev.Time.Equal(time.UnixMilli(1772366399000)) || ev.Time.Location() != time.UTC {
		t.Errorf("event %+v\ndata %s\nwant %s", ev, ev.Data, want)
	}
	// The same device with an impossible reading, and one the catalog refuses.
	for payload, reason := range map[string]Reason{
		`{"outdoor":{"tempf":200,"humidity":60}}`: ReasonImpossible,
		`{"outdoor":{"tempf":39.2}}`:              ReasonBadPayload,
		`{"outdoor":{"tempf":39.2,"humidity":60}`: ReasonMalformed,
	} {
		_, err := n.Normalize(d, "devices/reefer-7/env", []byte(payload), now)
		if r, ok := AsReject(err); !ok || r.Reason != reason {
			t.Errorf("%s: %v, want %s", payload, err, reason)
		}
	}
}

func TestNormalizeUnknownKind(t *testing.T) {
	n := profileNormalizer(t)
	_, err := n.Normalize(&Device{ID: "d", Kind: "toaster"}, "devices/d/env", []byte(`{}`), time.Now())
	if r, ok := AsReject(err); !ok || r.Reason != ReasonUnknownKind {
		t.Errorf("got %v", err)
	}
	n.Profiles = nil
	_, err = n.Normalize(&Device{ID: "d", Kind: "ws-2902"}, "devices/d/env", []byte(`{}`), time.Now())
	if r, ok := AsReject(err); !ok || r.Reason != ReasonUnknownKind {
		t.Errorf("without profiles: %v", err)
	}
}

// A device without a kind keeps its JSON object as it is, and the catalog
// still judges it.
func TestNormalizeKindlessAgainstCatalog(t *testing.T) {
	n := profileNormalizer(t)
	d := &Device{ID: "d", Metadata: map[string]string{"site": "x"}}
	payload := []byte(`{"temperature": 4.5}`)
	ev, err := n.Normalize(d, "devices/d/env", payload, time.Now())
	if err != nil || &ev.Data[0] != &payload[0] {
		t.Fatalf("kept as is: %v, data %s", err, ev.Data)
	}
	_, err = n.Normalize(d, "devices/d/env", []byte(`{"temperature": "warm"}`), time.Now())
	if r, ok := AsReject(err); !ok || r.Reason != ReasonSchema {
		t.Errorf("got %v, want schema_violation", err)
	}
}

func TestReasonsPreregistered(t *testing.T) {
	for _, r := range []Reason{ReasonUnknownKind, ReasonBadPayload, ReasonImpossible, ReasonSchema} {
		if !slices.Contains(Reasons, r) {
			t.Errorf("Reasons lacks %s", r)
		}
	}
}

// BenchmarkNormalizeProfile is the normalizer's cost per reading of a
// profiled device: JSON paths, a unit conversion, a range, a device time,
// enrichment, then catalog validation of the result.
func BenchmarkNormalizeProfile(b *testing.B) {
	n := profileNormalizer(b)
	d := &Device{ID: "reefer-7", Kind: "ws-2902", Metadata: map[string]string{"vehicle": "TRK-7", "site": "depot-12"}}
	payload := []byte(`{"outdoor":{"tempf":39.2,"humidity":60,"uv":3},"wind":{"speedmph":4},"ts":1772366399000}`)
	now := time.UnixMilli(1772366400000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Normalize(d, "devices/reefer-7/env", payload, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCatalogValidate is the catalog's cost per event on its own.
func BenchmarkCatalogValidate(b *testing.B) {
	c := mustCatalog(b, testCatalog)
	ev := profileEvent(`{"humidity":60,"temperature":4,"skew_ms":-1000,"device":{"site":"depot-12","vehicle":"TRK-7"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Validate(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func profileEvent(data string) *event.Event {
	return &event.Event{Type: "env.reading", Data: []byte(data)}
}

// BenchmarkNormalizeRaw is the reference: a device without a kind, no
// catalog (the payload kept as it is).
func BenchmarkNormalizeRaw(b *testing.B) {
	n := profileNormalizer(b)
	n.Catalog = nil
	d := &Device{ID: "reefer-7"}
	payload := []byte(`{"outdoor":{"tempf":39.2,"humidity":60,"uv":3},"wind":{"speedmph":4},"ts":1772366399000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Normalize(d, "devices/reefer-7/env", payload, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
