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
	// autopaho stops when told to by Disconnect below, not on its own when
	// ctx ends, so that there is one way down and it is logged as such.
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), u.clientConfig())
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	u.serve(ctx, cm)

	u.mu.Lock()
	u.stopping = true
	timeout := u.opts.ConnectTimeout
	if !u.stopBy.IsZero() {
		// Close's caller has a deadline (the gateway's shutdown timeout):
		// disconnecting must not outlast it, but gets a moment to say goodbye.
		timeout = max(min(timeout, time.Until(u.stopBy)), minDisconnect)
	}
	u.mu.Unlock()
	// Disconnect sends DISCONNECT and waits for autopaho's goroutines,
	// including its publish loop, to return.
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cm.Disconnect(dctx); err != nil {
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

// serve waits for the end, waking the sender when parked records are due.
func (u *Uplink) serve(ctx context.Context, cm *autopaho.ConnectionManager) {
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
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
		}
	}
}

func (u *Uplink) retryLeft() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return time.Until(u.win.retryAt)
}

// clientConfig maps Options onto autopaho. The broker keeps no session for
// us (session expiry 0, clean start): the outbox is the only record of what
// is undelivered, and everything unacknowledged is resent on reconnect.
func (u *Uplink) clientConfig() autopaho.ClientConfig {
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u.broker},
		TlsCfg:                        &tls.Config{MinVersion: tls.VersionTLS12}, // system roots
		KeepAlive:                     uint16(u.opts.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              u.reconnectDelay,
		ConnectTimeout:                u.opts.ConnectTimeout,
		Queue:                         feed{u},
		OnConnectError: func(err error) {
			u.log.Warn("connect failed", "url", u.broker.Redacted(), "err", err)
		},
		Errors:          pahoLogger{u.log, "autopaho"},
		PahoErrors:      pahoLogger{u.log, "paho"},
		ConnectUsername: u.opts.Username,
		ConnectPassword: []byte(u.opts.Password),
		ClientConfig: paho.ClientConfig{
			ClientID: u.opts.ClientID,
			Session:  newSessionHooks(u),
		},
	}
	if dial := u.timing.dial; dial != nil {
		cfg.AttemptConnection = func(ctx context.Context, _ autopaho.ClientConfig, b *url.URL) (net.Conn, error) {
			return dial(ctx, b.Host)
		}
	}
	return cfg
}

// minUptime: a connection that lasted less than this counts as failed when
// choosing the delay before the next attempt.
const minUptime = 5 * time.Second

// reconnectDelay is the wait before connection attempt n (0 for the first
// after a drop). autopaho counts attempts afresh after every successful
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
	return u.timing.reconnect(attempt)
}

// refused handles a record autopaho finished with: if the session did not
// take it on this connection and the connection is up, paho refused it (as
// for a QoS the broker does not support); retry after a backoff.
func (u *Uplink) refused(e *entry) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e.sent || !u.connected {
		return
	}
	delay := u.park(e.seq)
	u.log.Error("publish refused by the MQTT client; will retry", "retry_in", delay, "attempt", u.failures)
}

// quarantine drops a record that cannot be parsed. Only a bug or a damaged
// store explains one; it is logged, never dropped silently.
func (u *Uplink) quarantine(seq uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ob.Delete(seq)
	u.space.notify()
	u.log.Error("dropped an unreadable queued record", "seq", seq)
}
