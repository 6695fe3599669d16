package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestChaos is the store-and-forward proof: devices publish at a steady
// rate while the cloud broker is stopped and restarted and the gateway is
// killed with SIGKILL and restarted. In the end every reading the gateway
// acknowledged to a device has reached the cloud, each device's readings
// first arrive in order, and a reading arrives under two ids only when a
// kill cut off its acknowledgement.
//
// The short form runs in `make test`; FLOWGATE_CHAOS_CYCLES=200 (make chaos)
// runs the long one.
func TestChaos(t *testing.T) {
	cycles := 4
	if s := os.Getenv("FLOWGATE_CHAOS_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FLOWGATE_CHAOS_CYCLES=%q", s)
		}
		cycles = n
	}
	cloud := uplinktest.StartMosquitto(t, "persistence true", "persistence_location "+t.TempDir()+"/")
	sub := newCloudSubscriber(t, cloud.URL())
	// The gateway reaches the cloud through a gate that stays shut while
	// the cloud restarts until the subscriber has subscribed again:
	// mosquitto does not deliver what it receives before that to a session
	// it restored from its database.
	gate := newCloudGate(t, cloud.Addr())
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, "mqtt://"+gate.addr(), mqttAddr, httpAddr) // a durable outbox in a temporary directory
	g := startGateway(t, cfg, mqttAddr, httpAddr)

	ctx, stopDevices := context.WithCancel(context.Background())
	devs := []*chaosDevice{{id: "dev-1"}, {id: "dev-2"}}
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() { defer wg.Done(); d.run(ctx, mqttAddr) }()
	}
	kills := 0
	kill := func() {
		_ = g.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
		<-g.exited
		kills++
		g = startGateway(t, cfg, mqttAddr, httpAddr)
	}
	for i := range cycles {
		time.Sleep(500 * time.Millisecond) // devices publish, the cloud receives
		if i%2 == 0 {
			// A cloud outage with a gateway crash in the middle of it: the
			// backlog must survive the crash.
			gate.set(false)
			cloud.Shutdown()
			time.Sleep(500 * time.Millisecond)
			kill()
			time.Sleep(300 * time.Millisecond)
			subs := sub.subscriptions()
			cloud.Start()
			waitFor(t, 10*time.Second, "the cloud subscriber to subscribe again", func() bool { return sub.subscriptions() > subs })
			gate.set(true)
		} else {
			kill() // a crash while forwarding
		}
	}
	time.Sleep(500 * time.Millisecond)
	stopDevices()
	wg.Wait()

	want := 0
	for _, d := range devs {
		want += len(d.accepted)
	}
	if want < 20*cycles/2 {
		t.Fatalf("only %d readings accepted in %d cycles: the test did not exercise much", want, cycles)
	}
	missing := func() (n int) {
		for _, d := range devs {
			for _, seq := range d.accepted {
				if !sub.has(d.id, seq) {
					n++
				}
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); missing() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			var lost []string
			for _, d := range devs {
				for _, seq := range d.accepted {
					if !sub.has(d.id, seq) {
						lost = append(lost, fmt.Sprintf("%s:%d", d.id, seq))
					}
				}
			}
			t.Fatalf("%d of %d accepted readings never reached the cloud (%d cycles, %d kills): %v",
				missing(), want, cycles, kills, lost)
		}
	}
	for _, d := range devs {
		firsts := sub.firstArrivals(d.id)
		for i := 1; i < len(firsts); i++ {
			if firsts[i] < firsts[i-1] {
				t.Errorf("%s: reading %d first arrived after %d", d.id, firsts[i], firsts[i-1])
				break
			}
		}
	}
	twoIDs := sub.readingsWithSeveralIDs()
	if twoIDs > kills*len(devs) {
		t.Errorf("%d readings arrived under more than one id; at most one per device per kill (%d) expected", twoIDs, kills*len(devs))
	}
	t.Logf("%d cycles, %d kills: %d readings accepted, %d messages at the cloud, %d readings under two ids",
		cycles, kills, want, sub.count(), twoIDs)
}

// chaosDevice publishes {"seq": n} at QoS 1, one reading every 10 ms, and
// moves to n+1 only once the gateway acknowledged n; it reconnects whenever
// the gateway is gone.
type chaosDevice struct {
	id       string
	accepted []int // sequence numbers the gateway acknowledged
}

