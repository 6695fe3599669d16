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
// It reads the fixed header (the type and QoS, then the remaining length,
// which must match the record), the topic (valid UTF-8, without
// wildcards), the packet id, and each property a client may send in a
// PUBLISH, by its MQTT v5 type; nothing is allocated.
func checkPublish(rec []byte) (at int, ok bool) {
	if len(rec) < 2 || rec[0]>>4 != 3 || (rec[0]>>1)&3 != 1 {
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

// PUBLISH properties a client may send (MQTT v5, 3.3.2.3).
const (
	propPayloadFormat   = 0x01
	propMessageExpiry   = 0x02
	propContentType     = 0x03
	propResponseTopic   = 0x08
	propCorrelationData = 0x09
	propTopicAlias      = 0x23
	propUser            = 0x26
)

// checkProperties walks a PUBLISH's properties; utf8Payload reports a
// payload format indicator of 1, which obliges the payload to be UTF-8.
func checkProperties(p []byte) (utf8Payload, ok bool) {
	var seen uint64 // properties that may appear at most once
	for i := 0; i < len(p); {
		id := p[i]
		i++
		if id != propUser {
			if id >= 64 || seen&(1<<id) != 0 {
				return false, false
			}
			seen |= 1 << id
		}
		switch id {
		case propPayloadFormat:
			if i >= len(p) || p[i] > 1 {
				return false, false
			}
			utf8Payload = p[i] == 1
			i++
		case propMessageExpiry:
			i += 4
		case propTopicAlias:
			i += 2
		case propContentType, propResponseTopic:
			if _, i, ok = readString(p, i); !ok {
				return false, false
			}
		case propCorrelationData:
			if i+2 > len(p) {
				return false, false
			}
			i += 2 + (int(p[i])<<8 | int(p[i+1]))
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
		if i > len(p) {
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
			return n, i, true
		}
	}
	return 0, 0, false
}

// readString reads a UTF-8 string (a 2-byte length, then the bytes) at
// b[i:]; MQTT forbids invalid UTF-8 and the null character in it.
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
	if !utf8.Valid(s) || bytes.IndexByte(s, 0) >= 0 {
		return nil, 0, false
	}
	return s, i + n, true
}
