package load

import (
	"bytes"
	"strconv"
)

// A stamp is what each generated payload carries so that a subscriber can
// tell which publisher sent it, its sequence number and when it was meant
// to leave, whatever the broker wraps around it. Payloads are JSON objects
// (Flowgate's normalizer accepts them as they are, and a CloudEvent embeds
// them in its data):
//
//	{"p":3,"s":1207,"t":1764000000123456,"v":24.7,"x":"xxxx"}
//
// p is the publisher's index, s its sequence number from 0, t the send
// time in microseconds since the Unix epoch, v a reading for rules
// (20.0 to 29.9, moving with s) and x padding up to the payload size.
type stamp struct {
	pub  int
	seq  int
	usec int64
}

// minPayload is the size of the smallest payload, without padding, for
// three-digit publishers and seven-digit sequence numbers.
const minPayload = 58

// appendPayload writes a stamped payload of at least size bytes.
func appendPayload(b []byte, s stamp, size int) []byte {
	start := len(b)
	b = append(b, `{"p":`...)
	b = strconv.AppendInt(b, int64(s.pub), 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, int64(s.seq), 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, s.usec, 10)
	v := 200 + s.seq%100
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, int64(v/10), 10)
	b = append(b, '.', byte('0'+v%10))
	b = append(b, `,"x":"`...)
	for pad := size - (len(b) - start) - 2; pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

var (
	keyPub  = []byte(`"p":`)
	keySeq  = []byte(`"s":`)
	keyTime = []byte(`"t":`)
)

// parseStamp finds the stamp in a received message: the generator's
// payload, or any wrapping of it (a CloudEvent whose data is the payload).
// It reads the first "p", "s" and "t" keys followed by a non-negative
// integer, so it never panics on other input; ok is false when any is
// missing.
func parseStamp(msg []byte) (s stamp, ok bool) {
	pub, ok1 := intAfter(msg, keyPub)
	seq, ok2 := intAfter(msg, keySeq)
	usec, ok3 := intAfter(msg, keyTime)
	if !ok1 || !ok2 || !ok3 || pub > 1<<30 || seq > 1<<40 {
		return stamp{}, false
	}
	return stamp{pub: int(pub), seq: int(seq), usec: usec}, true
}

// intAfter parses the decimal integer right after the first key in msg.
func intAfter(msg, key []byte) (int64, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	var n int64
	digits := 0
	for _, c := range msg[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		if digits == 18 {
			return 0, false // would overflow
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0
}
