package uplink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/flowgate/flowgate/event"
)

// idProperty is the MQTT v5 user property that carries the event id.
const idProperty = "id"

// encode turns ev into the record the outbox keeps: a complete MQTT v5
// PUBLISH packet at QoS 1, with packet id 0 until the sender writes one in
// (sender.go). The event is encoded here and only here; every send and
// resend reuses these bytes.
func (u *Uplink) encode(ev *event.Event) ([]byte, error) {
	switch {
	case ev == nil:
		return nil, fmt.Errorf("%w: nil event", ErrInvalidEvent)
	case ev.ID == "":
		return nil, fmt.Errorf("%w: no id (source %q, type %q)", ErrInvalidEvent, ev.Source, ev.Type)
	case len(ev.ID) > maxUint16 || !mqttString(ev.ID):
		// It goes in a user property, which a broker refuses with such characters.
		return nil, fmt.Errorf("%w: id %q has control characters or Unicode non-characters, or is too long", ErrInvalidEvent, ev.ID)
	}
	topic, err := u.topic.expand(ev)
	if err != nil {
		return nil, err
	}
	sc := encodeScratch.Get().(*[]byte)
	defer encodeScratch.Put(sc)
	payload := ev.AppendJSON((*sc)[:0])
	if cap(payload) <= 64<<10 {
		*sc = payload[:0] // kept for the next event; a burst's buffer is not
	}
	rec, err := appendPublish(nil, topic, ev.ID, payload)
	if err != nil {
		return nil, fmt.Errorf("uplink: encode event %q: %w", ev.ID, err)
	}
	return rec, nil
}

// encodeScratch holds the buffers events are encoded into before their
// record is made, one per encoding goroutine at a time.
var encodeScratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxRemaining is the largest remaining length an MQTT packet can have.
const maxRemaining = 268_435_455

// appendPublish appends to b the MQTT v5 PUBLISH packet, QoS 1 with packet
// id 0, of payload on topic, with the CloudEvents content type and id as
// the idProperty user property: byte for byte what paho's Publish.WriteTo
// writes (TestEncodeMatchesPaho), in one allocation. topic and id must be
// strings MQTT takes (at most 65,535 bytes).
func appendPublish(b []byte, topic, id string, payload []byte) ([]byte, error) {
	props, rest, err := publishLengths(topic, id, len(payload))
	if err != nil {
		return nil, err
	}
	b = slices.Grow(b, 1+vbiLen(rest)+rest)
	b = append(b, 0x32) // PUBLISH, QoS 1
	b = appendVBI(b, rest)
	b = appendMQTTString(b, topic)
	b = append(b, 0, 0) // the packet id, written by the sender
	b = appendVBI(b, props)
	b = appendMQTTString(append(b, propContentType), event.ContentType)
	b = appendMQTTString(appendMQTTString(append(b, propUser), idProperty), id)
	return append(b, payload...), nil
}

// publishLengths are the properties' length and the remaining length of
// appendPublish's packet, or ErrInvalidEvent if MQTT cannot carry it.
func publishLengths(topic, id string, payload int) (props, rest int, err error) {
	props = 1 + 2 + len(event.ContentType) + 1 + 2 + len(idProperty) + 2 + len(id)
	rest = 2 + len(topic) + 2 + vbiLen(props) + props + payload
	if rest > maxRemaining {
		return 0, 0, fmt.Errorf("%w: a packet of %d bytes, over MQTT's %d", ErrInvalidEvent, rest, maxRemaining)
	}
	return props, rest, nil
}

// appendVBI appends n as an MQTT variable byte integer: below MQTT's
// limit (maxRemaining), the same bytes as an unsigned varint.
func appendVBI(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }

// vbiLen is the length of n as a variable byte integer.
func vbiLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return len(appendVBI(b[:0], n))
}

// appendMQTTString appends s with its two-byte length.
func appendMQTTString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// recordID returns the event id inside a record, for log messages.
func recordID(rec []byte) string {
	cp, err := packets.ReadPacket(bytes.NewReader(rec))
	if err != nil {
		return ""
	}
	if pub, ok := cp.Content.(*packets.Publish); ok && pub.Properties != nil {
		for _, p := range pub.Properties.User {
			if p.Key == idProperty {
				return p.Value
			}
		}
	}
	return ""
}
