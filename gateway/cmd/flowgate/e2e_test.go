package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// flowgateBin is the real binary, built once for the package's tests.
var flowgateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowgate-e2e")
	if err != nil {
		panic(err)
	}
	flowgateBin = filepath.Join(dir, "flowgate")
	build := exec.Command("go", "build", "-race", "-o", flowgateBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flowgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gatewayProc is a running flowgate process.
type gatewayProc struct {
	cmd      *exec.Cmd
	mqtt     string // host:port of the embedded broker
	http     string
	log      *uplinktest.SyncBuffer
	exited   chan struct{}
	exitCode int
}

// testConfig is a gateway config with two devices (password "pw") and a
// watcher allowed to read the dead-letter topic, uplinked to cloudURL. Each
// pair in edits replaces a string of the config before it is written.
func testConfig(t *testing.T, cloudURL, mqttAddr, httpAddr string, edits ...string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`gateway:
  id: gw-test
  shutdown_timeout: 10s
log:
  level: debug
broker:
  listen: %[2]s
http:
  listen: %[3]s
devices:
  - id: dev-1
    password_hash: %[4]q
  - id: dev-2
    password_hash: %[4]q
  - id: watcher
    password_hash: %[4]q
    subscribe: ["flowgate/#", "$flowgate/deadletter/#"]
ingest:
  max_payload_bytes: 1024
  topics:
    - match: devices/+/env
      type: env.reading
routes:
  - name: cloud
    filter: 'data.skip != true'
uplink:
  url: %[1]s
  topic: cloud/{gateway}/{type}/{subject}
  store_dir: %[5]s
`, cloudURL, mqttAddr, httpAddr, hash, filepath.Join(t.TempDir(), "outbox"))
	cfg = strings.NewReplacer(edits...).Replace(cfg)
	path := filepath.Join(t.TempDir(), "flowgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startGateway runs `flowgate run -c cfg` and waits until /healthz is 200.
func startGateway(t *testing.T, cfg, mqttAddr, httpAddr string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{mqtt: mqttAddr, http: httpAddr, log: &uplinktest.SyncBuffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(flowgateBin, "run", "-c", cfg)
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = g.cmd.Wait()
		g.exitCode = g.cmd.ProcessState.ExitCode()
		close(g.exited)
	}()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			t.Logf("flowgate log:\n%s", g.log.String())
		}
	})
	waitFor(t, 10*time.Second, "gateway healthy", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return g
}

// stop sends SIGTERM and returns the exit code.
func (g *gatewayProc) stop(t *testing.T) int {
	t.Helper()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
		return g.exitCode
	case <-time.After(15 * time.Second):
		t.Fatal("flowgate did not exit within 15s of SIGTERM")
		return -1
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// device connects to the gateway as an MQTT v5 client (client id
// "{user}-client") and returns the client and the CONNACK.
func device(t *testing.T, addr, user, pass string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	return connect(t, addr, &paho.Connect{ClientID: user + "-client", Username: user, Password: []byte(pass)})
}

// connect sends CONNECT cp (credentials flagged when set) to the gateway.
func connect(t *testing.T, addr string, cp *paho.Connect) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: cp.ClientID, Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp.CleanStart, cp.KeepAlive = true, 30
	cp.UsernameFlag, cp.PasswordFlag = cp.Username != "", cp.Password != nil
	ack, err := c.Connect(ctx, cp)
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, ack, err
}

func publish(t *testing.T, c *paho.Client, topic, payload string) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if err != nil && resp == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return resp
}

type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

func decodeEvent(t *testing.T, m uplinktest.Message) cloudEvent {
	t.Helper()
	var ev cloudEvent
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatalf("cloud got a non-CloudEvent %q: %v", m.Payload, err)
	}
	return ev
}

