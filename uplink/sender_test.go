package uplink

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/flowgate/flowgate/event"
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
	w.byPID[65535] = 1
	w.byPID[1] = 2
	var got []uint16
	for range 3 {
		got = append(got, w.freePID())
	}
	if fmt.Sprint(got) != "[65534 2 3]" {
		t.Errorf("ids %v, want [65534 2 3]", got)
	}
}

// The keep alive pings a link that sent nothing for a period, takes any
// packet back as the answer, and gives up 1.5 periods after an unanswered
// PINGREQ.
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
	step(9*time.Second, false, nil)
	k.lastSent = t0.Add(9 * time.Second) // a publish went out
	step(18*time.Second, false, nil)
	step(19*time.Second, true, nil) // nothing sent for a period
	step(25*time.Second, false, nil)
	k.lastRecv = t0.Add(26 * time.Second) // a PUBACK answers as well as a PINGRESP
	step(28*time.Second, false, nil)
	step(29*time.Second, true, nil)
	step(43*time.Second, false, nil)
	step(44*time.Second, false, errNoReply) // 15 s after the PINGREQ, nothing came back
}
