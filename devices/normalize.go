package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/flowgate/flowgate/event"
)

// Reason names why a payload was dead-lettered. Reasons are label values of
// the dead-letter counter, so the set is small and fixed.
type Reason string

// The reasons a device payload is refused.
const (
	ReasonUnknownTopic Reason = "unknown_topic"
	ReasonTooLarge     Reason = "too_large"
	ReasonMalformed    Reason = "malformed_json"
	// ReasonUndeliverable is an event the uplink refuses outright (not for
	// lack of room): resending it would never help.
	ReasonUndeliverable Reason = "undeliverable"
	// ReasonUnknownKind is a device whose kind has no profile.
	ReasonUnknownKind Reason = "unknown_kind"
	// ReasonBadPayload is a payload its profile cannot decode: not a CSV
	// line or a number, a field missing or of the wrong type, a timestamp
	// that does not parse.
	ReasonBadPayload Reason = "bad_payload"
	// ReasonImpossible is a value outside its field's range (a latitude of
	// 123), in the profile or in the catalog.
	ReasonImpossible Reason = "impossible_value"
	// ReasonSchema is an event that does not match its catalog entry.
	ReasonSchema Reason = "schema_violation"
)

// Reasons lists every Reason, for pre-registering metrics.
var Reasons = []Reason{ReasonUnknownTopic, ReasonTooLarge, ReasonMalformed, ReasonUndeliverable,
	ReasonUnknownKind, ReasonBadPayload, ReasonImpossible, ReasonSchema}

// RejectError is a payload that did not become an event, and why.
type RejectError struct {
	Reason Reason
	Detail string
}

func (e *RejectError) Error() string { return "devices: " + string(e.Reason) + ": " + e.Detail }

// AsReject returns the RejectError in err's chain, if any.
func AsReject(err error) (*RejectError, bool) {
	var r *RejectError
	ok := errors.As(err, &r)
	return r, ok
}

// IngestTopic maps device publishes on topics matching Filter to events of
// Type.
type IngestTopic struct {
	Filter string
	Type   string
}

// Normalizer turns a device's publish into a canonical event.
type Normalizer struct {
	Source     string // CloudEvents source prefix, e.g. /gateways/gw1; "/devices/{id}" is appended
	MaxPayload int    // bytes; larger payloads are refused
	Topics     []IngestTopic

	// Profiles decode the payloads of devices that have a Kind. A device
	// without one publishes JSON objects, kept as they are.
	Profiles *Profiles
	// Catalog, if set, validates every event before it is accepted.
	Catalog *Catalog
}

// Normalize makes the canonical event for a payload that device d published
// on topic at time now. The event's id is assigned here, once. A device
// without a kind has its payload kept by reference: the caller must not
// change it while the event is in use.
func (n *Normalizer) Normalize(d *Device, topic string, payload []byte, now time.Time) (*event.Event, error) {
	typ, ok := n.typeOf(topic)
	if !ok {
		return nil, &RejectError{ReasonUnknownTopic, fmt.Sprintf("no ingest topic matches %q", topic)}
	}
	if n.MaxPayload > 0 && len(payload) > n.MaxPayload {
		return nil, &RejectError{ReasonTooLarge, fmt.Sprintf("payload is %d bytes, limit %d", len(payload), n.MaxPayload)}
	}
	ev := &event.Event{
		Source:          n.Source + "/devices/" + d.ID,
		Type:            typ,
		Subject:         d.ID,
		Time:            now.UTC(),
		DataContentType: "application/json",
		Data:            payload,
		Topic:           topic,
	}
	if err := n.decode(d, ev, now); err != nil {
		return nil, err
	}
	if err := n.Catalog.validate(ev, true); err != nil { // decode checked or wrote the JSON
		return nil, err
	}
	ev.DataSchema = n.Catalog.DataSchema(typ)
	ev.ID = event.NewID()
	return ev, nil
}

// decode replaces ev's data and time with what d's profile makes of its
// payload; a device without a kind must have sent a JSON object.
func (n *Normalizer) decode(d *Device, ev *event.Event, now time.Time) error {
	if d.Kind == "" {
		if err := checkObject(ev.Data); err != nil {
			return &RejectError{ReasonMalformed, err.Error()}
		}
		return nil
	}
	p, ok := n.Profiles.Lookup(d.Kind)
	if !ok {
		return &RejectError{ReasonUnknownKind, fmt.Sprintf("device %s is of kind %q, which has no profile", d.ID, d.Kind)}
	}
	data, t, err := p.Canonical(ev.Data, d.Metadata, now)
	if err != nil {
		return err
	}
	ev.Data, ev.Time = data, t
	return nil
}

func (n *Normalizer) typeOf(topic string) (string, bool) {
	for i := range n.Topics {
		if MatchTopic(n.Topics[i].Filter, topic) {
			return n.Topics[i].Type, true
		}
	}
	return "", false
}

// checkObject accepts exactly one JSON object.
func checkObject(payload []byte) error {
	p := bytes.TrimLeft(payload, " \t\r\n")
	if len(p) == 0 {
		return errors.New("payload is empty")
	}
	if p[0] != '{' {
		return errors.New("payload is not a JSON object")
	}
	if !utf8.Valid(p) {
		return errors.New("payload is not valid UTF-8")
	}
	if !json.Valid(p) {
		// Decode to say where it broke; this path is the rare one.
		var v any
		err := json.Unmarshal(p, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return err
	}
	return nil
}
