// Package event defines the canonical event that flows through Flowgate: a
// CloudEvents 1.0 envelope around one device's reading or one notable event.
//
// Every stage of the gateway (devices/, rules/, uplink/) exchanges *Event
// values. The envelope is small on purpose: the attributes the CloudEvents
// specification requires, the optional ones Flowgate always fills, and the
// payload kept as raw JSON so that forwarding an event never re-encodes its
// data.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents specification version Flowgate emits.
const SpecVersion = "1.0"

// ContentType is the MQTT v5 content type of a CloudEvent in structured mode.
const ContentType = "application/cloudevents+json"

// Event is one CloudEvent. ID is assigned once, when the event enters the
// gateway, and is never changed afterwards: a consumer can deduplicate on
// (Source, ID) across every retry.
type Event struct {
	ID              string          // unique per Source; stable across retries
	Source          string          // URI-reference naming the producer, e.g. /gateways/gw1/devices/truck-7
	Type            string          // what happened, e.g. env.reading
	Subject         string          // the device (or other key) the event is about
	Time            time.Time       // when it happened (today the gateway's receive time)
	DataSchema      string          // URI of the schema Data adheres to (the catalog's); "" if none
	DataContentType string          // media type of Data, normally application/json
	Data            json.RawMessage // the payload, already valid JSON

	// Topic is the MQTT topic the event arrived on. It is gateway-internal
	// routing information and is not part of the CloudEvent on the wire.
	Topic string
}

// NewID returns a new event id: a UUIDv7, so ids sort by creation time.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// AppendJSON appends the event in CloudEvents structured JSON form to buf.
func (e *Event) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"specversion":"`+SpecVersion+`","id":`...)
	buf = appendString(buf, e.ID)
	buf = append(buf, `,"source":`...)
	buf = appendString(buf, e.Source)
	buf = append(buf, `,"type":`...)
	buf = appendString(buf, e.Type)
	if e.Subject != "" {
		buf = append(buf, `,"subject":`...)
		buf = appendString(buf, e.Subject)
	}
	if !e.Time.IsZero() {
		buf = append(buf, `,"time":"`...)
		buf = e.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, '"')
	}
	if e.DataSchema != "" {
		buf = append(buf, `,"dataschema":`...)
		buf = appendString(buf, e.DataSchema)
	}
	if len(e.Data) > 0 {
		ct := e.DataContentType
		if ct == "" {
			ct = "application/json"
		}
		buf = append(buf, `,"datacontenttype":`...)
		buf = appendString(buf, ct)
		buf = append(buf, `,"data":`...)
		buf = append(buf, e.Data...)
	}
	return append(buf, '}')
}

// MarshalJSON encodes the event in CloudEvents structured JSON form.
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 192+len(e.Data))), nil
}

// wire is the decoding shape of a structured CloudEvent.
type wire struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            *time.Time      `json:"time"`
	DataSchema      string          `json:"dataschema"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// ErrInvalid reports a CloudEvent that is missing a required attribute.
var ErrInvalid = errors.New("event: invalid CloudEvent")

// UnmarshalJSON decodes a CloudEvent in structured JSON form and checks the
// attributes the specification requires.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	switch {
	case w.SpecVersion != SpecVersion:
		return fmt.Errorf("%w: specversion %q, want %q", ErrInvalid, w.SpecVersion, SpecVersion)
	case w.ID == "":
		return fmt.Errorf("%w: no id", ErrInvalid)
	case w.Source == "":
		return fmt.Errorf("%w: no source", ErrInvalid)
	case w.Type == "":
		return fmt.Errorf("%w: no type", ErrInvalid)
	}
	*e = Event{ID: w.ID, Source: w.Source, Type: w.Type, Subject: w.Subject,
		DataSchema: w.DataSchema, DataContentType: w.DataContentType, Data: w.Data}
	if w.Time != nil {
		e.Time = *w.Time
	}
	return nil
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, "\\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
