package uplink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Run opens the store (see Open) if there is one, then connects to the
// broker and publishes queued events until Close has drained the queue or
// ctx is cancelled, reconnecting with backoff whenever the connection drops.
// It returns nil on a clean stop, ErrClosed if Close came first, ErrRunning
// if Run was called before, and Open's error if the store cannot be opened.
// With a tls:// URL it reads the TLS files before connecting and returns an
// *OptionError at once if one is unusable; later, at a reconnect, such a
// problem is logged and retried with backoff, as the file may be in the
// middle of being renewed.
//
// Cancelling ctx stops at once, leaving queued events undelivered; to
// deliver them first, call Close and let Run return.
func (u *Uplink) Run(ctx context.Context) error {
	if err := u.Open(); err != nil {
		return err
	}
	if err := u.begin(); err != nil {
		return err
	}
	defer u.end()
	if u.broker.Scheme == "tls" {
		if _, err := tlsConfig(u.opts, u.broker.Hostname()); err != nil {
			return err
		}
	}
	// autopaho stops when told to by Disconnect below, not on its own when
	// ctx ends, so that there is one way down and it is logged as such.
	u.pinger = &keepAlive{} // told of the sender's writes too (pinger.go)
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), u.clientConfig())
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	stopSend, sending := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sending)
		u.sendLoop(stopSend)
	}()
	u.serve(ctx, cm)

	u.mu.Lock()
	u.stopping = true
	close(stopSend) // the sender takes no more records, and returns once
	// its last batch is written, or failed as Disconnect closed the connection
	if u.conn != nil {
		u.conn.sealPublishes() // nothing may follow the DISCONNECT
	}
	timeout := u.opts.ConnectTimeout
	if !u.stopBy.IsZero() {
		// Close's caller has a deadline (the gateway's shutdown timeout):
		// disconnecting must not outlast it, but gets a moment to say goodbye.
		timeout = max(min(timeout, time.Until(u.stopBy)), minDisconnect)
	}
	u.mu.Unlock()
	// Disconnect sends DISCONNECT and waits for autopaho's goroutines to
	// return.
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = cm.Disconnect(dctx)
	if err != nil {
		u.link.drop() // a broker that stopped reading must not hold up the sender
	}
	<-sending
	if err != nil {
		return fmt.Errorf("uplink: disconnect from %s: %w", u.broker.Redacted(), err)
	}
	return nil
}

// minDisconnect is the least time a disconnect is given, even when Close's
// deadline has already passed.
const minDisconnect = 100 * time.Millisecond

func (u *Uplink) begin() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.closing:
		return ErrClosed
	case u.ran:
		return ErrRunning
	}
	u.ran, u.running = true, true
	return nil
}

func (u *Uplink) end() {
	u.mu.Lock()
	u.running = false
	if u.connected { // only if Disconnect gave up waiting
		u.connected = false
		u.win.close()
	}
	u.space.notify()
	u.mu.Unlock()
	close(u.runDone)
}

// serve waits for the end, waking the sender when parked records are due
// and checking for a stalled connection (watchdog.go) every StallTimeout/4.
func (u *Uplink) serve(ctx context.Context, cm *autopaho.ConnectionManager) {
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	wd := watchdog{timeout: u.opts.StallTimeout}
	tick := time.NewTicker(wd.timeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.stop:
			return
		case <-cm.Done():
			return
		case <-u.retry:
			pause.Reset(u.retryLeft())
		case <-pause.C:
			u.mu.Lock()
			u.work.notify()
			u.mu.Unlock()
		case now := <-tick.C:
			u.checkStall(&wd, now)
		}
	}
}

func (u *Uplink) retryLeft() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return time.Until(u.win.wakeAt(time.Now()))
}

// clientConfig maps Options onto autopaho. The broker keeps no session for
// us (session expiry 0, clean start): the outbox is the only record of what
// is undelivered, and everything unacknowledged is resent on reconnect.
func (u *Uplink) clientConfig() autopaho.ClientConfig {
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u.broker},
		KeepAlive:                     uint16(u.opts.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              u.reconnectDelay,
		ConnectTimeout:                u.opts.ConnectTimeout,
		AttemptConnection:             u.attempt,
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			u.link.ups.Add(1)
		},
		OnConnectError: func(err error) {
			u.log.Warn("connect failed", "url", u.broker.Redacted(), "err", err)
		},
		Errors:          pahoLogger{u.log, "autopaho"},
		PahoErrors:      pahoLogger{u.log, "paho"},
		ConnectUsername: u.opts.Username,
		ConnectPassword: []byte(u.opts.Password),
		ClientConfig: paho.ClientConfig{
			ClientID:    u.opts.ClientID,
			Session:     newSessionHooks(u),
			PingHandler: u.pinger,
		},
	}
	return cfg
}

// attempt opens the network connection of one connection attempt: TCP,
// then for a tls:// URL the TLS handshake with the files read afresh (see
// tls.go). autopaho passes its long-lived context here, not the attempt's,
// so the attempt bounds itself by ConnectTimeout. The connection is
// remembered for the watchdog, which may have to drop it, and handed to
// paho as a batchConn, which sends many packets in one write.
func (u *Uplink) attempt(ctx context.Context, _ autopaho.ClientConfig, broker *url.URL) (net.Conn, error) {
	var cfg *tls.Config
	if broker.Scheme == "tls" {
		c, err := tlsConfig(u.opts, broker.Hostname())
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	ctx, cancel := context.WithTimeout(ctx, u.opts.ConnectTimeout)
	defer cancel()
	raw, err := u.dial(ctx, broker.Host)
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	conn := raw
	if cfg != nil {
		if conn, err = u.handshake(ctx, raw, cfg, broker.Host); err != nil {
			return nil, err
		}
	}
	u.link.attached(raw)
	bc := newBatchConn(conn)
	u.mu.Lock()
	u.conn = bc
	u.mu.Unlock()
	return bc, nil
}

// dial opens a TCP connection to addr, through timing.dial if a test set one.
func (u *Uplink) dial(ctx context.Context, addr string) (net.Conn, error) {
	if u.timing.dial != nil {
		return u.timing.dial(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// minUptime: a connection that lasted less than this counts as failed when
// choosing the delay before the next attempt.
const minUptime = 5 * time.Second

// reconnectDelay is the wait before connection attempt n (0 for the first
// after a drop): the jittered backoff of timing.go, from ReconnectMin and
// ReconnectMax. autopaho counts attempts afresh after every successful
// connection, so a broker that accepts and then drops us at once (a client id
// in use twice, say) would be retried in a hot loop; such a short-lived
// connection counts as a failed attempt.
func (u *Uplink) reconnectDelay(attempt int) time.Duration {
	u.mu.Lock()
	flapped := !u.connectedAt.IsZero() && time.Since(u.connectedAt) < minUptime
	u.mu.Unlock()
	if attempt == 0 && flapped {
		attempt = 1
	}
	if u.timing.reconnect != nil {
		return u.timing.reconnect(attempt)
	}
	return backoff(u.opts.ReconnectMin, u.opts.ReconnectMax, attempt, u.timing.jitter)
}
