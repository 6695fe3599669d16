package uplinktest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

func TestRestartOnSamePort(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	addr := m.Addr()
	if m.URL() != "mqtt://"+addr {
		t.Errorf("URL %q does not match Addr %q", m.URL(), addr)
	}
	m.Stop()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	m.Start()
	if m.Addr() != addr {
		t.Errorf("restarted on %s, want %s", m.Addr(), addr)
	}
	c := uplinktest.Subscribe(t, m.URL(), "t/#")
	publish(t, addr, "t/1", "hello")
	got := c.WaitN(t, 1, 5*time.Second)
	if got[0].Topic != "t/1" || string(got[0].Payload) != "hello" {
		t.Errorf("got %+v", got[0])
	}
}

// publish sends one QoS 1 message with a plain paho client.
func publish(t *testing.T, addr, topic, payload string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cli := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Connect(ctx, &paho.Connect{ClientID: "publisher", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer cli.Disconnect(&paho.Disconnect{})
	if _, err := cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}
