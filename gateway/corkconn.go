package gateway

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// corkConn lets a client's acker send a run of PUBACKs in one write. mochi
// writes every packet to the connection on its own, so a device with ten
// publishes acknowledged by one group commit cost ten system calls here and
// ten reads on the device. While corked, writes gather in a buffer (mochi's
// own writes to the client too, in their order); uncork sends them at once.
// The acker corks only while it has PUBACKs at hand that are due, and
// uncorks before it waits for anything, so a write is never held back
// longer than it takes to write the PUBACKs ahead of it.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

// corkLimit is the most a corked connection gathers before it writes.
const corkLimit = 16 << 10

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked && len(c.buf)+len(p) <= corkLimit {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// cork holds writes back until uncork. A nil *corkConn (a connection that
// is not one) does nothing.
func (c *corkConn) cork() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what gathered. A failed write closes the connection, so that
// mochi's reader ends the client as it would after its own failed write.
func (c *corkConn) uncork() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.flushLocked() != nil {
		_ = c.Conn.Close()
	}
}

// Close sends what gathered (for at most corkCloseTimeout), then closes the
// connection: PUBACKs already due, or mochi's DISCONNECT, still reach the
// client when mochi or the acker ends it.
func (c *corkConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.buf) > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(corkCloseTimeout))
		_ = c.flushLocked()
	}
	return c.Conn.Close()
}

// corkCloseTimeout bounds the last write of a closing connection.
const corkCloseTimeout = time.Second

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// tlsConn is the TLS connection under a client's connection, if it has one.
func tlsConn(c net.Conn) (*tls.Conn, bool) {
	if cc, ok := c.(*corkConn); ok {
		c = cc.Conn
	}
	tc, ok := c.(*tls.Conn)
	return tc, ok
}
