package mqtt311

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Client.Publish: the message did not (or may not) reach the
// broker because the connection is down; it can be sent again once the
// client has reconnected.
var (
	ErrNotConnected   = errors.New("mqtt311: not connected")
	ErrConnectionLost = errors.New("mqtt311: connection lost before the PUBACK")
)

// Options configure a Client.
type Options struct {
	Addr           string // host:port
	Connect        Connect
	ConnectTimeout time.Duration // CONNECT to CONNACK; 0: 10 s
	// Backoff is the wait before connection attempt n: n is 0 for the
	// first, and counts the failed attempts since the last connection
	// (at least 1 after a connection is lost, so that a broker that drops
	// the client at once is not hammered).
	Backoff func(n int) time.Duration
	// OnUp and OnDown are told of each connection made and lost; they
	// must not block. OnConnectError is told of each failed attempt.
	OnUp, OnDown   func()
	OnConnectError func(error)
}

// Client is one device's MQTT 3.1.1 connection: it connects with a clean
// session and reconnects with backoff until its context ends or
// Disconnect is called. Publish sends one message at a time and, at QoS
// 1, waits for its PUBACK. A Client costs one goroutine (the reader) and
// a few hundred bytes of buffers.
type Client struct {
	o      Options
	cancel context.CancelFunc
	done   chan struct{}
	up     chan struct{} // closed at the first connection
	acks   chan uint16   // PUBACK packet ids, for the publish waiting

	mu  sync.Mutex
	cur *session // nil while down

	pubMu  sync.Mutex // one publish at a time
	nextID uint16
}

// session is one network connection.
type session struct {
	nc       net.Conn
	rd       *Reader
	wmu      sync.Mutex
	buf      []byte       // encode buffer, under wmu
	lastRead atomic.Int64 // unix ns
	lost     chan struct{}
}

// Start starts connecting; the Client runs until ctx ends or Disconnect.
func Start(ctx context.Context, o Options) *Client {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration { return time.Duration(min(n, 1)) * time.Second }
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Client{o: o, cancel: cancel, done: make(chan struct{}), up: make(chan struct{}), acks: make(chan uint16, 1)}
	go c.run(ctx)
	return c
}

// Done is closed once the client has stopped for good.
func (c *Client) Done() <-chan struct{} { return c.done }

// AwaitConnection waits for the first connection.
func (c *Client) AwaitConnection(ctx context.Context) error {
	select {
	case <-c.up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrNotConnected
	}
}

func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	var upOnce sync.Once
	for attempt := 0; ; attempt++ {
		if d := c.o.Backoff(attempt); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		s, err := c.dial(ctx)
		switch {
		case err == nil:
			attempt = 0
			c.serve(ctx, s, func() { upOnce.Do(func() { close(c.up) }) })
		case ctx.Err() == nil && c.o.OnConnectError != nil:
			c.o.OnConnectError(err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// dial connects, sends CONNECT and waits for a CONNACK that accepts it.
func (c *Client) dial(ctx context.Context) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, c.o.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", c.o.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt311: %w", err)
	}
	s := &session{nc: nc, rd: NewReaderSize(nc, 256), lost: make(chan struct{})}
	deadline, _ := dctx.Deadline()
	_ = nc.SetDeadline(deadline)
	s.buf = AppendConnect(s.buf[:0], c.o.Connect)
	_, err = nc.Write(s.buf)
	if err == nil {
		var p Packet
		if p, err = s.rd.Next(); err == nil {
			err = CheckConnack(p)
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("mqtt311: %s: %w", c.o.Connect.ClientID, err)
	}
	_ = nc.SetDeadline(time.Time{})
	s.lastRead.Store(time.Now().UnixNano())
	return s, nil
}

// serve makes s the current connection and reads from it until it is
// lost or ctx ends, keeping it alive meanwhile.
func (c *Client) serve(ctx context.Context, s *session, first func()) {
	c.mu.Lock()
	c.cur = s
	c.mu.Unlock()
	first()
	if c.o.OnUp != nil {
		c.o.OnUp()
	}
	stopClose := context.AfterFunc(ctx, func() { s.nc.Close() })
	stopPing := s.keepAlive(time.Duration(c.o.Connect.KeepAlive) * time.Second)
	c.read(s)
	stopPing()
	stopClose()
	s.nc.Close()
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	if c.o.OnDown != nil && ctx.Err() == nil { // not when told to stop
		c.o.OnDown()
	}
}

// read takes PUBACKs and PINGRESPs until the connection fails. Anything
// else is a protocol error: a device subscribes to nothing.
func (c *Client) read(s *session) {
	defer close(s.lost)
	for {
		p, err := s.rd.Next()
		if err != nil {
			return
		}
		s.lastRead.Store(time.Now().UnixNano())
		switch p.Kind() {
		case TypePuback:
			id, err := PacketID(p)
			if err != nil {
				return
			}
			select {
			case c.acks <- id:
			default: // a stale ack is pending; the publisher skips it
			}
		case TypePingresp:
		default:
			return
		}
	}
}

// keepAlive pings the broker when it has said nothing for half of
// interval (a QoS 0 publisher hears nothing back otherwise) and closes a
// connection that has been silent for one and a half. It needs no
// goroutine of its own between checks.
func (s *session) keepAlive(interval time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	t = time.AfterFunc(interval/2, func() {
		silent := time.Since(time.Unix(0, s.lastRead.Load()))
		switch {
		case silent > interval*3/2:
			s.nc.Close()
			return
		case silent >= interval/2:
			_ = s.write(func(b []byte) []byte { return append(b, TypePingreq<<4, 0) })
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(interval / 2)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// write encodes a packet with enc and writes it in one call.
func (s *session) write(enc func([]byte) []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.buf = enc(s.buf[:0])
	_, err := s.nc.Write(s.buf)
	return err
}

func (c *Client) session() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Publish sends one message and, at QoS 1, waits for its PUBACK. It fails
// with ErrNotConnected while the client is reconnecting and with
// ErrConnectionLost when the connection fails before the PUBACK: the
// broker may or may not have the message. payload is not kept.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	s := c.session()
	if s == nil {
		return ErrNotConnected
	}
	var id uint16
	if qos > 0 {
		if c.nextID++; c.nextID == 0 {
			c.nextID = 1
		}
		id = c.nextID
		select {
		case <-c.acks: // an ack of a publish that gave up waiting
		default:
		}
	}
	err := s.write(func(b []byte) []byte { return AppendPublish(b, topic, qos, retain, id, payload) })
	if err != nil {
		s.nc.Close() // the reader sees it and the client reconnects
		return fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	if qos == 0 {
		return nil
	}
	for {
		select {
		case got := <-c.acks:
			if got == id {
				return nil
			}
		case <-s.lost:
			return ErrConnectionLost
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Disconnect sends DISCONNECT (so the broker discards the last will),
// stops reconnecting and waits, within ctx, for the client to stop.
func (c *Client) Disconnect(ctx context.Context) error {
	if s := c.session(); s != nil {
		_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = s.write(func(b []byte) []byte { return append(b, TypeDisconnect<<4, 0) })
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
