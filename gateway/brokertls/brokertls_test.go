package brokertls_test

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowgate/flowgate/gateway/brokertls"
	"github.com/flowgate/flowgate/gateway/brokertls/brokertlstest"
)

func TestParseCRL(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	other := brokertlstest.NewCA(t, "other CA")
	good, bad := ca.Client("dev-1"), ca.Client("dev-2")
	pemFile := ca.CRL(filepath.Join(t.TempDir(), "crl.pem"), 1, bad.Cert)
	data, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"pem": data, "der": ca.CRLDER(1, bad.Cert)} {
		crl, err := brokertls.ParseCRL(in, []*x509Cert{other.Cert, ca.Cert})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !crl.Revoked(bad.Cert) || crl.Revoked(good.Cert) || crl.Len() != 1 || crl.NextUpdate.IsZero() {
			t.Errorf("%s: revoked(bad)=%v revoked(good)=%v len=%d", name, crl.Revoked(bad.Cert), crl.Revoked(good.Cert), crl.Len())
		}
	}
	// Same serial, other issuer: not revoked.
	if crl, _ := brokertls.ParseCRL(data, []*x509Cert{ca.Cert}); crl.Revoked(other.Client("dev-2").Cert) {
		t.Error("a certificate of another CA counts as revoked")
	}
	for name, in := range map[string][]byte{
		"wrong CA":  other.CRLDER(1, bad.Cert),
		"garbage":   []byte("not a list"),
		"empty":     nil,
		"no blocks": []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
	} {
		if _, err := brokertls.ParseCRL(in, []*x509Cert{ca.Cert}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// handshake runs one TLS handshake between cfg's server and a client with
// client, on loopback, and returns the server's error.
func handshake(t *testing.T, srv *tls.Config, client *tls.Config) (error, *tls.ConnectionState) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err error
		st  tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		done <- result{err, tc.ConnectionState()}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the client's handshake
		conn.Close()
	}
	r := <-done
	return r.err, &r.st
}

func TestServerMutualTLSAndReload(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	other := brokertlstest.NewCA(t, "other CA")
	srvCert := ca.Server("server")
	dev, revoked := ca.Client("dev-1"), ca.Client("dev-2")
	crlFile := ca.CRL(filepath.Join(t.TempDir(), "crl.pem"), 1, revoked.Cert)
	s, err := brokertls.New(brokertls.Options{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
		ClientCAFile: ca.File, RequireClientCert: true, CRLFile: crlFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()

	if err, st := handshake(t, cfg, ca.ClientConfig(&dev)); err != nil || st.PeerCertificates[0].Subject.CommonName != "dev-1" {
		t.Fatalf("valid client certificate: %v", err)
	}
	if err, _ := handshake(t, cfg, ca.ClientConfig(&revoked)); !errors.Is(err, brokertls.ErrRevoked) {
		t.Errorf("revoked certificate: %v, want ErrRevoked", err)
	}
	stranger := other.Client("dev-1")
	if err, _ := handshake(t, cfg, ca.ClientConfig(&stranger)); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	if err, _ := handshake(t, cfg, ca.ClientConfig(nil)); err == nil {
		t.Error("no client certificate was accepted though one is required")
	}

	// A new list revoking dev-1 takes effect at the next handshake.
	ca.CRL(crlFile, 2, revoked.Cert, dev.Cert)
	bumpMtime(t, crlFile)
	if err, _ := handshake(t, cfg, ca.ClientConfig(&dev)); !errors.Is(err, brokertls.ErrRevoked) {
		t.Errorf("after the CRL changed: %v, want ErrRevoked", err)
	}
	// A list that does not load (signed by another CA) is refused and the
	// one before stays in force.
	other.CRL(crlFile, 3)
	bumpMtime(t, crlFile)
	if err, _ := handshake(t, cfg, ca.ClientConfig(&dev)); !errors.Is(err, brokertls.ErrRevoked) {
		t.Errorf("after a bad CRL: %v, want the previous list (ErrRevoked)", err)
	}

	// A renewed server certificate is presented from the next handshake
	// (once every file loads again: the files are taken together).
	ca.CRL(crlFile, 4)
	renewed := ca.Server("server")
	bumpMtime(t, renewed.CertFile)
	client := ca.ClientConfig(&revoked)
	var seen string
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		seen = cs.PeerCertificates[0].SerialNumber.String()
		return nil
	}
	if err, _ := handshake(t, cfg, client); err != nil {
		t.Fatalf("after the renewal, with an empty CRL: %v", err)
	}
	if seen != renewed.Cert.SerialNumber.String() {
		t.Errorf("server presented serial %s, want the renewed %s", seen, renewed.Cert.SerialNumber)
	}
}

// bumpMtime moves a file's modification time forward, so that a change
// within the file system's timestamp granularity is seen.
func bumpMtime(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	next := fi.ModTime().Add(2 * time.Second)
	if err := os.Chtimes(path, next, next); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	srv := ca.Server("server")
	for name, o := range map[string]brokertls.Options{
		"key of another cert": {CertFile: srv.CertFile, KeyFile: ca.Client("x").KeyFile},
		"missing CA file":     {CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: filepath.Join(t.TempDir(), "nope")},
		"CA file not PEM":     {CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: srv.KeyFile},
	} {
		if _, err := brokertls.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
