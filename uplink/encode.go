package uplink

import (
	"bytes"
	"fmt"

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
	payload := ev.AppendJSON(make([]byte, 0, 192+len(ev.ID)+len(ev.Source)+len(ev.Data)))
	pkt := packets.Publish{
		QoS:   1,
		Topic: topic,
		Properties: &packets.Properties{
			ContentType: event.ContentType,
			User:        []packets.User{{Key: idProperty, Value: ev.ID}},
		},
		Payload: payload,
	}
	var b bytes.Buffer
	b.Grow(len(payload) + len(topic) + len(ev.ID) + len(event.ContentType) + 32)
	if _, err := pkt.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("uplink: encode event %q: %w", ev.ID, err)
	}
	return b.Bytes(), nil
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