// TestEndToEnd: a device publishes to the real flowgate binary, which
// forwards a CloudEvent to a real mosquitto standing in for the cloud.
func TestEndToEnd(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	g := startGateway(t, testConfig(t, cloud.URL(), mqttAddr, httpAddr), mqttAddr, httpAddr)

	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	if r := publish(t, dev, "devices/dev-1/env", `{"temperature":21.5,"humidity":40}`); r.ReasonCode >= 0x80 {
		t.Fatalf("publish refused: %#x", r.ReasonCode)
	}
	msgs := got.WaitN(t, 1, 10*time.Second)
	m := msgs[0]
	ev := decodeEvent(t, m)
	if m.Topic != "cloud/gw-test/env.reading/dev-1" {
		t.Errorf("topic %q", m.Topic)
	}
	if ev.SpecVersion != "1.0" || ev.Type != "env.reading" || ev.Subject != "dev-1" ||
		ev.Source != "/gateways/gw-test/devices/dev-1" || ev.DataContentType != "application/json" {
		t.Errorf("attributes: %+v", ev)
	}
	if _, err := uuid.Parse(ev.ID); err != nil {
		t.Errorf("id %q is not a UUID: %v", ev.ID, err)
	}
	if m.UserProperties["id"] != ev.ID {
		t.Errorf("user property id %q, event id %q", m.UserProperties["id"], ev.ID)
	}
	if m.ContentType != "application/cloudevents+json" {
		t.Errorf("content type %q", m.ContentType)
	}
	if ev.Time.Before(before) || ev.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("time %v not around now", ev.Time)
	}
	var data map[string]float64
	if err := json.Unmarshal(ev.Data, &data); err != nil || data["temperature"] != 21.5 || data["humidity"] != 40 {
		t.Errorf("data %s", ev.Data)
	}

	// An MQTT 3.1.1 device (Debian's mosquitto_pub) is welcome too.
	pub := exec.Command(mosquittoPub(t), "-V", "mqttv311", "-h", "127.0.0.1", "-p", port(mqttAddr),
		"-u", "dev-2", "-P", "pw", "-i", "dev-2-v311", "-q", "1", "-t", "devices/dev-2/env", "-m", `{"temperature":5}`)
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	ev2 := decodeEvent(t, got.WaitN(t, 2, 10*time.Second)[1])
	if ev2.Subject != "dev-2" || ev2.ID == ev.ID {
		t.Errorf("3.1.1 event: %+v (first id %s)", ev2, ev.ID)
	}

	var h struct {
		Status          string `json:"status"`
		BrokerListening bool   `json:"broker_listening"`
		UplinkConnected bool   `json:"uplink_connected"`
		Devices         int    `json:"devices_connected"`
	}
	// mosquitto_pub has gone; its event can reach the cloud before the
	// broker has seen the connection close, so wait for the count.
	var herr error
	waitFor(t, 10*time.Second, "healthz to count one device", func() bool {
		herr = json.Unmarshal([]byte(get(t, "http://"+httpAddr+"/healthz")), &h)
		return herr != nil || h.Devices == 1
	})
	if herr != nil || h.Status != "ok" || !h.BrokerListening || !h.UplinkConnected || h.Devices != 1 {
		t.Errorf("healthz: %+v (%v)", h, herr)
	}

	if code := g.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if !strings.Contains(g.log.String(), "gateway stopped") {
		t.Error("no orderly shutdown in the log")
	}
}

// TestSecurity: wrong passwords are refused; publishing under another
// device's prefix is refused and nothing reaches the cloud.
func TestSecurity(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	startGateway(t, testConfig(t, cloud.URL(), mqttAddr, httpAddr), mqttAddr, httpAddr)

	if _, ack, err := device(t, mqttAddr, "dev-1", "wrong"); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("wrong password: err %v, connack %+v; want refusal 0x86", err, ack)
	}
	if _, ack, err := device(t, mqttAddr, "nobody", "pw"); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("unknown user: err %v, connack %+v", err, ack)
	}
	// dev-1 may not take dev-2's client id (and so its session).
	if _, ack, err := connect(t, mqttAddr, &paho.Connect{ClientID: "dev-2", Username: "dev-1", Password: []byte("pw")}); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("client id takeover: err %v, connack %+v", err, ack)
	}
	// Nor leave a Will that publishes outside its prefix.
	will := &paho.WillMessage{Topic: "devices/dev-2/env", QoS: 1, Retain: true, Payload: []byte(`{"forged":true}`)}
	if _, ack, err := connect(t, mqttAddr, &paho.Connect{ClientID: "dev-1-w", Username: "dev-1", Password: []byte("pw"), WillMessage: will}); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("foreign will: err %v, connack %+v", err, ack)
	}
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if r := publish(t, dev, "devices/dev-2/env", `{"forged":true}`); r.ReasonCode != 0x87 {
		t.Errorf("publish under dev-2's prefix: reason %#x, want 0x87 not authorized", r.ReasonCode)
	}
	publish(t, dev, "devices/dev-1/env", `{"genuine":true}`)
	msgs := got.WaitN(t, 1, 10*time.Second)
	if ev := decodeEvent(t, msgs[0]); string(ev.Data) != `{"genuine":true}` {
		t.Errorf("cloud got %s", ev.Data)
	}
	// The forged publish came first; had it been forwarded it would be here.
	if all := got.Messages(); len(all) != 1 {
		t.Errorf("cloud got %d messages, want 1", len(all))
	}
	// Subscribing outside what the registry allows is refused too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, _ := dev.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/dev-2/#", QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x87 {
		t.Errorf("subscription to another device's topics: %+v, want reason 0x87 not authorized", sa)
	}
}

