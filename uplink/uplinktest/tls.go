package uplinktest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Certs are the PEM files of a small private PKI, for testing TLS against
// a broker on loopback. Every path is in a temporary directory of the test.
type Certs struct {
	CAFile      string // the CA that signed the certificates below
	ServerCert  string // the broker's certificate, for the IP address 127.0.0.1
	ServerKey   string
	ClientCert  string // a client certificate for mutual TLS, CN "gw1"
	ClientKey   string
	OtherCAFile string // a CA that signed nothing here: trusting it must fail
}

// NewCerts generates a CA, a server and a client certificate (ECDSA P-256,
// valid from an hour ago for a day) and a second, unrelated CA, and writes
// them as PEM files into a temporary directory of t.
func NewCerts(t testing.TB) Certs {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCA(t, "uplinktest CA")
	other, _ := newCA(t, "uplinktest other CA")
	c := Certs{
		CAFile:      writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw),
		OtherCAFile: writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw),
	}
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	c.ServerCert, c.ServerKey = issue(t, dir, "server", server, ca, caKey)
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gw1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	c.ClientCert, c.ClientKey = issue(t, dir, "client", client, ca, caKey)
	return c
}

// newCA returns a self-signed CA certificate and its key.
func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	setValidity(t, tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("uplinktest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("uplinktest: parse CA: %v", err)
	}
	return cert, key
}

// issue signs tmpl with the CA and writes NAME.pem and NAME-key.pem into
// dir, returning their paths.
func issue(t testing.TB, dir, name string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	setValidity(t, tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("uplinktest: create %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("uplinktest: marshal %s key: %v", name, err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der),
		writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("uplinktest: generate key: %v", err)
	}
	return key
}

// setValidity gives tmpl a random serial number and a day's validity,
// starting an hour ago to allow for clock skew.
func setValidity(t testing.TB, tmpl *x509.Certificate) {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatalf("uplinktest: serial number: %v", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("uplinktest: write %s: %v", name, err)
	}
	return path
}

// TLSMosquitto is a broker with two loopback listeners: TLS, for the client
// under test, and plain MQTT, for collectors (Subscribe speaks plain MQTT
// only). Addr is the TLS listener's address.
type TLSMosquitto struct {
	*Mosquitto
	plainPort int
}

// StartMosquittoTLS starts a broker whose TLS listener presents
// certs.ServerCert. With requireClientCert, it accepts only clients that
// present a certificate signed by certs.CAFile (mutual TLS). The broker is
// stopped when the test ends; it skips the test as StartMosquitto does.
func StartMosquittoTLS(t testing.TB, certs Certs, requireClientCert bool) *TLSMosquitto {
	t.Helper()
	plain := freePort(t)
	// The listener lines written by StartMosquitto come first, so these
	// settings apply to its listener, until the plain one is declared.
	m := StartMosquitto(t,
		"cafile "+certs.CAFile,
		"certfile "+certs.ServerCert,
		"keyfile "+certs.ServerKey,
		"require_certificate "+strconv.FormatBool(requireClientCert),
		"listener "+strconv.Itoa(plain)+" 127.0.0.1",
	)
	tm := &TLSMosquitto{Mosquitto: m, plainPort: plain}
	tm.waitPlain()
	return tm
}

// Start starts the broker again, on the same ports, after Stop. It returns
// once both listeners accept connections.
func (m *TLSMosquitto) Start() {
	m.t.Helper()
	m.Mosquitto.Start()
	m.waitPlain()
}

// waitPlain waits for the plain listener, which mosquitto may open after
// the TLS one that Mosquitto.Start waits for.
func (m *TLSMosquitto) waitPlain() {
	m.t.Helper()
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	if err := waitListening(m.plainAddr(), exited); err != nil {
		m.t.Fatalf("uplinktest: mosquitto plain listener on %s: %v\n%s", m.plainAddr(), err, m.log.String())
	}
}

// URL returns the TLS listener's URL, "tls://127.0.0.1:PORT".
func (m *TLSMosquitto) URL() string { return "tls://" + m.Addr() }

// PlainURL returns the plain listener's URL, "mqtt://127.0.0.1:PORT", for
// Subscribe.
func (m *TLSMosquitto) PlainURL() string { return "mqtt://" + m.plainAddr() }

func (m *TLSMosquitto) plainAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.plainPort))
}
