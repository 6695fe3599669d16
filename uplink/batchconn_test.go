package uplink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loopback returns both ends of a TCP connection on 127.0.0.1.
func loopback(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// gatedConn counts the writes that reach the connection and holds the
// first one until open is closed.
type gatedConn struct {
	net.Conn
	open   chan struct{}
	writes atomic.Int64
}

func (g *gatedConn) Write(p []byte) (int, error) {
	if g.writes.Add(1) == 1 {
		<-g.open
	}
	return g.Conn.Write(p)
}

// packet is what a test writes as one packet: its parts in separate
// Writes under the lock, as paho writes a PUBLISH.
func packet(c *batchConn, parts ...string) error {
	c.Lock()
	defer c.Unlock()
	for _, p := range parts {
		if _, err := c.Write([]byte(p)); err != nil {
			return err
		}
	}
	return nil
}

func TestBatchConnGathersWhileBusy(t *testing.T) {
	client, server := loopback(t)
	g := &gatedConn{Conn: client, open: make(chan struct{})}
	c := newBatchConn(g)
	var want bytes.Buffer
	for i := range 100 {
		p := fmt.Sprintf("<%03d|", i)
		if err := packet(c, p, "payload", ">"); err != nil {
			t.Fatal(err)
		}
		want.WriteString(p + "payload>")
	}
	close(g.open)
	got := make([]byte, want.Len())
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("received %q, want %q", got, want.Bytes())
	}
	// The first write held the link; everything written meanwhile went
	// in one more write, not one per packet part (300 Writes).
	if n := g.writes.Load(); n > 2 {
		t.Errorf("%d writes reached the connection for 100 packets written while it was busy; want at most 2", n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestBatchConnKeepsPacketsWhole(t *testing.T) {
	client, server := loopback(t)
	c := newBatchConn(client)
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := packet(c, fmt.Sprintf("[%d:", w), fmt.Sprintf("%04d", i), "]"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil { // sends what is buffered first
		t.Fatal(err)
	}
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers) // each writer's packets arrive whole and in its order
	for len(all) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(all[:8]), "[%d:%04d", &w, &i); err != nil || all[7] != ']' {
			t.Fatalf("packet torn at %q: %v", all[:min(len(all), 16)], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: packet %d arrived where %d was due", w, i, next[w])
		}
		next[w]++
		all = all[8:]
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d packets arrived, want %d", w, n, each)
		}
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v, want net.ErrClosed", err)
	}
}

func TestBatchConnFailsAndCloses(t *testing.T) {
	client, server := loopback(t)
	c := newBatchConn(client)
	server.Close()
	client.(*net.TCPConn).CloseWrite() // the next write to the socket fails
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write(make([]byte, 1024))
	}
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("writes to a broken connection: %v, want the socket's error", err)
	}
	<-c.done // the flusher ended
	// The connection underneath is closed, so a reader on it fails too.
	if _, rerr := client.Read(make([]byte, 1)); !errors.Is(rerr, net.ErrClosed) {
		t.Errorf("read after a failed write: %v, want net.ErrClosed (the connection closed)", rerr)
	}
	_ = c.Close() // harmless after the failure
}

// countedReads counts the reads that reach the connection.
type countedReads struct {
	net.Conn
	reads atomic.Int64
}

func (c *countedReads) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func TestBatchConnBuffersReads(t *testing.T) {
	client, server := loopback(t)
	under := &countedReads{Conn: client}
	c := newBatchConn(under)
	defer c.Close()
	var acks []byte
	for id := range 100 {
		acks = append(acks, 0x40, 2, 0, byte(id))
	}
	if _, err := server.Write(acks); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for id := range 100 { // as paho reads a packet: type, length, the rest
		var typ, n [1]byte
		if _, err := io.ReadFull(c, typ[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, n[:]); err != nil {
			t.Fatal(err)
		}
		rest := make([]byte, n[0])
		if _, err := io.ReadFull(c, rest); err != nil {
			t.Fatal(err)
		}
		if typ[0] != 0x40 || rest[1] != byte(id) {
			t.Fatalf("packet %d read as %x %x", id, typ, rest)
		}
	}
	// 300 Reads of paho's; the socket is read once per segment that came.
	if r := under.reads.Load(); r > 10 {
		t.Errorf("%d reads reached the connection for 300 small reads of 400 bytes; want a few", r)
	}
}

// steppedConn announces each write it starts on entered, then holds it
// until step lets it through.
type steppedConn struct {
	net.Conn
	entered chan []byte
	step    chan struct{}
}

func (s *steppedConn) Write(p []byte) (int, error) {
	s.entered <- p
	<-s.step
	return s.Conn.Write(p)
}

// A buffer grown past the size kept for reuse must not leave the flusher
// writing from the array that the next Writes fill: here "y1" was being
// sent from the array "z2" then went into, so "z2" went out twice.
func TestBatchConnBigWriteKeepsBuffersApart(t *testing.T) {
	client, server := loopback(t)
	s := &steppedConn{Conn: client, entered: make(chan []byte), step: make(chan struct{})}
	c := newBatchConn(s)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	big := bytes.Repeat([]byte("b"), 3*maxBatch)
	write := func(p []byte) {
		t.Helper()
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	write([]byte("x"))
	<-s.entered // the flusher is sending "x"
	write(big)
	s.step <- struct{}{}
	<-s.entered // sending big
	write([]byte("y1"))
	s.step <- struct{}{}
	<-s.entered // sending "y1"
	write([]byte("z2"))
	s.step <- struct{}{}
	<-s.entered // sending "z2"
	s.step <- struct{}{}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("x"), big...), "y1z2"...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("the broker read %d bytes ending %q; want %d ending %q", len(b), b[max(0, len(b)-6):], len(want), want[len(want)-6:])
	}
}

// Once sealed for the DISCONNECT, the connection takes no more publishes
// from the sender, while paho's own packets (the DISCONNECT) still go.
func TestBatchConnSealRefusesPublishes(t *testing.T) {
	client, server := loopback(t)
	c := newBatchConn(client)
	pub := []byte{0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 0x00}
	if err := c.writePublishes([]outgoing{{rec: pub, at: 5, pid: 7}}); err != nil {
		t.Fatal(err)
	}
	c.sealPublishes()
	if err := c.writePublishes([]outgoing{{rec: pub, at: 5, pid: 8}}); !errors.Is(err, errSealed) {
		t.Errorf("writePublishes after the seal: %v, want errSealed", err)
	}
	if err := packet(c, "\xe0\x00"); err != nil { // DISCONNECT
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(server)
	want := []byte{0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x07, 0x00, 0xe0, 0x00}
	if !bytes.Equal(got, want) {
		t.Errorf("the broker read % x, want % x", got, want)
	}
}
