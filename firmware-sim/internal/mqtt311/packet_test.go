package mqtt311

import (
	"bytes"
	"testing"
)

// FuzzReadPackets: a byte stream from a broker is read as packets (and
// PUBLISH bodies split) without panicking or reading past the limit.
func FuzzReadPackets(f *testing.F) {
	f.Add(AppendPuback(AppendPublish(nil, "t", 1, false, 1, []byte("x")), 1))
	f.Add([]byte{0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x80})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := NewReader(bytes.NewReader(stream))
		for range 100 {
			p, err := r.Next()
			if err != nil {
				return
			}
			if len(p.Body) > MaxPacket {
				t.Fatalf("body of %d bytes", len(p.Body))
			}
			switch p.Kind() {
			case TypePublish:
				if pb, err := ParsePublish(p); err == nil && len(pb.Topic)+len(pb.Payload) > len(p.Body) {
					t.Fatalf("publish parts larger than its body")
				}
			case TypeConnack:
				_ = CheckConnack(p)
			default:
				_, _ = PacketID(p)
			}
		}
	})
}

func TestPackets(t *testing.T) {
	b := AppendPublish(nil, "a/b", 1, false, 7, []byte("hello"))
	b = AppendPuback(b, 9)
	b = AppendConnect(b, Connect{ClientID: "c", Username: "u", Password: "p", KeepAlive: 60})
	r := NewReader(bytes.NewReader(b))
	p, err := r.Next()
	if err != nil || p.Kind() != TypePublish {
		t.Fatalf("%v %v", p, err)
	}
	pb, err := ParsePublish(p)
	if err != nil || string(pb.Topic) != "a/b" || pb.QoS != 1 || pb.ID != 7 || string(pb.Payload) != "hello" {
		t.Errorf("publish %+v %v", pb, err)
	}
	p, err = r.Next()
	if id, _ := PacketID(p); err != nil || p.Kind() != TypePuback || id != 9 {
		t.Errorf("puback %v %v", p, err)
	}
	if p, err = r.Next(); err != nil || p.Kind() != TypeConnect || len(p.Body) != 10+3+3+3 {
		t.Errorf("connect %v %v", p, err)
	}
	// A length of 5 bytes, and one above the limit, are refused.
	if _, err := NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})).Next(); err != ErrMalformed {
		t.Errorf("5-byte length: %v", err)
	}
	if _, err := NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})).Next(); err != ErrTooLarge {
		t.Errorf("256 MiB: %v", err)
	}
	big := AppendLength(nil, 300000)
	if n, err := ReadLength(bytes.NewReader(big)); err != nil || n != 300000 {
		t.Errorf("length %d %v", n, err)
	}
}
