package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestPublishesInFlight: a device sends 200 QoS 1 publishes without
// waiting for any PUBACK (an MQTT 3.1.1 client on a raw connection). The
// gateway takes them in while earlier ones are still being written to the
// on-disk outbox, and acknowledges each once it is on disk, in the order
// they came; every event reaches the cloud, and every publish is relayed
// to local subscribers of the device's topic.
func TestPublishesInFlight(t *testing.T) {
	g, addr, got := startAckGateway(t, "")
	relayed := &localCollector{}
	if err := g.Subscribe("devices/#", relayed.add); err != nil {
		t.Fatal(err)
	}

	conn, r := rawDevice(t, addr, "dev-1")
	const n = 200
	if _, err := conn.Write(burst(n)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		ack := readPacket(t, r)
		if ack[0] != 0x40 || int(ack[2])<<8|int(ack[3]) != i {
			t.Fatalf("packet %d back: %x, want the PUBACK of publish %d", i, ack, i)
		}
	}
	msgs := got.WaitN(t, n, 20*time.Second)
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[string(m.Payload)] = true
	}
	for i := 1; i <= n; i++ {
		if !anyContains(seen, fmt.Sprintf(`"data":{"seq":%d}`, i)) {
			t.Fatalf("publish %d never reached the cloud", i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for relayed.count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if k := relayed.count(); k != n {
		t.Errorf("%d publishes relayed to the local subscriber, want %d", k, n)
	}
}

// TestReceiveMaximumEnforced: a device that keeps more QoS 1 publishes
// unacknowledged than the broker's receive_maximum is disconnected, and
// the violation counted.
func TestReceiveMaximumEnforced(t *testing.T) {
	g, addr, _ := startAckGateway(t, "receive_maximum: 2, ")
	conn, r := rawDevice(t, addr, "dev-1")
	if _, err := conn.Write(burst(500)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.ReadByte(); err != nil {
			break // the gateway closed the connection (or the deadline hit: checked below)
		}
	}
	// The listener counts the violation as the connection's goroutine ends,
	// just after the socket closes.
	deadline := time.Now().Add(10 * time.Second)
	for g.m.limits.receiveMaximum.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g.m.limits.receiveMaximum.Load() == 0 {
		t.Error("no receive_maximum violation counted")
	}
}

// TestPipelinedDeviceIsSlowedNotDropped: an MQTT 3.1.1 device (its
// protocol has no receive maximum) sends 3,000 QoS 1 publishes without
// waiting for a PUBACK, to a gateway whose broker.receive_maximum is 48.
// The gateway reads its publishes only as fast as the disk takes them, so
// the device never exceeds the limit: every publish is acknowledged, in
// order, and the device is not disconnected.
func TestPipelinedDeviceIsSlowedNotDropped(t *testing.T) {
	g, addr, _ := startAckGateway(t, "receive_maximum: 48, ")
	conn, r := rawDevice(t, addr, "dev-1")
	const n = 3000
	wrote := make(chan error, 1)
	go func() { _, err := conn.Write(burst(n)); wrote <- err }()
	for i := 1; i <= n; i++ {
		ack := readPacket(t, r)
		if ack[0] != 0x40 || int(ack[2])<<8|int(ack[3]) != i {
			t.Fatalf("packet %d back: %x, want the PUBACK of publish %d", i, ack, i)
		}
	}
	if err := <-wrote; err != nil {
		t.Errorf("writing the publishes: %v", err)
	}
	if v := g.m.limits.receiveMaximum.Load(); v != 0 {
		t.Errorf("%d receive_maximum violations", v)
	}
}

// TestFailedWriteDisconnects: when the store cannot write a publish's
// events, the publish is not acknowledged, nor is any later one, and the
// client is disconnected, so that it sends them again when it reconnects
// (MQTT clients resend only then).
func TestFailedWriteDisconnects(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cl := clientOn(a)
	go cl.WriteLoop()
	diskFull := errors.New("disk full")
	ack := newAcker(func(ps pending) error {
		if len(ps) == 1 {
			return diskFull
		}
		return nil
	})
	ack.later(cl, 1, pending{{}}) // its store write fails
	ack.later(cl, 2, nil)         // nothing to write, but after 1
	ack.gone(cl)
	if err := ack.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !cl.Closed() {
		t.Error("the client was kept connected after a failed write")
	}
	_ = b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := b.Read(make([]byte, 4)); n > 0 {
		t.Errorf("%d bytes sent to the client after a failed write; want no PUBACK", n)
	}
}

// startAckGateway runs a gateway with an on-disk outbox forwarding every
// reading to a cloud mosquitto, with broker keys added (a flow mapping's
// "key: value, " items); it returns it, its MQTT address and the cloud's
// collector.
func startAckGateway(t *testing.T, broker string) (*Gateway, string, *uplinktest.Collector) {
	t.Helper()
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	dir := t.TempDir()
	addr := uplinktest.FreeAddr(t)
	cfg := fmt.Sprintf(`gateway: {id: gw-acks, shutdown_timeout: 5s}
log: {level: error}
broker: {%slisten: %q, allow_anonymous: true}
http: {listen: %q}
ingest:
  topics: [{match: devices/+/env, type: env.reading}]
routes: [{name: cloud}]
uplink: {url: %q, topic: "cloud/{type}/{subject}", store_dir: outbox}
`, broker, addr, uplinktest.FreeAddr(t), cloud.URL())
	if err := os.WriteFile(filepath.Join(dir, "flowgate.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return runGateway(t, filepath.Join(dir, "flowgate.yaml")), addr, got
}

// rawDevice connects an MQTT 3.1.1 client on a raw connection, closed when
// the test ends.
func rawDevice(t *testing.T, addr, clientID string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := conn.Write(rawConnect(clientID)); err != nil {
		t.Fatal(err)
	}
	if ack := readPacket(t, r); ack[0] != 0x20 || ack[len(ack)-1] != 0 {
		t.Fatalf("CONNACK %x", ack)
	}
	return conn, r
}

// burst is n QoS 1 publishes of dev-1, packet ids 1 to n.
func burst(n int) []byte {
	var b []byte
	for i := 1; i <= n; i++ {
		b = append(b, rawPublish("devices/dev-1/env", uint16(i), fmt.Sprintf(`{"seq":%d}`, i))...)
	}
	return b
}

func anyContains(set map[string]bool, sub string) bool {
	for s := range set {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func (c *localCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// rawConnect is an MQTT 3.1.1 CONNECT with a clean session and no
// credentials.
func rawConnect(clientID string) []byte {
	body := append(mqttString("MQTT"), 4, 0x02, 0, 30)
	body = append(body, mqttString(clientID)...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// rawPublish is a QoS 1 PUBLISH (bodies under 128 bytes).
func rawPublish(topic string, id uint16, payload string) []byte {
	body := append(mqttString(topic), byte(id>>8), byte(id))
	body = append(body, payload...)
	return append([]byte{0x32, byte(len(body))}, body...)
}

func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// readPacket reads one packet of under 128 bytes.
func readPacket(t *testing.T, r *bufio.Reader) []byte {
	t.Helper()
	head := make([]byte, 2)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	body := make([]byte, head[1])
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	return append(head, body...)
}

// clientOn is a mochi client of an MQTT 3.1.1 device on conn, as the
// broker makes one for a connection.
func clientOn(conn net.Conn) *mqtt.Client {
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	cl := srv.NewClient(conn, "t", "dev-1", false)
	cl.Properties.ProtocolVersion = 4
	return cl
}

// pipeClient is a client on one end of an in-memory pipe, through the
// corked connection the listener gives every client, and the writes that
// reach the pipe.
func pipeClient(t *testing.T) (*mqtt.Client, *countingConn) {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	under := &countingConn{Conn: a}
	return clientOn(&corkConn{Conn: under}), under
}

// runQueued runs a's acker for cl over the PUBACKs of publishes 1…n, all
// queued before it starts (nothing to wait for on disk), to the end.
func runQueued(a *acker, cl *mqtt.Client, n int) {
	q := &ackQueue{running: true}
	for id := 1; id <= n; id++ {
		q.acks = append(q.acks, deferredAck{id: uint16(id)})
	}
	a.wg.Add(1)
	a.run(cl, q)
}

// countingConn records each write that reaches the connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return len(p), nil
}

// TestAcksLeaveTogether: PUBACKs that are due one after the other leave in
// one write to the device, in order, through the corked connection the
// listener gives every client.
func TestAcksLeaveTogether(t *testing.T) {
	cl, under := pipeClient(t)
	runQueued(newAcker(func(pending) error { return nil }), cl, 10)
	if len(under.writes) != 1 {
		t.Fatalf("%d writes for 10 PUBACKs due together; want 1", len(under.writes))
	}
	var want []byte
	for id := byte(1); id <= 10; id++ {
		want = append(want, 0x40, 2, 0, id)
	}
	if got := under.writes[0]; !bytes.Equal(got, want) {
		t.Errorf("written %x, want the PUBACKs of 1…10 in order: %x", got, want)
	}
}

// TestAcksDueBeforeAFailure: when the store fails a publish, the client is
// disconnected, but the PUBACKs of the publishes before it, whose events
// are on disk, still reach it first, so that it does not send them again.
func TestAcksDueBeforeAFailure(t *testing.T) {
	cl, under := pipeClient(t)
	calls := 0
	runQueued(newAcker(func(pending) error {
		calls++
		if calls == 3 {
			return errors.New("disk full")
		}
		return nil
	}), cl, 4)
	if !cl.Closed() {
		t.Error("the client was kept connected after a failed write")
	}
	var sent []byte
	for _, w := range under.writes {
		sent = append(sent, w...)
	}
	if want := []byte{0x40, 2, 0, 1, 0x40, 2, 0, 2}; !bytes.Equal(sent, want) {
		t.Errorf("sent %x, want the PUBACKs of 1 and 2 (on disk) and none after the failure: %x", sent, want)
	}
}

// TestCorkHoldsOtherWrites: a write that is not a PUBACK (a PINGRESP, a
// relayed publish) made while the acker has the connection corked waits
// for the uncork, in its place among the PUBACKs, and is not lost when the
// connection closes corked.
func TestCorkHoldsOtherWrites(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	under := &countingConn{Conn: a}
	c := &corkConn{Conn: under}
	c.cork()
	for _, p := range []string{"puback-1|", "pingresp|", "puback-2|"} {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if len(under.writes) != 0 {
		t.Fatalf("%d writes reached the connection while corked", len(under.writes))
	}
	c.uncork()
	if len(under.writes) != 1 || string(under.writes[0]) != "puback-1|pingresp|puback-2|" {
		t.Fatalf("after uncork: %q, want the three in one write, in order", under.writes)
	}
	c.cork()
	if _, err := c.Write([]byte("disconnect|")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(under.writes); n != 2 || string(under.writes[1]) != "disconnect|" {
		t.Errorf("after a corked close: %q, want the DISCONNECT sent before closing", under.writes)
	}
}

// TestAckerRunsOnlyWhileAcksWait: a client's PUBACKs are sent by a
// goroutine that exists only while some wait, so that a thousand devices
// publishing now and then do not keep a thousand goroutines. PUBACKs queued
// while it waits for the disk follow in order; once none is left it ends,
// and the next publish starts another.
func TestAckerRunsOnlyWhileAcksWait(t *testing.T) {
	cl, under := pipeClient(t)
	disk := make(chan struct{})
	ack := newAcker(func(pending) error { <-disk; return nil })
	state := func() (running bool, sent []byte) {
		ack.mu.Lock()
		running = ack.clients[cl].running
		ack.mu.Unlock()
		under.mu.Lock()
		defer under.mu.Unlock()
		return running, bytes.Join(under.writes, nil)
	}
	settled := func(want []byte) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			running, sent := state()
			if !running && bytes.Equal(sent, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("running %v, sent %x; want no goroutine left and %x sent", running, sent, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for id := uint16(1); id <= 3; id++ {
		if !ack.later(cl, id, nil) {
			t.Fatalf("PUBACK %d refused", id)
		}
	}
	if running, sent := state(); !running || len(sent) != 0 {
		t.Fatalf("before the disk: running %v, sent %x; want a goroutine waiting and nothing sent", running, sent)
	}
	close(disk)
	settled([]byte{0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3})
	if !ack.later(cl, 4, nil) {
		t.Fatal("PUBACK 4 refused")
	}
	settled([]byte{0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3, 0x40, 2, 0, 4})
	ack.gone(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ack.close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if ack.later(cl, 5, nil) {
		t.Error("a PUBACK was queued after close")
	}
}

// TestAckerRestartsKeepOrder: 30,000 PUBACKs queued while the client's
// goroutine keeps ending and starting again all leave, in order, and the
// client's receive quota is whole again after.
func TestAckerRestartsKeepOrder(t *testing.T) {
	cl, under := pipeClient(t)
	cl.State.Inflight.ResetReceiveQuota(64) // as a connection with receive maximum 64
	quota := func() int64 { return reflect.ValueOf(cl.State.Inflight).Elem().FieldByName("receiveQuota").Int() }
	whole := quota()
	if whole != 64 {
		t.Fatalf("receive quota %d after reset, want 64", whole)
	}
	var calls atomic.Int64
	ack := newAcker(func(pending) error {
		if calls.Add(1)%3 == 0 {
			runtime.Gosched()
		}
		return nil
	})
	const total = 30000
	for id := 1; id <= total; id++ {
		if !ack.later(cl, uint16(id), nil) {
			t.Fatalf("PUBACK %d refused", id)
		}
		if id%7 == 0 {
			runtime.Gosched() // now and then the goroutine drains its queue and ends
		}
	}
	ack.gone(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ack.close(ctx); err != nil {
		t.Fatal(err)
	}
	sent := bytes.Join(under.writes, nil)
	if len(sent) != 4*total {
		t.Fatalf("%d bytes sent, want %d PUBACKs", len(sent), total)
	}
	for i := range total {
		id := i + 1
		if want := []byte{0x40, 2, byte(id >> 8), byte(id)}; !bytes.Equal(sent[4*i:4*i+4], want) {
			t.Fatalf("PUBACK #%d is %x, want %x", id, sent[4*i:4*i+4], want)
		}
	}
	if q := quota(); q != whole {
		t.Errorf("receive quota %d after every PUBACK left, want %d", q, whole)
	}
}

// TestCloseRefusesAPublishWaitingForRoom: a publish waiting for room (its
// client owed ackBuffer PUBACKs) when the acker closes is refused, not
// queued: the device sends it again once reconnected.
func TestCloseRefusesAPublishWaitingForRoom(t *testing.T) {
	cl, _ := pipeClient(t)
	disk := make(chan struct{})
	ack := newAcker(func(pending) error { <-disk; return nil })
	for id := uint16(1); id <= ackBuffer; id++ {
		if !ack.later(cl, id, nil) {
			t.Fatalf("PUBACK %d refused", id)
		}
	}
	queued := make(chan bool)
	go func() { queued <- ack.later(cl, ackBuffer+1, nil) }()
	select {
	case ok := <-queued:
		t.Fatalf("publish %d past the buffer returned %v at once; want it to wait for room", ackBuffer+1, ok)
	case <-time.After(50 * time.Millisecond):
	}
	closed := make(chan error)
	go func() { closed <- ack.close(context.Background()) }()
	if ok := <-queued; ok {
		t.Error("the waiting publish was queued after close began")
	}
	close(disk)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
