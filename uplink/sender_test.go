package uplink

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// checkPublish accepts records of every size encode makes
// (remaining lengths of 1, 2 and 3 bytes): the id written there is the one
// an MQTT reader finds, and the rest of the packet is unchanged.
func TestCheckPublish(t *testing.T) {
	u, err := New(Options{URL: "mqtt://127.0.0.1:1883", Topic: "gw/{type}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 40, 200, 20000} {
		for _, typ := range []string{"t", strings.Repeat("long.type.", 30)} {
			ev := &event.Event{ID: "e-1", Source: "s", Type: typ, Data: []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", size)))}
			rec, err := u.encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			at, ok := checkPublish(rec)
			if !ok {
				t.Fatalf("size %d, type of %d bytes: no packet id found", size, len(typ))
			}
			patched := bytes.Clone(rec)
			patched[at], patched[at+1] = 0xbe, 0xef
			cp, err := packets.ReadPacket(bytes.NewReader(patched))
			if err != nil {
				t.Fatal(err)
			}
			pub := cp.Content.(*packets.Publish)
			if pub.PacketID != 0xbeef || pub.Topic != "gw/"+typ || pub.QoS != 1 || !bytes.Equal(pub.Payload, ev.AppendJSON(nil)) {
				t.Errorf("size %d: read back id %#x topic %q qos %d", size, pub.PacketID, pub.Topic, pub.QoS)
			}
		}
	}
}

func TestCheckPublishRefuses(t *testing.T) {
	for name, rec := range map[string][]byte{
		"empty":              {},
		"qos 0":              {0x30, 0x04, 0x00, 0x01, 't', 'x'},
		"not a publish":      {0x40, 0x02, 0x00, 0x01},
		"length too long":    {0x32, 0x09, 0x00, 0x01, 't', 0x00, 0x01},
		"length too short":   {0x32, 0x02, 0x00, 0x01, 't', 0x00, 0x01},
		"topic past the end": {0x32, 0x05, 0x00, 0x09, 't', 0x00, 0x01},
		"no packet id":       {0x32, 0x03, 0x00, 0x01, 't'},
		"endless length":     {0x32, 0xff, 0xff, 0xff, 0xff, 0x01},
		"wildcard topic":     {0x32, 0x06, 0x00, 0x01, '#', 0x00, 0x01, 0x00},
		"bad utf-8 topic":    {0x32, 0x06, 0x00, 0x01, 0xff, 0x00, 0x01, 0x00},
		"no properties":      {0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x01},
		"unknown property":   {0x32, 0x08, 0x00, 0x01, 't', 0x00, 0x01, 0x02, 0x7f, 0x00},
		"property past end":  {0x32, 0x08, 0x00, 0x01, 't', 0x00, 0x01, 0x02, 0x23, 0x00},
		"content type twice": {0x32, 0x0c, 0x00, 0x01, 't', 0x00, 0x01, 0x06, 0x03, 0x00, 0x00, 0x03, 0x00, 0x00},
		"bad utf-8 payload":  {0x32, 0x09, 0x00, 0x01, 't', 0x00, 0x01, 0x02, 0x01, 0x01, 0xff},
		"retain":             {0x33, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 0x00},
		"control in topic":   {0x32, 0x06, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00},
		"U+0085 in topic":    {0x32, 0x07, 0x00, 0x02, 0xc2, 0x85, 0x00, 0x01, 0x00},
		"U+FFFF in topic":    {0x32, 0x08, 0x00, 0x03, 0xef, 0xbf, 0xbf, 0x00, 0x01, 0x00},
		"control in a user property": {0x32, 0x0e, 0x00, 0x01, 't', 0x00, 0x01, 0x08,
			0x26, 0x00, 0x02, 'i', 'd', 0x00, 0x01, 0x1f},
		"topic alias":         {0x32, 0x09, 0x00, 0x01, 't', 0x00, 0x01, 0x03, 0x23, 0x00, 0x01},
		"overlong length":     {0x32, 0x86, 0x00, 0x00, 0x01, 't', 0x00, 0x01, 0x00},
		"overlong properties": {0x32, 0x07, 0x00, 0x01, 't', 0x00, 0x01, 0x80, 0x00},
	} {
		if at, ok := checkPublish(rec); ok {
			t.Errorf("%s: found a packet id at %d in % x", name, at, rec)
		}
	}
}

// Whatever a damaged store holds, checkPublish neither panics nor points
// outside the record, and what it accepts paho's reader reads, with the
// packet id where checkPublish found it.
func FuzzCheckPublish(f *testing.F) {
	f.Add([]byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00})
	f.Add([]byte{0x32, 0x0e, 0x00, 0x01, 't', 0x00, 0x00, 0x08, 0x03, 0x00, 0x01, 'j', 0x01, 0x01, 0x23, 0x00, 'x'})
	f.Add([]byte{0x32, 0x80, 0x01})
	f.Add([]byte{0x3a, 0x05, 0x00, 0x01, 't', 0x00, 0x00})
	f.Fuzz(func(t *testing.T, rec []byte) {
		at, ok := checkPublish(rec)
		if !ok {
			return
		}
		if at < 4 || at+2 > len(rec) {
			t.Fatalf("offset %d in %d bytes", at, len(rec))
		}
		patched := bytes.Clone(rec)
		patched[at], patched[at+1] = 0x12, 0x34
		cp, err := packets.ReadPacket(bytes.NewReader(patched))
		if err != nil {
			t.Fatalf("accepted % x, which paho cannot read: %v", rec, err)
		}
		if pub, isPub := cp.Content.(*packets.Publish); !isPub || pub.PacketID != 0x1234 {
			t.Fatalf("paho reads %+v from % x", cp.Content, patched)
		}
	})
}

// freePID gives out ids in turn, skipping those in flight and 0.
func TestFreePID(t *testing.T) {
	w := newWindow(pacer{})
	w.pid = 65533
	w.byPID[65535] = flight{seq: 1}
	w.byPID[1] = flight{seq: 2}
	var got []uint16
	for range 3 {
		got = append(got, w.freePID())
	}
	if fmt.Sprint(got) != "[65534 2 3]" {
		t.Errorf("ids %v, want [65534 2 3]", got)
	}
}

// The keep alive pings a link that sent nothing for three quarters of a
// period (so that, checked every quarter, it never waits a whole period),
// takes any packet back as the answer, and gives up 1.5 periods after an
// unanswered PINGREQ.
func TestKeepAliveCheck(t *testing.T) {
	const period = 10 * time.Second
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	k := &keepAlive{lastSent: t0, lastRecv: t0}
	step := func(at time.Duration, wantPing bool, wantErr error) {
		t.Helper()
		ping, err := k.check(t0.Add(at), period)
		if ping != wantPing || err != wantErr {
			t.Fatalf("at %v: ping %v, err %v; want %v, %v", at, ping, err, wantPing, wantErr)
		}
	}
	step(7*time.Second, false, nil)
	k.lastSent = t0.Add(7 * time.Second) // a publish went out
	step(14*time.Second, false, nil)
	step(15*time.Second, true, nil) // nothing sent for 8 s
	step(20*time.Second, false, nil)
	k.lastRecv = t0.Add(21 * time.Second) // a PUBACK answers as well as a PINGRESP
	step(22*time.Second, false, nil)
	step(23*time.Second, true, nil)
	step(37*time.Second, false, nil)
	step(38*time.Second, false, errNoReply) // 15 s after the PINGREQ, nothing came back
}

// What checkPublish accepts, mosquitto takes: each record it lets through
// is published on a raw connection and must be answered with a PUBACK, not
// a DISCONNECT. The cases are those a damaged record or an odd event could
// produce; encode's own records are among them.
func TestCheckPublishAgreesWithMosquitto(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	u, err := New(Options{URL: m.URL(), Topic: "gw/{subject}"})
	if err != nil {
		t.Fatal(err)
	}
	good, err := u.encode(&event.Event{ID: "e-1", Source: "s", Type: "t", Subject: "truck-7", Data: []byte(`{"v":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	publish := func(topic string, props ...byte) []byte {
		body := append(append(str(topic), 0, 0, byte(len(props))), props...)
		body = append(body, "{}"...)
		return append([]byte{0x32, byte(len(body))}, body...)
	}
	id := append(append([]byte{0x26}, str("id")...), str("x")...)
	cases := map[string][]byte{
		"encoded":           good,
		"plain":             publish("gw/ok", id...),
		"control in topic":  publish("gw/a\x01b", id...),
		"U+0085 in topic":   publish("gw/a\u0085b", id...),
		"U+FFFF in topic":   publish("gw/a\uffffb", id...),
		"control in the id": publish("gw/ok", append(append([]byte{0x26}, str("id")...), str("x\x1f")...)...),
		"topic alias 0":     publish("gw/ok", append([]byte{0x23, 0, 0}, id...)...),
		"topic alias 500":   publish("gw/ok", append([]byte{0x23, 0x01, 0xf4}, id...)...),
	}
	accepted := 0
	for name, rec := range cases {
		at, ok := checkPublish(rec)
		if !ok {
			continue
		}
		accepted++
		rec = bytes.Clone(rec)
		rec[at], rec[at+1] = 0, 1
		if reply := publishRaw(t, m.Addr(), rec); reply != packets.PUBACK {
			t.Errorf("%s: checkPublish accepts it, mosquitto answers packet type %d", name, reply)
		}
	}
	if accepted != 2 {
		t.Errorf("checkPublish accepted %d of the records, want the 2 good ones", accepted)
	}
}

// publishRaw connects to addr as an MQTT v5 client, writes rec and returns
// the type of the broker's answer (0 if it closed the connection).
func publishRaw(t *testing.T, addr string, rec []byte) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ProtocolName, c.ProtocolVersion, c.CleanStart, c.KeepAlive = "MQTT", 5, true, 30
	if _, err := cp.WriteTo(conn); err != nil {
		t.Fatal(err)
	}
	if ack, err := packets.ReadPacket(conn); err != nil || ack.Type != packets.CONNACK {
		t.Fatalf("CONNACK: %v, %v", ack, err)
	}
	if _, err := conn.Write(rec); err != nil {
		return 0
	}
	got, err := packets.ReadPacket(conn)
	if err != nil {
		return 0
	}
	return got.Type
}

// A duration falls in the first bucket whose bound it does not exceed;
// the counts reported are cumulative, and one above every bound is only
// in the count and the sum.
func TestLatencyHistogram(t *testing.T) {
	var h latencyHist
	for _, d := range []time.Duration{0, 250 * time.Microsecond, 251 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		h.observe(d)
	}
	l := h.snapshot()
	want := []uint64{2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4}
	if fmt.Sprint(l.Counts) != fmt.Sprint(want) || l.Count != 5 || l.Sum != time.Minute+3*time.Millisecond+501*time.Microsecond {
		t.Errorf("snapshot %+v, want counts %v, 5 in all", l, want)
	}
}

// mqttString runs on every event's topic and id, and on every record
// sent: it must not allocate, for strings or bytes, ASCII or not.
func TestMQTTStringAllocatesNothing(t *testing.T) {
	s := "flowgate/gw-1/events/températures/" + strings.Repeat("é", 40)
	b := []byte(s)
	if n := testing.AllocsPerRun(100, func() {
		if !mqttString(s) || !mqttString(b) || mqttString(s+"\x01") {
			t.Fatal("wrong verdict")
		}
	}); n > 1 { // the concatenation in the last call
		t.Errorf("%v allocations a run", n)
	}
}
