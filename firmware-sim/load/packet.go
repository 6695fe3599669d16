package load

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The MQTT 3.1.1 control packet types the generator speaks.
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typeSubscribe  = 8
	typeSuback     = 9
	typePingreq    = 12
	typePingresp   = 13
	typeDisconnect = 14
)

// maxPacket bounds the packets the generator reads: a broker that sends a
// larger one is broken or hostile, and the read fails instead of allocating.
const maxPacket = 1 << 20

var (
	errMalformed = errors.New("load: malformed packet")
	errTooLarge  = errors.New("load: packet larger than 1 MiB")
)

// packet is one control packet read from a broker: its first byte and the
// body after the remaining length. body aliases the reader's buffer and is
// valid until the next read.
type packet struct {
	header byte
	body   []byte
}

func (p packet) kind() byte { return p.header >> 4 }

// reader reads control packets from a connection, reusing one buffer.
type reader struct {
	r   *bufio.Reader
	buf []byte
}

func newReader(r io.Reader) *reader {
	return &reader{r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, 0, 4096)}
}

// next reads one packet.
func (r *reader) next() (packet, error) {
	h, err := r.r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, err := readLength(r.r)
	if err != nil {
		return packet{}, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return packet{}, err
	}
	return packet{header: h, body: r.buf}, nil
}

// buffered is how many bytes are read from the connection but not yet
// returned as packets: 0 means the next read would block.
func (r *reader) buffered() int { return r.r.Buffered() }

// readLength decodes MQTT's variable-length remaining length (1 to 4 bytes).
func readLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			if n > maxPacket {
				return 0, errTooLarge
			}
			return n, nil
		}
		shift += 7
	}
	return 0, errMalformed
}

func appendLength(b []byte, n int) []byte {
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

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendConnect encodes a CONNECT with a clean session.
func appendConnect(b []byte, clientID, username, password string, keepAlive uint16) []byte {
	var flags byte = 0x02 // clean session
	n := 10 + 2 + len(clientID)
	if username != "" {
		flags |= 0x80
		n += 2 + len(username)
	}
	if password != "" {
		flags |= 0x40
		n += 2 + len(password)
	}
	b = append(b, typeConnect<<4)
	b = appendLength(b, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	b = appendString(b, clientID)
	if username != "" {
		b = appendString(b, username)
	}
	if password != "" {
		b = appendString(b, password)
	}
	return b
}

// appendPublish encodes a PUBLISH; id is used at QoS 1 only.
func appendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, typePublish<<4|qos<<1)
	b = appendLength(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

func appendPuback(b []byte, id uint16) []byte {
	return append(b, typePuback<<4, 2, byte(id>>8), byte(id))
}

func appendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, typeSubscribe<<4|0x02)
	b = appendLength(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	return append(b, qos)
}

// checkConnack returns nil for a CONNACK that accepts the connection.
func checkConnack(p packet) error {
	if p.kind() != typeConnack || len(p.body) != 2 {
		return fmt.Errorf("load: expected CONNACK, got packet type %d", p.kind())
	}
	if p.body[1] != 0 {
		return fmt.Errorf("load: connection refused, CONNACK return code %d", p.body[1])
	}
	return nil
}

// packetID is the id of a PUBACK or SUBACK.
func packetID(p packet) (uint16, error) {
	if len(p.body) < 2 {
		return 0, errMalformed
	}
	return binary.BigEndian.Uint16(p.body), nil
}

// publishBody is the parts of a received PUBLISH.
type publishBody struct {
	topic   []byte
	qos     byte
	id      uint16
	payload []byte
}

// parsePublish splits a PUBLISH body; its slices alias the body.
func parsePublish(p packet) (publishBody, error) {
	var pb publishBody
	pb.qos = (p.header >> 1) & 3
	if pb.qos == 3 {
		return pb, errMalformed
	}
	b := p.body
	if len(b) < 2 {
		return pb, errMalformed
	}
	tl := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < tl {
		return pb, errMalformed
	}
	pb.topic, b = b[:tl], b[tl:]
	if pb.qos > 0 {
		if len(b) < 2 {
			return pb, errMalformed
		}
		pb.id, b = binary.BigEndian.Uint16(b), b[2:]
	}
	pb.payload = b
	return pb, nil
}