// TestDeadLetter: malformed JSON, oversized payloads and unknown topics go
// to the dead-letter topic with their reason, are counted, and the next good
// message still reaches the cloud.
func TestDeadLetter(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	startGateway(t, testConfig(t, cloud.URL(), mqttAddr, httpAddr), mqttAddr, httpAddr)

	watcher, _, err := device(t, mqttAddr, "watcher", "pw")
	if err != nil {
		t.Fatal(err)
	}
	dead := make(chan []byte, 10)
	watcher.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		dead <- pr.Packet.Payload
		return true, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := watcher.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$flowgate/deadletter/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ topic, payload, reason string }{
		{"devices/dev-1/env", `{"temperature": 21.5, "humidity":`, "malformed_json"},
		{"devices/dev-1/env", `{"pad":"` + strings.Repeat("x", 2000) + `"}`, "too_large"},
		{"devices/dev-1/unknown", `{"a":1}`, "unknown_topic"},
	} {
		if r := publish(t, dev, c.topic, c.payload); r.ReasonCode >= 0x80 {
			t.Errorf("%s: publish not acknowledged: %#x", c.reason, r.ReasonCode)
		}
		select {
		case p := <-dead:
			var dl struct{ Reason, Error, Device, Topic string }
			if err := json.Unmarshal(p, &dl); err != nil || dl.Reason != c.reason || dl.Device != "dev-1" ||
				dl.Topic != c.topic || dl.Error == "" {
				t.Errorf("dead letter %s: %+v (%v)", c.reason, dl, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no dead letter for %s", c.reason)
		}
	}
	publish(t, dev, "devices/dev-1/env", `{"temperature":22}`)
	msgs := got.WaitN(t, 1, 10*time.Second)
	if ev := decodeEvent(t, msgs[0]); string(ev.Data) != `{"temperature":22}` || len(got.Messages()) != 1 {
		t.Errorf("cloud got %d messages, first %s", len(got.Messages()), ev.Data)
	}
	metrics := get(t, "http://"+httpAddr+"/metrics")
	for _, want := range []string{
		`flowgate_dead_letters_total{reason="malformed_json"} 1`,
		`flowgate_dead_letters_total{reason="too_large"} 1`,
		`flowgate_dead_letters_total{reason="unknown_topic"} 1`,
		`flowgate_messages_received_total 4`,
		`flowgate_uplink_connected 1`,
		`flowgate_devices_connected 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	waitFor(t, 5*time.Second, "forwarded counter", func() bool {
		return strings.Contains(get(t, "http://"+httpAddr+"/metrics"), "flowgate_events_forwarded_total 1")
	})
	// The one event forwarded was written in a group commit, and its
	// PUBACK came back within 10 s: both histograms count it.
	metrics = get(t, "http://"+httpAddr+"/metrics")
	for _, want := range []string{
		`flowgate_uplink_ack_seconds_bucket{le="10"} 1`,
		`flowgate_uplink_ack_seconds_count 1`,
		`flowgate_outbox_commit_seconds_bucket{le="+Inf"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, "flowgate_outbox_commit_seconds_count 0") {
		t.Error("no group commit counted in flowgate_outbox_commit_seconds")
	}
}

// TestWillIsAnEvent: a Will under the device's own prefix, published by the
// broker when the device vanishes, goes through the pipeline like any
// publish and reaches the cloud.
func TestWillIsAnEvent(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	startGateway(t, testConfig(t, cloud.URL(), mqttAddr, httpAddr), mqttAddr, httpAddr)

	conn, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "dev-2", Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "dev-2", CleanStart: true, KeepAlive: 30,
		Username: "dev-2", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true,
		WillMessage: &paho.WillMessage{Topic: "devices/dev-2/env", QoS: 1, Payload: []byte(`{"online":false}`)}}); err != nil {
		t.Fatal(err)
	}
	conn.Close() // vanish without DISCONNECT: the broker sends the Will
	ev := decodeEvent(t, got.WaitN(t, 1, 10*time.Second)[0])
	if ev.Subject != "dev-2" || string(ev.Data) != `{"online":false}` {
		t.Errorf("will event: %+v", ev)
	}
}

