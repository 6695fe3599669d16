package uplink

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/flowgate/flowgate/event"
)

// topicTemplate is Options.Topic compiled once: literal text interleaved
// with the event fields that fill the "{type}" and "{subject}" holes.
type topicTemplate []topicPart

type topicPart struct {
	text  string // literal text; empty for a hole
	field string // "type" or "subject" for a hole; empty for text
}

// parseTopic compiles a topic template, rejecting what could never make a
// valid PUBLISH topic.
func parseTopic(s string) (topicTemplate, error) {
	if s == "" {
		return nil, optionErr("topic", "must not be empty")
	}
	if msg := topicProblem(s); msg != "" {
		return nil, optionErr("topic", "%q: %s", s, msg)
	}
	var t topicTemplate
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if closing := strings.IndexByte(rest, '}'); closing >= 0 && (open < 0 || closing < open) {
			return nil, optionErr("topic", "%q: unmatched '}'", s)
		}
		if open < 0 {
			t = append(t, topicPart{text: rest})
			break
		}
		if open > 0 {
			t = append(t, topicPart{text: rest[:open]})
		}
		field, after, ok := strings.Cut(rest[open+1:], "}")
		if !ok || (field != "type" && field != "subject") {
			return nil, optionErr("topic", "%q: unknown placeholder at %q; use {type} or {subject}", s, rest[open:])
		}
		t = append(t, topicPart{field: field})
		rest = after
	}
	return t, nil
}

// expand returns the topic for ev.
func (t topicTemplate) expand(ev *event.Event) (string, error) {
	var b strings.Builder
	b.Grow(64)
	for _, p := range t {
		switch p.field {
		case "":
			b.WriteString(p.text)
		case "type":
			b.WriteString(ev.Type)
		case "subject":
			b.WriteString(ev.Subject)
		}
	}
	topic := b.String()
	if topic == "" {
		return "", fmt.Errorf("%w: id %q: topic is empty", ErrInvalidEvent, ev.ID)
	}
	if msg := topicProblem(topic); msg != "" {
		return "", fmt.Errorf("%w: id %q: topic %q: %s", ErrInvalidEvent, ev.ID, topic, msg)
	}
	return topic, nil
}

// topicProblem says why s cannot be the topic of a PUBLISH, or returns "".
func topicProblem(s string) string {
	switch {
	case len(s) > maxUint16:
		return fmt.Sprintf("longer than MQTT's %d bytes", maxUint16)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.ContainsAny(s, "+#"):
		return "wildcards (+, #) are not allowed in a published topic"
	case !mqttString(s):
		return "control characters and Unicode non-characters are not allowed (brokers refuse them)"
	case s[0] == '$':
		return "topics starting with $ are reserved for the broker"
	}
	return ""
}
