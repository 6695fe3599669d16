package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/flowgate/flowgate/gateway/brokertls/brokertlstest"
	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

const securityCatalog = libraryCatalog + `
  device.online:
    category: system
    version: 1.0.0
    schema:
      fields:
        client_id: {type: string, required: true}
        remote: {type: string}
        auth: {type: string, enum: [password, certificate, anonymous]}
  device.offline:
    category: system
    version: 1.0.0
    schema:
      fields:
        client_id: {type: string, required: true}
        reason: {type: string, required: true}
        will: {type: bool}
`

// securePassword is truck-b's password; neither it nor its hash may ever
// appear in a log line or an /api answer.
const securePassword = "Tr0ub4dor&3-truck-b"

// secureGateway is a running gateway with a TLS-only broker, mutual TLS
// and a revocation list, and what the test needs to talk to it.
type secureGateway struct {
	*Gateway
	ca            *brokertlstest.CA
	good, revoked brokertlstest.Issued
	hash          string
	logs          *uplinktest.SyncBuffer
	local         *localCollector
	devicesFile   string
	crlFile       string
	configFile    string
	cloud         *uplinktest.Collector
	writeDevices  func(extra string)
	stop          func()
}

// startSecureGateway writes the PKI and a config that turns the plain
// listener off and opens a TLS one, and runs the gateway until the test
// ends.
func startSecureGateway(t *testing.T, extraBroker string) *secureGateway {
	t.Helper()
	cloud := uplinktest.StartMosquitto(t)
	sg := &secureGateway{ca: brokertlstest.NewCA(t, "devices CA"), logs: &uplinktest.SyncBuffer{}}
	sg.cloud = uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	dir := filepath.Dir(sg.ca.File)
	sg.ca.Server("server")
	sg.good, sg.revoked = sg.ca.Client("reefer-1"), sg.ca.Client("reefer-2")
	sg.crlFile = sg.ca.CRL(filepath.Join(dir, "crl.pem"), 1, sg.revoked.Cert)
	h, err := bcrypt.GenerateFromPassword([]byte(securePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sg.hash = string(h)
	cfg := fmt.Sprintf(`gateway: {id: gw-sec, shutdown_timeout: 5s, reload_check: 50ms}
log: {level: debug}
broker:
  listen: "off"
  tls:
    listen: %q
    cert_file: server.pem
    key_file: server-key.pem
    client_ca_file: ca.pem
    crl_file: crl.pem
%s
http: {listen: %q}
profiles_file: profiles.yaml
catalog_file: catalog.yaml
devices_file: devices.yaml
ingest:
  max_payload_bytes: 1000
  topics: [{match: devices/+/env, type: env.reading}]
routes:
  - {name: cloud, types: [env.reading]}
  - {name: presence, types: [device.online, device.offline], to: [local], local_topic: "presence/{subject}"}
uplink: {url: %q, topic: "cloud/{type}/{subject}", store_dir: memory}
`, uplinktest.FreeAddr(t), extraBroker, uplinktest.FreeAddr(t), cloud.URL())
	sg.configFile = filepath.Join(dir, "flowgate.yaml")
	sg.devicesFile = filepath.Join(dir, "devices.yaml")
	sg.writeDevices = func(extra string) {
		t.Helper()
		devs := fmt.Sprintf(`devices:
  - {id: reefer-1, cert_cn: reefer-1, kind: reefer, metadata: {site: depot-12}}
  - {id: reefer-2, cert_cn: reefer-2, kind: reefer}
  - {id: truck-b, password_hash: %q, subscribe: ["commands/truck-b/#"]}
%s`, sg.hash, extra)
		writeFileAtomic(t, sg.devicesFile, devs)
	}
	sg.writeDevices("")
	for name, text := range map[string]string{"flowgate.yaml": cfg, "profiles.yaml": libraryProfiles, "catalog.yaml": securityCatalog} {
		writeFileAtomic(t, filepath.Join(dir, name), text)
	}
	c, err := config.Load(sg.configFile, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(c, slog.New(slog.NewTextHandler(sg.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	sg.Gateway = g
	g.ReloadFrom(func() (*config.Config, error) {
		return config.Load(sg.configFile, func(string) (string, bool) { return "", false })
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	sg.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway stopped with %v", err)
			}
		})
	}
	t.Cleanup(func() {
		sg.stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", sg.logs.String())
		}
	})
	select {
	case <-g.Ready():
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway not ready after 10s")
	}
	sg.local = &localCollector{}
	for _, f := range []string{"presence/#", "$flowgate/deadletter/+"} {
		if err := g.Subscribe(f, sg.local.add); err != nil {
			t.Fatal(err)
		}
	}
	return sg
}

// dial opens a TLS connection to the broker, presenting client if it is
// not nil.
func (sg *secureGateway) dial(t *testing.T, client *brokertlstest.Issued) (net.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", sg.BrokerTLSAddr(), sg.ca.ClientConfig(client))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// connect dials and sends CONNECT with paho (MQTT 5).
func (sg *secureGateway) connect(t *testing.T, client *brokertlstest.Issued, clientID, user, pass string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	return sg.connectTLS(t, sg.ca.ClientConfig(client), clientID, user, pass)
}

// connectTLS is connect with a TLS config of the test's own.
func (sg *secureGateway) connectTLS(t *testing.T, tc *tls.Config, clientID, user, pass string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", sg.BrokerTLSAddr(), tc)
	if err != nil {
		return nil, nil, err
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(pass), true
	}
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ack, nil
}

// TestSecurityEndToEnd is the end-to-end test: a device with
// mutual TLS connects and publishes; one with a revoked certificate and
// one with a wrong password are refused; a device cannot publish under
// another's prefix nor read its topics; a schema violation lands in the
// dead letters and the next valid message flows; presence events and
// /api/devices follow the device, and no secret leaks into logs or /api.
func TestSecurityEndToEnd(t *testing.T) {
	sg := startSecureGateway(t, "")
	if sg.BrokerAddr() != "" {
		t.Errorf("the plain listener is off but listens on %s", sg.BrokerAddr())
	}

	// mTLS: no username, no password; the certificate is the identity.
	dev, _, err := sg.connect(t, &sg.good, "reefer-1", "", "")
	if err != nil {
		t.Fatalf("device with a valid client certificate refused: %v", err)
	}
	online := sg.local.wait(t, "presence/reefer-1", `"type":"device.online"`)
	if !strings.Contains(online, `"subject":"reefer-1"`) || !strings.Contains(online, `"auth":"certificate"`) ||
		!strings.Contains(online, `"dataschema":"urn:flowgate:schema:device.online:1.0.0"`) {
		t.Errorf("device.online: %s", online)
	}
	catalogPublish(t, dev, "devices/reefer-1/env", `{"t": 41}`)
	ev := sg.cloud.WaitN(t, 1, 30*time.Second)[0]
	var ce struct{ Type, Subject, DataSchema string }
	if err := json.Unmarshal(ev.Payload, &ce); err != nil || ce.Subject != "reefer-1" ||
		ce.DataSchema != "urn:flowgate:schema:env.reading:1.0.0" {
		t.Errorf("cloud got %s (%v)", ev.Payload, err)
	}

	// A revoked certificate: refused in the TLS handshake.
	if _, _, err := sg.connect(t, &sg.revoked, "reefer-2", "", ""); err == nil {
		t.Error("a device with a revoked certificate was admitted")
	}
	// A certificate from another CA: refused as well (a Go client does not
	// even send it, since the broker names the CAs it accepts; without a
	// certificate or a password it is an unknown device).
	stranger := brokertlstest.NewCA(t, "stranger").Client("reefer-1")
	if _, _, err := sg.connect(t, &stranger, "reefer-1", "", ""); err == nil {
		t.Error("a certificate from another CA was admitted")
	}
	// A wrong password (over TLS without a client certificate): CONNACK 0x86.
	if _, ack, err := sg.connect(t, nil, "truck-b", "truck-b", "wrong"); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("wrong password: %v %+v", err, ack)
	}
	truck, _, err := sg.connect(t, nil, "truck-b", "truck-b", securePassword)
	if err != nil {
		t.Fatalf("truck-b with its password: %v", err)
	}

	// reefer-1 cannot publish under truck-b's prefix, nor read its topics
	// or the dead letters.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := dev.Publish(ctx, &paho.Publish{Topic: "devices/truck-b/env", QoS: 1, Payload: []byte(`{"t":1}`)}); err == nil && resp.ReasonCode < 0x80 {
		t.Errorf("reefer-1 published under truck-b's prefix: %+v", resp)
	}
	for _, filter := range []string{"devices/truck-b/#", "commands/truck-b/#", "$flowgate/deadletter/+", "flowgate/#"} {
		// paho reports a refusal as an error along with the SUBACK.
		sa, err := dev.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x87 {
			t.Errorf("reefer-1 subscribing to %s: %v %+v, want 0x87", filter, err, sa)
		}
	}

	// A schema violation is a dead letter; the next valid reading flows.
	catalogPublish(t, dev, "devices/reefer-1/env", `{"t": 41, "s": "broken"}`)
	dl := sg.local.wait(t, "$flowgate/deadletter/reefer-1", `"reason":"schema_violation"`)
	if !strings.Contains(dl, `"device":"reefer-1"`) {
		t.Errorf("dead letter %s", dl)
	}
	catalogPublish(t, dev, "devices/reefer-1/env", `{"t": 50, "s": "defrost"}`)
	if got := sg.cloud.WaitN(t, 2, 10*time.Second)[1]; !strings.Contains(string(got.Payload), `"state":"defrost"`) {
		t.Errorf("after the dead letter the cloud got %s", got.Payload)
	}

	api := catalogGet(t, "http://"+sg.httpAddr.String()+"/api/devices")
	var devs struct {
		Online  int
		Devices []struct {
			ID       string
			Online   bool
			Messages int
			Login    []string
		}
	}
	if err := json.Unmarshal([]byte(api), &devs); err != nil || devs.Online != 2 || len(devs.Devices) != 3 ||
		devs.Devices[0].ID != "reefer-1" || !devs.Devices[0].Online || devs.Devices[0].Messages != 3 ||
		devs.Devices[2].ID != "truck-b" || !devs.Devices[2].Online || devs.Devices[1].Online {
		t.Errorf("/api/devices: %s (%v)", api, err)
	}

	// Offline on DISCONNECT.
	_ = truck.Disconnect(&paho.Disconnect{})
	off := sg.local.wait(t, "presence/truck-b", `"type":"device.offline"`)
	if !strings.Contains(off, `"reason":"disconnect"`) {
		t.Errorf("device.offline: %s", off)
	}
	metrics := catalogGet(t, "http://"+sg.httpAddr.String()+"/metrics")
	for _, want := range []string{"flowgate_devices_online 1", "flowgate_tls_handshake_failures_total 1",
		"flowgate_auth_failures_total 2", `flowgate_acl_denied_total{action="publish"} 1`,
		`flowgate_device_disconnects_total{reason="disconnect"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(sg.logs.String())
	}

	// No secret anywhere: not the password, not its hash, not a key.
	sg.stop()
	out := sg.logs.String() + api + catalogGet2(t, sg)
	for _, secret := range []string{securePassword, sg.hash, sg.hash[7:], "PRIVATE KEY", "$2a$"} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret (%.12s…) appears in the logs or /api output", secret)
		}
	}
	if !strings.Contains(sg.logs.String(), "connection refused") {
		t.Error("the logs were not captured: the secret check proves nothing")
	}
}

// catalogGet2 is /api/catalog, read before the gateway stopped.
func catalogGet2(_ *testing.T, sg *secureGateway) string {
	return string(sg.cfg.Library.Catalog.JSON())
}

// TestKeepAliveAndWill connects with a raw MQTT 3.1.1 CONNECT over mutual
// TLS, with a Will and a 1 s keep-alive, and goes silent: the broker drops
// it after 1.5 s, publishes its Will (which goes through the pipeline) and
// the device goes offline with reason keepalive_timeout.
func TestKeepAliveAndWill(t *testing.T) {
	sg := startSecureGateway(t, "")
	conn, err := sg.dial(t, &sg.good)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(connectPacket("reefer-1", 1, "devices/reefer-1/env", `{"t": 32}`)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, ack); err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK %x, %v", ack, err)
	}
	off := sg.local.wait(t, "presence/reefer-1", `"type":"device.offline"`)
	if !strings.Contains(off, `"reason":"keepalive_timeout"`) || !strings.Contains(off, `"will":true`) {
		t.Errorf("device.offline: %s", off)
	}
	if ev := sg.cloud.WaitN(t, 1, 30*time.Second)[0]; !strings.Contains(string(ev.Payload), `"temperature":0`) {
		t.Errorf("the Will reached the cloud as %s", ev.Payload)
	}
}

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session, a Will at
// QoS 0 and no username.
func connectPacket(clientID string, keepAlive uint16, willTopic, willPayload string) []byte {
	body := append(mqttString("MQTT"), 4, 0x02|0x04, byte(keepAlive>>8), byte(keepAlive))
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(willTopic)...)
	body = append(body, mqttString(willPayload)...)
	return append([]byte{0x10, byte(len(body))}, body...) // bodies here are under 128 bytes
}

// localCollector keeps what the gateway's in-process subscriptions get.
type localCollector struct {
	mu   sync.Mutex
	msgs []uplinktest.Message
}

func (c *localCollector) add(topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, uplinktest.Message{Topic: topic, Payload: bytes.Clone(payload)})
}

// wait returns the first message on topic containing substr, polling
// until a deadline.
func (c *localCollector) wait(t *testing.T, topic, substr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		for _, m := range c.msgs {
			if m.Topic == topic && strings.Contains(string(m.Payload), substr) {
				c.mu.Unlock()
				return string(m.Payload)
			}
		}
		n := len(c.msgs)
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no message on %s containing %s among %d", topic, substr, n)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// writeFileAtomic replaces a file in one step (a file watcher never sees
// half of it).
func writeFileAtomic(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryReloadAdmitsNewDevice: a device with a valid certificate but
// not in the registry is refused; the devices file is edited to add it and
// the gateway, seeing the file change, reloads and admits it. A devices
// file with an error is then refused and the registry before it stays.
func TestRegistryReloadAdmitsNewDevice(t *testing.T) {
	sg := startSecureGateway(t, "")
	newcomer := sg.ca.Client("reefer-3")
	if _, ack, err := sg.connect(t, &newcomer, "reefer-3", "", ""); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("a device not in the registry: %v %+v, want CONNACK 0x86", err, ack)
	}
	sg.writeDevices("  - {id: reefer-3, cert_cn: reefer-3, kind: reefer}\n")
	sg.waitMetric(t, `flowgate_reloads_total{result="applied"} 1`)
	if _, _, err := sg.connect(t, &newcomer, "reefer-3", "", ""); err != nil {
		t.Fatalf("after the reload reefer-3 is refused: %v", err)
	}

	// A duplicate id: refused, reported, and the registry stays as it was.
	sg.writeDevices("  - {id: reefer-3, cert_cn: reefer-3}\n  - {id: reefer-3, cert_cn: reefer-4}\n")
	sg.waitMetric(t, `flowgate_reloads_total{result="refused"} 1`)
	if !strings.Contains(sg.logs.String(), "duplicate device id") {
		t.Error("the refused reload does not say why")
	}
	if _, _, err := sg.connect(t, &newcomer, "reefer-3-b", "", ""); err != nil {
		t.Errorf("after a refused reload reefer-3 is refused: %v", err)
	}
	if _, _, err := sg.connect(t, &sg.good, "reefer-1", "", ""); err != nil {
		t.Errorf("after a refused reload reefer-1 is refused: %v", err)
	}
}

// waitMetric polls /metrics until it has line.
func (sg *secureGateway) waitMetric(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(catalogGet(t, "http://"+sg.httpAddr.String()+"/metrics"), line) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never had %s; logs:\n%s", line, sg.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// TestBrokerLimits: each limit refuses what exceeds it and is counted.
func TestBrokerLimits(t *testing.T) {
	sg := startSecureGateway(t, `  max_clients: 1
  max_packet_bytes: 1024
  connection_rate: 0.1
  connection_burst: 3
  connection_rate_exempt: []`)
	a, _, err := sg.connect(t, &sg.good, "reefer-1", "", "") // 1st connection of the burst
	if err != nil {
		t.Fatal(err)
	}
	if _, ack, err := sg.connect(t, nil, "truck-b", "truck-b", securePassword); err == nil || ack == nil || ack.ReasonCode != 0x89 {
		t.Errorf("a second client past max_clients 1: %v %+v, want CONNACK 0x89 server busy", err, ack)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = a.Publish(ctx, &paho.Publish{Topic: "devices/reefer-1/env", QoS: 0, Payload: bytes.Repeat([]byte("x"), 2000)})
	sg.waitMetric(t, "flowgate_devices_online 0")                             // disconnected for the packet's size
	if _, _, err := sg.connect(t, &sg.good, "reefer-1", "", ""); err != nil { // 3rd
		t.Fatalf("third connection within the burst: %v", err)
	}
	if _, _, err := sg.connect(t, &sg.good, "reefer-1-b", "", ""); err == nil { // 4th: past the burst
		t.Error("a connection past the rate limit was admitted")
	}
	for _, want := range []string{`flowgate_broker_limit_exceeded_total{limit="max_clients"} 1`,
		`flowgate_broker_limit_exceeded_total{limit="packet_size"} 1`,
		`flowgate_broker_limit_exceeded_total{limit="connection_rate"} 1`,
		`flowgate_device_disconnects_total{reason="protocol_error"} 1`} {
		sg.waitMetric(t, want)
	}
}

// TestRevokedCertificateCannotResume: a device whose certificate is
// revoked cannot get back in by resuming the TLS session it had before
// (and so be admitted on its certificate's name without a password).
func TestRevokedCertificateCannotResume(t *testing.T) {
	sg := startSecureGateway(t, "")
	tc := sg.ca.ClientConfig(&sg.good)
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	var resumed bool
	tc.VerifyConnection = func(cs tls.ConnectionState) error { resumed = cs.DidResume; return nil }
	for i := range 2 {
		c, _, err := sg.connectTLS(t, tc, "reefer-1", "", "")
		if err != nil {
			t.Fatalf("connection %d with a valid certificate: %v", i+1, err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
	if !resumed {
		t.Fatal("the second connection did not resume the TLS session: the test would prove nothing")
	}
	sg.ca.CRL(sg.crlFile, 2, sg.revoked.Cert, sg.good.Cert)
	fi, err := os.Stat(sg.crlFile)
	if err != nil {
		t.Fatal(err)
	}
	next := fi.ModTime().Add(2 * time.Second) // seen whatever the file system's timestamp granularity
	if err := os.Chtimes(sg.crlFile, next, next); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sg.connectTLS(t, tc, "reefer-1", "", ""); err == nil {
		t.Fatalf("a revoked certificate was admitted (session resumed: %v)", resumed)
	}
	if !strings.Contains(sg.logs.String(), "client certificate revoked") {
		t.Errorf("the refusal is not logged as a revocation:\n%s", sg.logs.String())
	}
}