// TestShutdownWithCloudDown: with the cloud unreachable and the uplink's
// queue full, a device's next publish blocks; SIGTERM must still stop the
// gateway within its shutdown timeout, leaving that publish unacknowledged.
func TestShutdownWithCloudDown(t *testing.T) {
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cloudURL := "mqtt://" + uplinktest.FreeAddr(t) // nothing listens there
	cfg := testConfig(t, cloudURL, mqttAddr, httpAddr, "shutdown_timeout: 10s", "shutdown_timeout: 2s",
		"topic: cloud/{gateway}/{type}/{subject}", "topic: cloud/{gateway}/{type}/{subject}\n  queue_size: 1\n  when_full: reject")
	g := startGateway(t, cfg, mqttAddr, httpAddr)
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if r := publish(t, dev, "devices/dev-1/env", `{"n":1}`); r.ReasonCode >= 0x80 {
		t.Fatalf("first publish refused: %#x", r.ReasonCode)
	}
	second := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := dev.Publish(ctx, &paho.Publish{Topic: "devices/dev-1/env", QoS: 1, Payload: []byte(`{"n":2}`)})
		second <- err
	}()
	waitFor(t, 5*time.Second, "the second publish to reach the pipeline", func() bool {
		return strings.Contains(get(t, "http://"+httpAddr+"/metrics"), "flowgate_messages_received_total 2")
	})
	start := time.Now()
	code := g.stop(t)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("shutdown took %v with a 2s timeout", took)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1: an accepted event was left undelivered", code)
	}
	if err := <-second; err == nil {
		t.Error("the blocked publish was acknowledged although the uplink never took it")
	}
	if !strings.Contains(g.log.String(), "events left undelivered: 1 not acknowledged") {
		t.Error("the undelivered event is not reported in the log")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func mosquittoPub(t *testing.T) string {
	for _, p := range []string{"mosquitto_pub", "/usr/bin/mosquitto_pub"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mosquitto_pub not installed (apt-get install mosquitto-clients)")
	}
	t.Skip("mosquitto_pub not installed; apt-get install mosquitto-clients")
	return ""
}

// abs is path made absolute, for configs copied out of the repository.
func abs(t *testing.T, path string) string {
	t.Helper()
	a, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDemo runs what `make run` runs, on free ports, and checks that the
// narrative shows readings going in, a dead letter, and events reaching the
// stand-in cloud; then Ctrl-C (SIGINT) stops everything cleanly.
func TestDemo(t *testing.T) {
	demo, err := os.ReadFile("../../../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	configs := abs(t, "../../../configs")
	cfg := strings.NewReplacer("127.0.0.1:11883", uplinktest.FreeAddr(t), "127.0.0.1:18080", uplinktest.FreeAddr(t),
		"127.0.0.1:18830", uplinktest.FreeAddr(t), "store_dir: ../.flowgate/demo-outbox", "store_dir: "+t.TempDir(),
		"track: tracks/", "track: "+configs+"/tracks/", "devices_file: ", "devices_file: "+configs+"/",
		"profiles_file: ", "profiles_file: "+configs+"/", "files: [rules/", "files: ["+configs+"/rules/").Replace(string(demo))
	path := filepath.Join(t.TempDir(), "demo.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &uplinktest.SyncBuffer{}
	cmd := exec.Command(flowgateBin, "demo", "-c", path, "-interval", "50ms")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})
	// The facility scenario's rooms publish (a few payloads malformed on
	// purpose), and the warehouse rules send what they find to the cloud:
	// a room too warm (a spiking probe, or the van's cab with its door
	// open), never a raw reading.
	// The spiking probe sends one spike in a hundred readings, twenty
	// readings a second, each waiting for its PUBACK; a loaded machine
	// slows that down, hence the generous bound.
	deadline := time.Now().Add(90 * time.Second)
	for _, line := range []string{"device  room-", "DEAD    room-", "warehouse.too_warm.started id="} {
		waitFor(t, time.Until(deadline), "a demo line with "+strconv.Quote(line), func() bool {
			return strings.Contains(out.String(), line)
		})
	}
	if s := out.String(); strings.Contains(s, "env.reading id=") {
		t.Error("a raw reading reached the cloud; only the rules' notable events should")
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("demo exited with %v after SIGINT", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop within 15s of SIGINT")
	}
}
