package uplink

import (
	"bytes"
	"unicode/utf8"
)

// checkPublish checks that rec is a QoS 1 PUBLISH a broker will take, as
// encode makes them, and returns where its packet id sits. The sender
// writes stored records as they are, so a record damaged on disk in a way
// the store's checksums missed must be caught here: a broker that reads a
// malformed packet drops the connection, and the record would be first in
// line again after every reconnect, holding up everything behind it. A
// record that fails is quarantined instead.
//
// It reads the fixed header (the type and flags encode sets, then the
// remaining length, which must match the record and be minimally encoded),
// the topic (a string as mqttString allows, without wildcards), the packet
// id, and the properties encode writes (content type, user properties) or a
// payload format indicator; nothing is allocated. It is stricter than MQTT
// where brokers are: mosquitto drops the connection on a control character
// in a string, or on an overlong length.
func checkPublish(rec []byte) (at int, ok bool) {
	if len(rec) < 2 || rec[0] != 0x32 { // PUBLISH, QoS 1, neither DUP nor RETAIN, as encode makes it
		return 0, false
	}
	n, i, ok := readVBI(rec, 1)
	if !ok || n != len(rec)-i {
		return 0, false
	}
	topic, i, ok := readString(rec, i)
	if !ok || len(topic) == 0 || bytes.ContainsAny(topic, "+#") {
		return 0, false
	}
	at = i
	if at+2 > len(rec) {
		return 0, false
	}
	n, i, ok = readVBI(rec, at+2)
	if !ok || n > len(rec)-i {
		return 0, false
	}
	utf8Payload, ok := checkProperties(rec[i : i+n])
	if !ok || (utf8Payload && !utf8.Valid(rec[i+n:])) {
		return 0, false
	}
	return at, true
}

// The PUBLISH properties a record may carry: those encode writes, and the
// payload format indicator.
const (
	propPayloadFormat = 0x01
	propContentType   = 0x03
	propUser          = 0x26
)

// checkProperties walks a PUBLISH's properties; utf8Payload reports a
// payload format indicator of 1, which obliges the payload to be UTF-8.
func checkProperties(p []byte) (utf8Payload, ok bool) {
	var seen [2]bool // the payload format indicator and the content type, each at most once
	for i := 0; i < len(p); {
		id := p[i]
		i++
		switch id {
		case propPayloadFormat:
			if seen[0] || i >= len(p) || p[i] > 1 {
				return false, false
			}
			seen[0], utf8Payload = true, p[i] == 1
			i++
		case propContentType:
			if seen[1] {
				return false, false
			}
			seen[1] = true
			if _, i, ok = readString(p, i); !ok {
				return false, false
			}
		case propUser:
			if _, i, ok = readString(p, i); !ok {
				return false, false
			}
			if _, i, ok = readString(p, i); !ok {
				return false, false
			}
		default:
			return false, false
		}
	}
	return utf8Payload, true
}

// readVBI reads a variable byte integer at b[i:] and returns it and the
// offset after it.
func readVBI(b []byte, i int) (n, next int, ok bool) {
	for shift := 0; shift < 28; shift += 7 {
		if i >= len(b) {
			return 0, 0, false
		}
		c := b[i]
		i++
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			if c == 0 && shift > 0 {
				return 0, 0, false // overlong: a shorter encoding exists
			}
			return n, i, true
		}
	}
	return 0, 0, false
}

// readString reads a UTF-8 string (a 2-byte length, then the bytes) at
// b[i:], which must be one mqttString allows.
func readString(b []byte, i int) (s []byte, next int, ok bool) {
	if i+2 > len(b) {
		return nil, 0, false
	}
	n := int(b[i])<<8 | int(b[i+1])
	i += 2
	if i+n > len(b) {
		return nil, 0, false
	}
	s = b[i : i+n]
	if !mqttString(s) {
		return nil, 0, false
	}
	return s, i + n, true
}

// mqttString reports whether s may be an MQTT UTF-8 string as brokers take
// them (MQTT v5 1.5.4): valid UTF-8 without the null character, control
// characters (U+0001–U+001F, U+007F–U+009F) or non-characters, which a
// receiver may treat as malformed, and mosquitto does.
func mqttString[T string | []byte](s T) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		// A rune is at most 4 bytes; so short a conversion needs no allocation.
		r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if n <= 1 || r <= 0x9f || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return false
		}
		i += n
	}
	return true
}
