package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowgate/flowgate/gateway/brokertls"
	"github.com/flowgate/flowgate/gateway/config"
)

// handshakeTimeout bounds a TLS handshake, so that a client that opens a
// connection and says nothing cannot hold it.
const handshakeTimeout = 10 * time.Second

// listenerSpec is one broker listener to open.
type listenerSpec struct {
	id, addr string
	tls      *tls.Config // nil: plain TCP
}

// brokerListeners are the listeners broker c asks for: the plain one
// unless it is off, and the TLS one if it has an address.
func brokerListeners(c config.Broker, log *slog.Logger) ([]listenerSpec, error) {
	var out []listenerSpec
	if addr := c.PlainListen(); addr != "" {
		out = append(out, listenerSpec{id: "tcp", addr: addr})
	}
	if t := c.TLS; t.Listen != "" {
		srv, err := brokertls.New(brokertls.Options{CertFile: t.CertFile, KeyFile: t.KeyFile,
			ClientCAFile: t.ClientCAFile, RequireClientCert: t.RequireClientCert, CRLFile: t.CRLFile, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("gateway: broker tls: %w", err)
		}
		out = append(out, listenerSpec{id: "tls", addr: t.Listen, tls: srv.Config()})
	}
	return out, nil
}

// listen attaches a listener, guarded by the connection limits. It returns
// once the port is bound.
func listen(s *mqtt.Server, spec listenerSpec, limit *connLimiter, m *metrics, log *slog.Logger) (listeners.Listener, error) {
	l := &guardedListener{
		Listener: listeners.NewTCP(listeners.Config{ID: spec.id, Address: spec.addr, TLSConfig: spec.tls}),
		tls:      spec.tls != nil, limit: limit, m: m, log: log,
	}
	if err := s.AddListener(l); err != nil {
		return nil, err
	}
	return l, nil
}

// guardedListener applies the connection limits to a mochi listener:
// the rate of new connections per remote IP before anything is read, the
// TLS handshake (bounded in time, its failures counted), and the count of
// connections mochi refuses for broker.max_clients.
type guardedListener struct {
	listeners.Listener
	tls   bool
	limit *connLimiter
	m     *metrics
	log   *slog.Logger
}

func (l *guardedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		if !l.limit.allow(c.RemoteAddr()) {
			l.m.limits.connectionRate.Add(1)
			l.log.Debug("connection refused: too many from this address", "remote", c.RemoteAddr().String())
			_ = c.Close()
			return nil
		}
		if tc, ok := c.(*tls.Conn); ok && l.tls {
			if err := l.handshake(tc); err != nil {
				l.m.tlsFailures.Inc()
				l.log.Info("TLS handshake refused", "remote", c.RemoteAddr().String(), "err", err)
				_ = c.Close()
				return nil
			}
		}
		err := establish(id, &corkConn{Conn: c})
		switch {
		case errors.Is(err, packets.ErrServerBusy):
			l.m.limits.maxClients.Add(1)
			l.log.Debug("connection refused: broker.max_clients reached", "remote", c.RemoteAddr().String())
			return nil
		case errors.Is(err, packets.ErrPacketTooLarge): // its CONNECT, or a packet later
			l.m.limits.packetSize.Add(1)
		case errors.Is(err, packets.ErrReceiveMaximum):
			l.m.limits.receiveMaximum.Add(1)
		}
		return err
	})
}

func (l *guardedListener) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	return tc.HandshakeContext(ctx)
}
