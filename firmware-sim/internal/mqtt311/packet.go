// Package mqtt311 is the part of MQTT 3.1.1 that Flowgate's simulators
// speak: the packets a device or a load generator sends and reads
// (CONNECT with credentials and a last will, PUBLISH at QoS 0 and 1,
// PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT), encoded into caller-owned
// buffers, and Client, one device's connection that reconnects by itself.
// It is small on purpose: at 10,000 devices in one process, a general
// client's buffers, queues and goroutines per connection add up to
// gigabytes.
package mqtt311

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The MQTT 3.1.1 control packet types these clients speak.
const (
	TypeConnect    = 1
	TypeConnack    = 2
	TypePublish    = 3
	TypePuback     = 4
	TypeSubscribe  = 8
	TypeSuback     = 9
	TypePingreq    = 12
	TypePingresp   = 13
	TypeDisconnect = 14
)

// MaxPacket bounds the packets a Reader reads: a broker that sends a
// larger one is broken or hostile, and the read fails instead of allocating.
const MaxPacket = 1 << 20

// Errors of a Reader.
var (
	ErrMalformed = errors.New("mqtt311: malformed packet")
	ErrTooLarge  = errors.New("mqtt311: packet larger than 1 MiB")
)

// Packet is one control packet read from a broker: its first byte and the
// body after the remaining length. Body aliases the reader's buffer and is
// valid until the next read.
type Packet struct {
	Header byte
	Body   []byte
}

// Kind is the packet type.
func (p Packet) Kind() byte { return p.Header >> 4 }

// Reader reads control packets from a connection, reusing one buffer.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

func NewReader(r io.Reader) *Reader { return NewReaderSize(r, 64<<10) }

// NewReaderSize is a Reader that buffers size bytes of the connection: a
// device that only reads PUBACKs needs few, a subscriber many.
func NewReaderSize(r io.Reader, size int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size), buf: make([]byte, 0, min(size, 4096))}
}

// Next reads one packet.
func (r *Reader) Next() (Packet, error) {
	h, err := r.r.ReadByte()
	if err != nil {
		return Packet{}, err
	}
	n, err := ReadLength(r.r)
	if err != nil {
		return Packet{}, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return Packet{}, err
	}
	return Packet{Header: h, Body: r.buf}, nil
}

// Buffered is how many bytes are read from the connection but not yet
// returned as packets: 0 means the next read would block.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadLength decodes MQTT's variable-length remaining length (1 to 4 bytes).
func ReadLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			if n > MaxPacket {
				return 0, ErrTooLarge
			}
			return n, nil
		}
		shift += 7
	}
	return 0, ErrMalformed
}

// AppendLength encodes n as MQTT's remaining length.
func AppendLength(b []byte, n int) []byte {
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// AppendString encodes s with its 16-bit length.
func AppendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// Connect is what a CONNECT carries besides the clean session flag,
// which is always set.
type Connect struct {
	ClientID           string
	Username, Password string // empty: not sent
	KeepAlive          uint16 // seconds
	Will               *Will  // nil: none
}

// Will is a last will: what the broker publishes when the connection is
// lost without a DISCONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// AppendConnect encodes a CONNECT with a clean session.
func AppendConnect(b []byte, c Connect) []byte {
	var flags byte = 0x02 // clean session
	n := 10 + 2 + len(c.ClientID)
	if w := c.Will; w != nil {
		flags |= 0x04 | (w.QoS&3)<<3
		if w.Retain {
			flags |= 0x20
		}
		n += 2 + len(w.Topic) + 2 + len(w.Payload)
	}
	if c.Username != "" {
		flags |= 0x80
		n += 2 + len(c.Username)
	}
	if c.Password != "" {
		flags |= 0x40
		n += 2 + len(c.Password)
	}
	b = append(b, TypeConnect<<4)
	b = AppendLength(b, n)
	b = AppendString(b, "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, c.KeepAlive)
	b = AppendString(b, c.ClientID)
	if w := c.Will; w != nil {
		b = AppendString(b, w.Topic)
		b = binary.BigEndian.AppendUint16(b, uint16(len(w.Payload)))
		b = append(b, w.Payload...)
	}
	if c.Username != "" {
		b = AppendString(b, c.Username)
	}
	if c.Password != "" {
		b = AppendString(b, c.Password)
	}
	return b
}

// AppendPublish encodes a PUBLISH; id is used at QoS 1 only.
func AppendPublish(b []byte, topic string, qos byte, retain bool, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	h := byte(TypePublish<<4) | qos<<1
	if retain {
		h |= 1
	}
	b = append(b, h)
	b = AppendLength(b, n)
	b = AppendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// AppendPuback encodes the PUBACK of publish id.
func AppendPuback(b []byte, id uint16) []byte {
	return append(b, TypePuback<<4, 2, byte(id>>8), byte(id))
}

// AppendSubscribe encodes a SUBSCRIBE to one filter.
func AppendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, TypeSubscribe<<4|0x02)
	b = AppendLength(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = AppendString(b, filter)
	return append(b, qos)
}

// CheckConnack returns nil for a CONNACK that accepts the connection.
func CheckConnack(p Packet) error {
	if p.Kind() != TypeConnack || len(p.Body) != 2 {
		return fmt.Errorf("mqtt311: expected CONNACK, got packet type %d", p.Kind())
	}
	if p.Body[1] != 0 {
		return fmt.Errorf("mqtt311: connection refused, CONNACK return code %d", p.Body[1])
	}
	return nil
}

// PacketID is the id of a PUBACK or SUBACK.
func PacketID(p Packet) (uint16, error) {
	if len(p.Body) < 2 {
		return 0, ErrMalformed
	}
	return binary.BigEndian.Uint16(p.Body), nil
}

// PublishBody is the parts of a received PUBLISH.
type PublishBody struct {
	Topic   []byte
	QoS     byte
	ID      uint16
	Payload []byte
}

// ParsePublish splits a PUBLISH body; its slices alias the body.
func ParsePublish(p Packet) (PublishBody, error) {
	var pb PublishBody
	pb.QoS = (p.Header >> 1) & 3
	if pb.QoS == 3 {
		return pb, ErrMalformed
	}
	b := p.Body
	if len(b) < 2 {
		return pb, ErrMalformed
	}
	tl := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < tl {
		return pb, ErrMalformed
	}
	pb.Topic, b = b[:tl], b[tl:]
	if pb.QoS > 0 {
		if len(b) < 2 {
			return pb, ErrMalformed
		}
		pb.ID, b = binary.BigEndian.Uint16(b), b[2:]
	}
	pb.Payload = b
	return pb, nil
}
