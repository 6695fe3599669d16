package uplinktest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Message is one PUBLISH received by a Collector.
type Message struct {
	Topic          string
	Payload        []byte
	ContentType    string
	UserProperties map[string]string // the last value wins if a key repeats
}

// Collector is an MQTT v5 client subscribed at QoS 1 that keeps every message
// it receives, in arrival order.
type Collector struct {
	cli *paho.Client

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{} // closed and replaced when msgs grows
}

var clientSeq atomic.Uint64

// Subscribe connects to the broker at brokerURL (mqtt://host:port), subscribes to
// filter at QoS 1 and collects what arrives until the test ends. The
// subscription does not survive a restart of the broker: after Start, call
// Subscribe again.
func Subscribe(t testing.TB, brokerURL, filter string) *Collector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := dial(ctx, brokerURL)
	if err != nil {
		t.Fatalf("uplinktest: subscribe: %v", err)
	}
	c := &Collector{changed: make(chan struct{})}
	c.cli = paho.NewClient(paho.ClientConfig{
		ClientID:          fmt.Sprintf("uplinktest-collector-%d", clientSeq.Add(1)),
		Conn:              conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.receive},
	})
	t.Cleanup(func() { _ = c.cli.Disconnect(&paho.Disconnect{}) })
	recvMax := uint16(65535)
	if _, err := c.cli.Connect(ctx, &paho.Connect{
		ClientID:   c.cli.ClientID(),
		CleanStart: true,
		KeepAlive:  30,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax},
	}); err != nil {
		t.Fatalf("uplinktest: subscribe: connect to %s: %v", brokerURL, err)
	}
	if _, err := c.cli.Subscribe(ctx, &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}},
	}); err != nil {
		t.Fatalf("uplinktest: subscribe to %q: %v", filter, err)
	}
	return c
}

func dial(ctx context.Context, rawURL string) (net.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "mqtt" {
		return nil, fmt.Errorf("url %q: only mqtt:// is supported", rawURL)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", u.Host)
}

func (c *Collector) receive(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	m := Message{Topic: p.Topic, Payload: p.Payload}
	if p.Properties != nil {
		m.ContentType = p.Properties.ContentType
		m.UserProperties = make(map[string]string, len(p.Properties.User))
		for _, u := range p.Properties.User {
			m.UserProperties[u.Key] = u.Value
		}
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return true, nil
}

// Messages returns a copy of what has arrived so far.
func (c *Collector) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// WaitN waits until at least n messages have arrived and returns all that
// have (possibly more than n). It fails the test if they do not arrive within
// timeout. Call it from the test's goroutine.
func (c *Collector) WaitN(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.msgs), c.changed
		c.mu.Unlock()
		if got >= n {
			return c.Messages()
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("uplinktest: got %d messages, want %d within %v", got, n, timeout)
		}
	}
}
