package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/gateway/brokertls/brokertlstest"
)

func TestBrokerSecurityDefaults(t *testing.T) {
	c, err := Parse("f.yaml", []byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Broker
	if b.PlainListen() != ":1883" || b.TLS.Listen != "" || b.ConnectionRate != 20 || b.ConnectionBurst != 100 ||
		len(b.ConnectionRateExempt) != 2 || b.ReceiveMaximum != 1024 || b.MaxInflight != 1024 || b.MaxQueued != 1024 {
		t.Errorf("defaults: %+v", b)
	}
}

// A TLS-only broker with mutual TLS, the files relative to the config, and
// a device that logs in with its certificate alone.
func TestBrokerTLSConfig(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	srv := ca.Server("server")
	dir := filepath.Dir(ca.File)
	ca.CRL(filepath.Join(dir, "crl.pem"), 1)
	cfg := minimal + `broker:
  listen: "off"
  tls:
    listen: 127.0.0.1:8883
    cert_file: server.pem
    key_file: server-key.pem
    client_ca_file: ca.pem
    require_client_cert: true
    crl_file: crl.pem
devices:
  - {id: cam-1, cert_cn: cam-1.example}
`
	path := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.PlainListen() != "" || c.Broker.TLS.CertFile != srv.CertFile || c.Broker.TLS.CRLFile != filepath.Join(dir, "crl.pem") ||
		c.Devices[0].CertCN != "cam-1.example" {
		t.Errorf("broker %+v, device %+v", c.Broker, c.Devices[0])
	}
}

func TestBrokerSecurityErrors(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	other := brokertlstest.NewCA(t, "other CA")
	srv := ca.Server("server")
	badCRL := other.CRL(filepath.Join(t.TempDir(), "crl.pem"), 1)
	for _, c := range []struct {
		yaml, want string
	}{
		{"broker: {listen: \"\"}\n", "f.yaml:6:18: broker.listen: the plain listener is off"},
		{"broker: {listen: \"off\", tls: {listen: \":8883\"}}\n", "f.yaml:6:39: broker.tls.listen: needs cert_file and key_file"},
		{"broker: {tls: {cert_file: x.pem}}\n", "f.yaml:6:27: broker.tls.cert_file: is set but broker.tls.listen is not"},
		{fmt.Sprintf("broker: {tls: {listen: \":8883\", cert_file: %q, key_file: %q}}\n", srv.CertFile, ca.Client("x").KeyFile),
			"broker.tls.cert_file: tls: private key does not match public key"},
		{fmt.Sprintf("broker: {tls: {listen: \":8883\", cert_file: %q, key_file: %q, require_client_cert: true}}\n", srv.CertFile, srv.KeyFile),
			"broker.tls.require_client_cert: needs broker.tls.client_ca_file"},
		{fmt.Sprintf("broker:\n  tls:\n    require_client_cert: true\n    listen: \":8883\"\n    cert_file: %q\n    key_file: %q\n    client_ca_file: %q\n", srv.CertFile, srv.KeyFile, ca.File),
			"f.yaml:8:26: broker.tls.require_client_cert: the plain listener (broker.listen \":1883\") still lets devices in with a password and no certificate: set broker.listen: off"},
		{fmt.Sprintf("broker: {tls: {listen: \":8883\", cert_file: %q, key_file: %q, client_ca_file: %q, crl_file: %q}}\n",
			srv.CertFile, srv.KeyFile, ca.File, badCRL), "broker.tls.crl_file: brokertls: revocation list 1: not signed by a CA of client_ca_file"},
		{"broker: {connection_rate: -1}\n", "f.yaml:6:27: broker.connection_rate: must not be negative"},
		{"broker: {connection_rate: 50, connection_burst: 10}\n", "broker.connection_burst: must be at least 1 and at least connection_rate (50)"},
		{"broker: {connection_rate_exempt: [10.0.0.1]}\n", "broker.connection_rate_exempt[0]: \"10.0.0.1\" is not a CIDR prefix"},
		{"broker: {max_queued: 0}\n", "f.yaml:6:22: broker.max_queued: must be between 1 and 65535"},
		{"broker: {receive_maximum: 70000}\n", "broker.receive_maximum: must be between 1 and 65535"},
		{"devices: [{id: d}]\n", "f.yaml:6:11: devices[0]: device \"d\" needs password_hash"},
		{"devices: [{id: d, cert_cn: d}]\n", "devices[0].cert_cn: needs broker.tls.client_ca_file"},
		{"routes: [{name: p, types: [device.offline]}]\n", ""}, // presence types are known
	} {
		_, err := Parse("f.yaml", []byte(minimal+c.yaml), noEnv)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.yaml, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.yaml)
			continue
		}
		got := strings.Join(problems(t, err), "\n")
		if !strings.Contains(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.yaml, got, c.want)
		}
	}
}

// With a catalog, a rule that emits a type the catalog lacks is an error
// at the rule's emit (rules.Known.Types).
func TestRulesEmitCatalogued(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"catalog.yaml": `events:
  env.reading: {category: raw, version: "1", schema: {additional: true}}
  env.hot: {category: derived, version: "1", schema: {additional: true}}
`,
		"rules.yaml": `rules:
  - name: hot
    version: "1"
    match: {types: [env.reading]}
    threshold: {field: data.temperature, above: 8, clear_below: 7}
    emit: {type: env.hot, clear_type: env.cooled}
`,
		"flowgate.yaml": minimal + "catalog_file: catalog.yaml\nrules: {files: [rules.yaml]}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Load(filepath.Join(dir, "flowgate.yaml"), noEnv)
	if err == nil {
		t.Fatal("a rule emitting an uncatalogued type was accepted")
	}
	got := strings.Join(problems(t, err), "\n")
	if !strings.Contains(got, "rules.yaml:") || !strings.Contains(got, "env.cooled") || strings.Contains(got, `"env.hot"`) {
		t.Errorf("got %s", got)
	}
}
