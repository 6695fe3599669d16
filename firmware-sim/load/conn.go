package load

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/flowgate/flowgate/firmware-sim/internal/mqtt311"
)

// conn is one MQTT 3.1.1 connection: a buffered writer shared under a
// mutex (the owner's goroutine and the keep-alive pinger write), and a
// packet reader used by one goroutine.
type conn struct {
	nc net.Conn
	mu sync.Mutex
	w  *bufio.Writer
	rd *mqtt311.Reader
	// scratch is the encode buffer of the goroutine holding mu.
	scratch []byte
}

// brokerAddr turns "mqtt://host:port", "tcp://host:port" or "host:port"
// into a dial address.
func brokerAddr(s string) (string, error) {
	for _, p := range []string{"mqtt://", "tcp://"} {
		s = strings.TrimPrefix(s, p)
	}
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("load: broker %q: only mqtt:// (plain TCP) is supported", s)
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", fmt.Errorf("load: broker %q: %w", s, err)
	}
	return s, nil
}

// dial connects, sends CONNECT and waits for a CONNACK that accepts it.
func dial(ctx context.Context, addr, clientID, username, password string, keepAlive time.Duration, timeout time.Duration) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("load: %s: %w", clientID, err)
	}
	c := &conn{nc: nc, w: bufio.NewWriterSize(nc, 64<<10), rd: mqtt311.NewReader(nc)}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	c.scratch = mqtt311.AppendConnect(c.scratch[:0], mqtt311.Connect{ClientID: clientID, Username: username, Password: password,
		KeepAlive: uint16(keepAlive / time.Second)})
	if _, err := nc.Write(c.scratch); err != nil {
		nc.Close()
		return nil, fmt.Errorf("load: %s: %w", clientID, err)
	}
	p, err := c.rd.Next()
	if err == nil {
		err = mqtt311.CheckConnack(p)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("load: %s: %w", clientID, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// ping sends a PINGREQ if nothing else holds the writer, and flushes.
func (c *conn) ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.w.WriteByte(mqtt311.TypePingreq << 4); err != nil {
		return err
	}
	if err := c.w.WriteByte(0); err != nil {
		return err
	}
	return c.w.Flush()
}

// keepAlive pings every interval until done is closed. The brokers expect
// a packet within 1.5 keep-alives; a subscriber at QoS 0 writes nothing else.
func (c *conn) keepAlive(interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if c.ping() != nil {
				return
			}
		}
	}
}

// disconnect sends DISCONNECT (best effort) and closes the connection.
func (c *conn) disconnect() {
	c.mu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.w.WriteByte(mqtt311.TypeDisconnect << 4)
	_ = c.w.WriteByte(0)
	_ = c.w.Flush()
	c.mu.Unlock()
	_ = c.nc.Close()
}
