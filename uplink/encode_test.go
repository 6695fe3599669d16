package uplink

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/flowgate/flowgate/event"
)

// pahoEncode is the record paho's own encoder makes of ev on topic: what
// encode wrote before it wrote the packet itself, and what stored records
// of earlier versions hold.
func pahoEncode(t testing.TB, topic string, ev *event.Event) []byte {
	t.Helper()
	pkt := packets.Publish{
		QoS:   1,
		Topic: topic,
		Properties: &packets.Properties{
			ContentType: event.ContentType,
			User:        []packets.User{{Key: idProperty, Value: ev.ID}},
		},
		Payload: ev.AppendJSON(nil),
	}
	var b bytes.Buffer
	if _, err := pkt.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encodeEvents are events of every size class a record's lengths take:
// two, three and four bytes of remaining length (the content type and the
// JSON alone pass 127 bytes), empty and large data.
func encodeEvents() []*event.Event {
	base := event.Event{ID: "8c5a0f5e-1c1e-4e0b-9a47-4b8f0d0f7c11", Source: "/gateways/gw1/devices/truck-1", Type: "env.reading",
		Subject: "truck-1", Time: time.Date(2026, 11, 23, 4, 0, 0, 123456789, time.UTC), DataContentType: "application/json"}
	var evs []*event.Event
	for _, n := range []int{0, 1, 10, 60, 100, 120, 200, 16_000, 16_500, 70_000, 2_100_000} {
		ev := base
		ev.Data = []byte(`{"x":"` + strings.Repeat("y", n) + `"}`)
		evs = append(evs, &ev)
	}
	short := base
	short.ID, short.Subject, short.Data = "a", "", nil
	return append(evs, &short)
}

// TestEncodeMatchesPaho: the records encode writes are byte for byte those
// paho's encoder writes, so stores written by either read the same, and
// checkPublish takes them.
func TestEncodeMatchesPaho(t *testing.T) {
	u, err := New(Options{URL: "mqtt://127.0.0.1:1", Topic: "flowgate/gw1/{type}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range encodeEvents() {
		got, err := u.encode(ev)
		if err != nil {
			t.Fatalf("encode of %d bytes of data: %v", len(ev.Data), err)
		}
		want := pahoEncode(t, "flowgate/gw1/"+ev.Type, ev)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes of data: encode wrote\n%x\npaho writes\n%x", len(ev.Data), got[:min(len(got), 64)], want[:min(len(want), 64)])
		}
		if _, ok := checkPublish(got); !ok {
			t.Errorf("%d bytes of data: checkPublish refuses the record", len(ev.Data))
		}
	}
}

// TestEncodeLengthBoundaries: records whose remaining length sits on
// either side of each boundary of its encoding (16,383 and 16,384;
// 2,097,151 and 2,097,152), with ids whose property length does, match
// paho's; a record past MQTT's largest packet is refused as invalid.
func TestEncodeLengthBoundaries(t *testing.T) {
	u, err := New(Options{URL: "mqtt://127.0.0.1:1", Topic: "flowgate/gw1/{type}"})
	if err != nil {
		t.Fatal(err)
	}
	remaining := func(rec []byte) int { n, _, _ := readVBI(rec, 1); return n }
	ev := *encodeEvents()[0]
	for _, want := range []int{16_383, 16_384, 2_097_151, 2_097_152} {
		for n := 0; ; {
			ev.Data = []byte(`{"x":"` + strings.Repeat("y", n) + `"}`)
			rec, err := u.encode(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := remaining(rec); got != want {
				n += want - got
				continue
			}
			if pahoRec := pahoEncode(t, "flowgate/gw1/"+ev.Type, &ev); !bytes.Equal(rec, pahoRec) {
				t.Fatalf("remaining length %d: encode differs from paho", want)
			}
			break
		}
	}
	for _, n := range []int{89, 90, 16_345, 16_346, 65_535} { // property lengths of one, two, two, three and three bytes
		ev := *encodeEvents()[2]
		ev.ID = strings.Repeat("i", n)
		rec, err := u.encode(&ev)
		if err != nil {
			t.Fatalf("id of %d bytes: %v", n, err)
		}
		if !bytes.Equal(rec, pahoEncode(t, "flowgate/gw1/"+ev.Type, &ev)) {
			t.Fatalf("id of %d bytes: encode differs from paho", n)
		}
	}
	for _, id := range []string{"i", strings.Repeat("i", 89), strings.Repeat("i", 90)} {
		props := 38 + len(id) // what the content type and the id take
		if vbiLen(props) != 1+len(id)/90 {
			t.Fatalf("an id of %d bytes: properties of %d bytes take %d bytes of length", len(id), props, vbiLen(props))
		}
		largest := maxRemaining - (2 + 1 + 2 + vbiLen(props) + props)
		if _, rest, err := publishLengths("t", id, largest); err != nil || rest != maxRemaining {
			t.Errorf("id of %d bytes, payload of %d: %d, %v; want MQTT's largest packet", len(id), largest, rest, err)
		}
		if _, _, err := publishLengths("t", id, largest+1); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("id of %d bytes, payload of %d: %v, want ErrInvalidEvent", len(id), largest+1, err)
		}
	}
}

// BenchmarkEncode encodes an event of 100 bytes of data (a 444-byte
// record) into its record.
func BenchmarkEncode(b *testing.B) {
	u, err := New(Options{URL: "mqtt://127.0.0.1:1", Topic: "flowgate/gw1/{type}"})
	if err != nil {
		b.Fatal(err)
	}
	ev := encodeEvents()[4]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := u.encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzEncode: whatever an event holds, a record encode makes is the one
// paho's encoder makes, and checkPublish takes it.
func FuzzEncode(f *testing.F) {
	for _, ev := range encodeEvents()[:6] {
		f.Add(ev.ID, ev.Type, ev.Subject, []byte(ev.Data))
	}
	f.Add("id\x00", "a/b", "+", []byte("\xff"))
	u, err := New(Options{URL: "mqtt://127.0.0.1:1", Topic: "flowgate/{subject}/{type}"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, typ, subject string, data []byte) {
		ev := &event.Event{ID: id, Source: "/s", Type: typ, Subject: subject, Time: time.Unix(0, 1).UTC(), Data: data}
		got, err := u.encode(ev)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("encode refused the event with %v, not ErrInvalidEvent", err)
			}
			return // the event's fields are no MQTT strings
		}
		topic, _ := u.topic.expand(ev)
		if want := pahoEncode(t, topic, ev); !bytes.Equal(got, want) {
			t.Fatalf("encode wrote %x, paho writes %x", got, want)
		}
		if _, ok := checkPublish(got); !ok {
			t.Fatalf("checkPublish refuses %x", got)
		}
	})
}