func (d *chaosDevice) run(ctx context.Context, addr string) {
	seq := 0
	for ctx.Err() == nil {
		c := d.connect(ctx, addr)
		if c == nil {
			return
		}
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			r, err := c.Publish(pctx, &paho.Publish{Topic: "devices/" + d.id + "/env", QoS: 1,
				Payload: fmt.Appendf(nil, `{"seq":%d}`, seq)})
			cancel()
			if err != nil || r == nil || r.ReasonCode >= 0x80 {
				break // gateway gone or refusing: reconnect and send seq again
			}
			d.accepted = append(d.accepted, seq)
			seq++
			time.Sleep(10 * time.Millisecond)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
}

func (d *chaosDevice) connect(ctx context.Context, addr string) *paho.Client {
	for ctx.Err() == nil {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c := paho.NewClient(paho.ClientConfig{ClientID: d.id, Conn: conn})
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.Connect(cctx, &paho.Connect{ClientID: d.id, CleanStart: true, KeepAlive: 30,
				Username: d.id, UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true})
			cancel()
			if err == nil {
				return c
			}
			conn.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// cloudSubscriber is a persistent MQTT session at the cloud broker: what is
// published while it is away (the broker restarting) is kept for it.
type cloudSubscriber struct {
	mu     sync.Mutex
	ids    map[string]map[int]map[string]bool // device → seq → event ids
	firsts map[string][]int                   // device → seqs in order of first arrival
	n      int
	subs   atomic.Int64 // subscriptions made, one per connection
}

func (s *cloudSubscriber) subscriptions() int64 { return s.subs.Load() }

// cloudGate is a TCP relay to the cloud broker that can be shut: while shut
// it refuses connections and cuts those it relays.
type cloudGate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  map[net.Conn]bool
}

func newCloudGate(t *testing.T, target string) *cloudGate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &cloudGate{ln: ln, target: target, open: true, conns: map[net.Conn]bool{}}
	done := make(chan struct{})
	go func() { defer close(done); g.serve() }()
	t.Cleanup(func() { _ = ln.Close(); g.set(false); <-done })
	return g
}

func (g *cloudGate) addr() string { return g.ln.Addr().String() }

// set opens or shuts the gate; shutting it cuts every relayed connection.
func (g *cloudGate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if !open {
		for c := range g.conns {
			_ = c.Close()
		}
	}
}

func (g *cloudGate) serve() {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); g.relay(c) }()
	}
}

func (g *cloudGate) relay(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", g.target, time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	g.mu.Lock()
	if !g.open {
		g.mu.Unlock()
		return
	}
	g.conns[c], g.conns[up] = true, true
	g.mu.Unlock()
	defer func() { g.mu.Lock(); delete(g.conns, c); delete(g.conns, up); g.mu.Unlock() }()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
}

func newCloudSubscriber(t *testing.T, rawURL string) *cloudSubscriber {
	t.Helper()
	s := &cloudSubscriber{ids: map[string]map[int]map[string]bool{}, firsts: map[string][]int{}}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		SessionExpiryInterval: 3600, ReconnectBackoff: func(int) time.Duration { return 100 * time.Millisecond },
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if _, err := cm.Subscribe(context.Background(), &paho.Subscribe{
				Subscriptions: []paho.SubscribeOptions{{Topic: "cloud/#", QoS: 1}}}); err == nil {
				s.subs.Add(1)
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: "chaos-cloud", OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { s.receive(pr.Packet.Payload); return true, nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		_ = cm.Disconnect(dctx)
		cancel()
	})
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *cloudSubscriber) receive(payload []byte) {
	var ev struct {
		ID      string `json:"id"`
		Subject string `json:"subject"`
		Data    struct {
			Seq int `json:"seq"`
		} `json:"data"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	bySeq := s.ids[ev.Subject]
	if bySeq == nil {
		bySeq = map[int]map[string]bool{}
		s.ids[ev.Subject] = bySeq
	}
	if bySeq[ev.Data.Seq] == nil {
		bySeq[ev.Data.Seq] = map[string]bool{}
		s.firsts[ev.Subject] = append(s.firsts[ev.Subject], ev.Data.Seq)
	}
	bySeq[ev.Data.Seq][ev.ID] = true
}

func (s *cloudSubscriber) has(device string, seq int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids[device][seq]) > 0
}

func (s *cloudSubscriber) firstArrivals(device string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.firsts[device]...)
}

func (s *cloudSubscriber) readingsWithSeveralIDs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, bySeq := range s.ids {
		for _, ids := range bySeq {
			if len(ids) > 1 {
				n++
			}
		}
	}
	return n
}

func (s *cloudSubscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
