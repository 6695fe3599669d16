package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

const libraryProfiles = `
profiles:
  reefer:
    event_type: env.reading
    fields:
      temperature: {path: t, unit: degF, decimals: 1}
      state: {path: s, type: string, optional: true}
`

const libraryCatalog = `
events:
  env.reading:
    category: raw
    version: 1.0.0
    sla: {class: telemetry}
    schema:
      fields:
        temperature: {type: number, unit: degC, required: true, min: -40, max: 40}
        state: {type: string, enum: [running, defrost]}
`

// TestLibraryEndToEnd runs the real gateway with a profile and a catalog:
// the catalog is served at /api/catalog and retained on its topic; a
// reading that breaks the catalog's schema lands in the dead letters with
// its reason and is counted; the device's next, valid reading reaches the
// cloud as canonical data enriched from the registry.
func TestLibraryEndToEnd(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	upstream := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	g := startLibraryGateway(t, cloud.URL()) // Run publishes the catalog, retained

	local := uplinktest.Subscribe(t, "mqtt://"+g.BrokerAddr(), "flowgate/#") // anonymous, as a consumer
	dead := uplinktest.Subscribe(t, "mqtt://"+g.BrokerAddr(), "$flowgate/deadletter/+")
	catalogMsg := local.WaitN(t, 1, 10*time.Second)[0]
	if catalogMsg.Topic != CatalogTopic || !strings.Contains(string(catalogMsg.Payload), `"name":"env.reading"`) {
		t.Fatalf("retained catalog: %s %s", catalogMsg.Topic, catalogMsg.Payload)
	}
	api := catalogGet(t, "http://"+g.httpAddr.String()+"/api/catalog")
	if api != string(catalogMsg.Payload) {
		t.Errorf("/api/catalog %s differs from the retained catalog %s", api, catalogMsg.Payload)
	}

	dev := catalogDevice(t, g.BrokerAddr())
	catalogPublish(t, dev, "devices/reefer-1/env", `{"t": 41, "s": "broken"}`)
	msgs := dead.WaitN(t, 1, 10*time.Second)
	var dl struct{ Reason, Error, Device, Payload string }
	if err := json.Unmarshal(msgs[0].Payload, &dl); err != nil || msgs[0].Topic != "$flowgate/deadletter/reefer-1" ||
		dl.Reason != "schema_violation" || dl.Device != "reefer-1" || !strings.Contains(dl.Error, "state") ||
		dl.Payload != `{"t": 41, "s": "broken"}` {
		t.Fatalf("dead letter %s %s: %+v (%v)", msgs[0].Topic, msgs[0].Payload, dl, err)
	}

	catalogPublish(t, dev, "devices/reefer-1/env", `{"t": 41, "s": "defrost"}`)
	ev := upstream.WaitN(t, 1, 10*time.Second)[0]
	var ce struct {
		Type, Subject string
		Data          json.RawMessage
	}
	if err := json.Unmarshal(ev.Payload, &ce); err != nil || ce.Type != "env.reading" || ce.Subject != "reefer-1" ||
		string(ce.Data) != `{"state":"defrost","temperature":5,"device":{"site":"depot-12"}}` {
		t.Errorf("cloud got %s (%v)", ev.Payload, err)
	}
	metrics := catalogGet(t, "http://"+g.httpAddr.String()+"/metrics")
	for _, want := range []string{`flowgate_dead_letters_total{reason="schema_violation"} 1`,
		`flowgate_dead_letters_total{reason="impossible_value"} 0`, `flowgate_dead_letters_total{reason="unknown_kind"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// startLibraryGateway writes a config with the profile and the catalog,
// loads it the way `flowgate run` does and runs the gateway until the test
// ends.
func startLibraryGateway(t *testing.T, cloudURL string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`gateway: {id: gw-lib, shutdown_timeout: 5s}
log: {level: error}
broker: {listen: %q, allow_anonymous: true}
http: {listen: %q}
profiles_file: profiles.yaml
catalog_file: catalog.yaml
devices:
  - {id: reefer-1, password_hash: %q, kind: reefer, metadata: {site: depot-12}}
ingest:
  topics: [{match: devices/+/env, type: env.reading}]
routes: [{name: cloud}]
uplink: {url: %q, topic: "cloud/{type}/{subject}", store_dir: memory}
`, uplinktest.FreeAddr(t), uplinktest.FreeAddr(t), hash, cloudURL)
	for name, text := range map[string]string{"flowgate.yaml": cfg, "profiles.yaml": libraryProfiles, "catalog.yaml": libraryCatalog} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return runGateway(t, filepath.Join(dir, "flowgate.yaml"))
}

// runGateway loads the config at path and runs a gateway on it until the
// test ends, when it must stop without error. It returns once the broker
// listens.
func runGateway(t *testing.T, path string) *Gateway {
	t.Helper()
	c, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway stopped with %v", err)
		}
	})
	select {
	case <-g.Ready():
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway not ready after 10s")
	}
	return g
}

// catalogDevice connects as device reefer-1.
func catalogDevice(t *testing.T, addr string) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "reefer-1", Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "reefer-1", CleanStart: true, KeepAlive: 30,
		Username: "reefer-1", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

func catalogPublish(t *testing.T, c *paho.Client, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if err != nil || resp.ReasonCode >= 0x80 {
		t.Fatalf("publish %s: %v %+v", topic, err, resp)
	}
}

func catalogGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// Without a catalog_file there is nothing to discover: 404, and nothing is
// published.
func TestCatalogWithoutFile(t *testing.T) {
	g := &Gateway{cfg: &config.Config{}}
	rec := httptest.NewRecorder()
	g.handleCatalog(rec, httptest.NewRequest("GET", "/api/catalog", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "catalog_file") {
		t.Errorf("GET /api/catalog: %d %s", rec.Code, rec.Body)
	}
	if err := g.publishCatalog(); err != nil { // g.broker is nil: it must not be touched
		t.Error(err)
	}
}
