package uplink

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// batchConn sends many packets to the broker in one write. A Write, and
// the sender's writePublishes, only copy into a buffer; one flusher goroutine
// sends whatever has gathered, so while it is inside one system call the
// next packets collect behind it: a batch forms exactly when the link is
// busy, and an idle link sends a lone packet at once, with no timer. Without
// it every event cost a system call, and the broker a read of its own.
//
// A write that fails is reported by the next Write, and the flusher closes
// the connection so that paho's reader fails too and autopaho reconnects;
// the outbox resends whatever was not acknowledged, so nothing is lost with
// the buffer. The buffer is bounded: a Write, or a batch of publishes, waits
// while maxBatch bytes or more wait to be taken, as a socket's send buffer
// makes it wait; with what the flusher is sending, at most about three
// times maxBatch is held.
//
// batchConn is also the sync.Locker paho holds around a packet's Writes
// (its header, properties and payload go in separate Writes), so that
// packets written by different goroutines (publishes, pings) never
// interleave. Reads are buffered: paho reads each packet in three Reads
// (type, length, the rest), which were three system calls per PUBACK.
type batchConn struct {
	net.Conn
	packet sync.Mutex    // held around each packet, by paho and the sender
	r      *bufio.Reader // paho reads from one goroutine at a time

	mu    sync.Mutex
	space *sync.Cond // signalled when the flusher took the buffer, or failed
	buf   []byte     // written, not yet taken by the flusher
	spare []byte     // the flusher's previous buffer, to reuse
	err   error      // the first failed write, or net.ErrClosed after Close
	seal  bool       // Run is disconnecting: writePublishes refuses
	kick  chan struct{}
	done  chan struct{} // closed when the flusher has returned
}

// maxBatch bounds the bytes waiting to be sent.
const maxBatch = 64 << 10

// closeFlushTimeout bounds how long Close waits to send what is buffered.
const closeFlushTimeout = time.Second

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, r: bufio.NewReader(c), kick: make(chan struct{}, 1), done: make(chan struct{})}
	b.space = sync.NewCond(&b.mu)
	go b.flush(b.kick)
	return b
}

func (b *batchConn) Lock()   { b.packet.Lock() }
func (b *batchConn) Unlock() { b.packet.Unlock() }

func (b *batchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write queues p for the flusher.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && len(b.buf) >= maxBatch {
		b.space.Wait()
	}
	if b.err != nil {
		b.mu.Unlock()
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	b.kickFlusher()
	b.mu.Unlock()
	return len(p), nil
}

// writePublishes queues the PUBLISH packets of batch, each with its packet
// id written in. It waits for space as Write does, but not while holding
// the packet lock, so that paho's own packets (a ping, the DISCONNECT) are
// not held up behind it; it then holds the lock, as paho does around each of
// its packets, so that the batch goes in whole.
func (b *batchConn) writePublishes(batch []outgoing) error {
	b.mu.Lock()
	for b.err == nil && len(b.buf) >= maxBatch {
		b.space.Wait()
	}
	b.mu.Unlock()
	b.packet.Lock()
	defer b.packet.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err != nil:
		return b.err
	case b.seal:
		return errSealed
	}
	for _, o := range batch {
		n := len(b.buf)
		b.buf = append(b.buf, o.rec...)
		b.buf[n+o.at], b.buf[n+o.at+1] = byte(o.pid>>8), byte(o.pid)
	}
	b.kickFlusher()
	return nil
}

// errSealed: the connection is being closed with a DISCONNECT, after
// which MQTT allows nothing more.
var errSealed = errors.New("uplink: the connection is closing")

// sealPublishes makes writePublishes refuse from now on, before Run sends
// DISCONNECT: a batch the sender took just before it must not follow it.
func (b *batchConn) sealPublishes() {
	b.mu.Lock()
	b.seal = true
	b.mu.Unlock()
}

// kickFlusher wakes the flusher. b.mu must be held.
func (b *batchConn) kickFlusher() {
	select {
	case b.kick <- struct{}{}:
	default: // the flusher has a wake-up pending
	}
}

// flush sends the buffer each time a Write kicks it, until Close or a
// failed write.
func (b *batchConn) flush(kick <-chan struct{}) {
	defer close(b.done)
	for range kick {
		if !b.sendAll() {
			return
		}
	}
}

// sendAll writes until the buffer is empty; false once a write failed.
func (b *batchConn) sendAll() bool {
	for {
		b.mu.Lock()
		out, failed := b.buf, b.failed()
		if len(out) == 0 || failed {
			b.mu.Unlock()
			return !failed
		}
		b.buf, b.spare = b.spare[:0], nil // never the same array as out
		b.space.Broadcast()               // the buffer is free while out is sent
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		if cap(out) <= 2*maxBatch {
			b.spare = out[:0]
		}
		if err != nil && !b.failed() {
			b.err = err
		}
		b.space.Broadcast()
		b.mu.Unlock()
		if err != nil {
			_ = b.Conn.Close() // paho's reader fails, and the link reconnects
			return false
		}
	}
}

// failed reports whether a write failed (Close alone leaves the buffer to
// be sent). b.mu must be held.
func (b *batchConn) failed() bool { return b.err != nil && b.err != net.ErrClosed }

// Close sends what is buffered (for at most closeFlushTimeout), stops the
// flusher and closes the connection. Calling it again is harmless.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if b.err == nil {
		b.err = net.ErrClosed // later Writes fail; the buffer still goes out
	}
	if b.kick != nil {
		_ = b.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		close(b.kick)
		b.kick = nil
	}
	b.space.Broadcast()
	b.mu.Unlock()
	<-b.done
	return b.Conn.Close()
}
