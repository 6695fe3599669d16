// Package brokertlstest makes a small private PKI for tests of the
// broker's TLS: a CA, the broker's certificate for 127.0.0.1, client
// certificates with a chosen Common Name, and revocation lists, written as
// PEM files into a test's temporary directory.
package brokertlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority of a test.
type CA struct {
	Cert *x509.Certificate
	File string // the CA certificate, PEM
	key  *ecdsa.PrivateKey
	dir  string
	t    testing.TB
}

// Issued is a certificate the CA signed, with its key.
type Issued struct {
	Cert     *x509.Certificate
	CertFile string
	KeyFile  string
}

// NewCA makes a CA named name; its files go into a temporary directory of
// t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	setValidity(t, tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("brokertlstest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &CA{Cert: cert, key: key, dir: dir, t: t,
		File: write(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)}
}

// Server issues the broker's certificate for 127.0.0.1, as name.pem and
// name-key.pem.
func (ca *CA) Server(name string) Issued {
	return ca.issue(name, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
}

// Client issues a client certificate whose Common Name is cn.
func (ca *CA) Client(cn string) Issued {
	return ca.issue("client-"+cn, &x509.Certificate{Subject: pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func (ca *CA) issue(name string, tmpl *x509.Certificate) Issued {
	t := ca.t
	t.Helper()
	key := newKey(t)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	setValidity(t, tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("brokertlstest: issue %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Issued{Cert: cert, CertFile: write(t, filepath.Join(ca.dir, name+".pem"), "CERTIFICATE", der),
		KeyFile: write(t, filepath.Join(ca.dir, name+"-key.pem"), "PRIVATE KEY", keyDER)}
}

// CRL writes a revocation list signed by the CA, revoking certs, to path
// (PEM), replacing what was there.
func (ca *CA) CRL(path string, number int64, certs ...*x509.Certificate) string {
	ca.t.Helper()
	return write(ca.t, path, "X509 CRL", ca.CRLDER(number, certs...))
}

// CRLDER is a revocation list signed by the CA, in DER.
func (ca *CA) CRLDER(number int64, certs ...*x509.Certificate) []byte {
	t := ca.t
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(24 * time.Hour)}
	for _, c := range certs {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		t.Fatalf("brokertlstest: revocation list: %v", err)
	}
	return der
}

// ClientConfig is a TLS client config that trusts the CA and, with a
// client certificate, presents it.
func (ca *CA) ClientConfig(client *Issued) *tls.Config {
	t := ca.t
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if client != nil {
		pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func setValidity(t testing.TB, tmpl *x509.Certificate) {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
}

// write writes one PEM block to path, atomically (a temporary file
// renamed), so that a reader never sees half of it.
func write(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}
