package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/flowgate/flowgate/firmware-sim/internal/mqtt311"
)

// link is one device's connection to the broker, in MQTT 5 (paho's
// autopaho) or 3.1.1 (internal/mqtt311). Either connects, and reconnects
// with backoff, by itself until its context ends or Disconnect.
type link interface {
	AwaitConnection(ctx context.Context) error
	// Publish sends one message (at QoS 1, until its PUBACK). An error
	// wrapping errLinkDown means the connection is down: the message is
	// kept for the next one. A *refusedError is a PUBACK that refused it.
	Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error
	Disconnect(ctx context.Context) error
	Done() <-chan struct{}
}

// linkHooks are what a link tells its device; none may block.
type linkHooks struct {
	up, down     func()
	connectError func(error)
}

// errLinkDown: the device is disconnected (and reconnecting).
var errLinkDown = errors.New("sim: connection down")

const (
	keepAlive      = 30 // seconds
	connectTimeout = 10 * time.Second
	backoffMin     = 250 * time.Millisecond
	backoffMax     = 30 * time.Second
)

// willTopic and willPayload are a device's last will (Runner.Will).
func willTopic(id string) string { return "devices/" + id + "/status" }

var willPayload = []byte(`{"online":false}`)

// backoff is the wait before connection attempt n: none before the first
// (n = 0), then doubling from backoffMin up to backoffMax, each wait a
// random half to all of it so that thousands of devices do not come back
// at once.
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := backoffMin << min(n-1, 10)
	d = min(d, backoffMax)
	return d/2 + rand.N(d/2+1)
}

// receiveMaximum is the Receive Maximum every MQTT 5 device announces:
// paho sizes its queue of incoming publishes by it (65,535 by default:
// 512 KiB a connection, 5 GB at 10,000 devices). Devices subscribe to
// nothing, so one is plenty.
var receiveMaximum uint16 = 1

// link5 is an MQTT 5 device connection.
type link5 struct{ *autopaho.ConnectionManager }

func dial5(ctx context.Context, r *Runner, u *url.URL, id string, h linkHooks) (link, error) {
	cfg := autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: keepAlive, CleanStartOnInitialConnection: true,
		ReconnectBackoff: backoff, ConnectTimeout: connectTimeout,
		OnConnectionUp:   func(*autopaho.ConnectionManager, *paho.Connack) { h.up() },
		OnConnectionDown: func() bool { h.down(); return true },
		OnConnectError:   h.connectError,
		ClientConfig:     paho.ClientConfig{ClientID: id},
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &receiveMaximum
			return c, nil
		},
	}
	if r.Secret != "" {
		cfg.ConnectUsername, cfg.ConnectPassword = id, []byte(Password(r.Secret, id))
	}
	if r.Will {
		cfg.WillMessage = &paho.WillMessage{Topic: willTopic(id), QoS: 1, Payload: willPayload}
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return link5{cm}, nil
}

func (l link5) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	resp, err := l.ConnectionManager.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload,
		Properties: &paho.PublishProperties{ContentType: "application/json"}})
	switch {
	case resp != nil && resp.ReasonCode >= 0x80: // paho returns an error with it too
		return &refusedError{resp.ReasonCode}
	case errors.Is(err, autopaho.ConnectionDownError):
		return fmt.Errorf("%w: %w", errLinkDown, err)
	case err != nil:
		return err
	}
	return nil
}

// link311 is an MQTT 3.1.1 device connection.
type link311 struct{ *mqtt311.Client }

func dial311(ctx context.Context, r *Runner, u *url.URL, id string, h linkHooks) (link, error) {
	if u.Scheme != "mqtt" && u.Scheme != "tcp" {
		return nil, fmt.Errorf("broker %s: MQTT 3.1.1 devices speak plain TCP only (mqtt://)", u.Redacted())
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "1883")
	}
	c := mqtt311.Connect{ClientID: id, KeepAlive: keepAlive}
	if r.Secret != "" {
		c.Username, c.Password = id, Password(r.Secret, id)
	}
	if r.Will {
		c.Will = &mqtt311.Will{Topic: willTopic(id), Payload: willPayload, QoS: 1}
	}
	return link311{mqtt311.Start(ctx, mqtt311.Options{Addr: addr, Connect: c, ConnectTimeout: connectTimeout,
		Backoff: backoff, OnUp: h.up, OnDown: h.down, OnConnectError: h.connectError})}, nil
}

func (l link311) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	err := l.Client.Publish(ctx, topic, qos, retain, payload)
	if errors.Is(err, mqtt311.ErrNotConnected) || errors.Is(err, mqtt311.ErrConnectionLost) {
		return fmt.Errorf("%w: %w", errLinkDown, err)
	}
	return err
}
