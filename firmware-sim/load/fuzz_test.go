package load

import (
	"bytes"
	"testing"
)

// FuzzParseStamp: any message a broker delivers, however wrapped or
// damaged, parses without panicking, and a stamp it finds is in range.
func FuzzParseStamp(f *testing.F) {
	f.Add(appendPayload(nil, stamp{1, 2, 3}, 64))
	f.Add([]byte(`{"data":{"p":1,"s":2,"t":3}}`))
	f.Add([]byte(`"p":"s":"t":`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, ok := parseStamp(msg)
		if ok && (s.pub < 0 || s.seq < 0 || s.usec < 0) {
			t.Errorf("%+v from %q", s, msg)
		}
	})
}

// FuzzReadPackets: a byte stream from a broker is read as packets (and
// PUBLISH bodies split) without panicking or reading past the limit.
func FuzzReadPackets(f *testing.F) {
	f.Add(appendPuback(appendPublish(nil, "t", 1, 1, []byte("x")), 1))
	f.Add([]byte{0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x80})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := newReader(bytes.NewReader(stream))
		for range 100 {
			p, err := r.next()
			if err != nil {
				return
			}
			if len(p.body) > maxPacket {
				t.Fatalf("body of %d bytes", len(p.body))
			}
			switch p.kind() {
			case typePublish:
				if pb, err := parsePublish(p); err == nil && len(pb.topic)+len(pb.payload) > len(p.body) {
					t.Fatalf("publish parts larger than its body")
				}
			case typeConnack:
				_ = checkConnack(p)
			default:
				_, _ = packetID(p)
			}
		}
	})
}

// FuzzProcFiles: /proc files are outside input too.
func FuzzProcFiles(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmRSS:\t 12 kB\n"))
	f.Add([]byte("1 (x) S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseVmRSS(b); err == nil && n < 0 {
			t.Errorf("negative RSS %d", n)
		}
		if n, err := parseStatTicks(b); err == nil && n < 0 {
			t.Errorf("negative ticks %d", n)
		}
	})
}
