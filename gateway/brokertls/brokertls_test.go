package brokertls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// A revoked certificate cannot come back by resuming a TLS session: the
// revocation list is checked on resumed connections too, and a session
// whose CA was taken out of client_ca_file no longer resumes either.
func TestResumedSessionIsCheckedAgain(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	srvCert := ca.Server("server")
	dev, dev2 := ca.Client("dev-1"), ca.Client("dev-2")
	dir := t.TempDir()
	crlFile := ca.CRL(filepath.Join(dir, "crl.pem"), 1)
	caFile := filepath.Join(dir, "ca.pem")
	copyFile(t, ca.File, caFile)
	s, err := brokertls.New(brokertls.Options{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
		ClientCAFile: caFile, RequireClientCert: true, CRLFile: crlFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	resuming := func(c *brokertlstest.Issued) *tls.Config {
		cc := ca.ClientConfig(c)
		cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		return cc
	}

	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			ca.CRL(crlFile, 1)
			bumpMtime(t, crlFile)
			client := resuming(&dev)
			client.MaxVersion = v.version
			if err, st := handshake(t, cfg, client); err != nil || st.DidResume {
				t.Fatalf("first connection: %v (resumed %v)", err, st.DidResume)
			}
			// Resumption works while the certificate is good: the check
			// below is made on a resumed session, not a full handshake.
			if err, st := handshake(t, cfg, client); err != nil || !st.DidResume {
				t.Fatalf("second connection: %v, resumed %v; want a resumed session", err, st.DidResume)
			}
			ca.CRL(crlFile, 2, dev.Cert)
			bumpMtime(t, crlFile)
			if err, _ := handshake(t, cfg, client); !errors.Is(err, brokertls.ErrRevoked) {
				t.Errorf("resumed session of a revoked certificate: %v, want ErrRevoked", err)
			}
		})
	}

	// The CA that issued dev-2 leaves client_ca_file (the CRL, signed by
	// it, must go too or the files would not load together).
	ca.CRL(crlFile, 3)
	bumpMtime(t, crlFile)
	client := resuming(&dev2)
	if err, _ := handshake(t, cfg, client); err != nil {
		t.Fatal(err)
	}
	if err, st := handshake(t, cfg, client); err != nil || !st.DidResume {
		t.Fatalf("second connection: %v, resumed %v", err, st.DidResume)
	}
	other := brokertlstest.NewCA(t, "other CA")
	copyFile(t, other.File, caFile)
	other.CRL(crlFile, 1)
	bumpMtime(t, caFile)
	if err, _ := handshake(t, cfg, client); err == nil {
		t.Error("a session of a CA no longer in client_ca_file was resumed")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A TLS file that goes missing is logged once, not at every handshake,
// the material loaded before stays in use, and the file is loaded again
// when it is back.
func TestMissingFileLoggedOnce(t *testing.T) {
	ca := brokertlstest.NewCA(t, "devices CA")
	srvCert := ca.Server("server")
	dev := ca.Client("dev-1")
	crlFile := ca.CRL(filepath.Join(t.TempDir(), "crl.pem"), 1)
	var logs bytes.Buffer
	s, err := brokertls.New(brokertls.Options{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
		ClientCAFile: ca.File, CRLFile: crlFile, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	if err := os.Remove(crlFile); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err, _ := handshake(t, cfg, ca.ClientConfig(&dev)); err != nil {
			t.Fatalf("handshake %d with the CRL file gone: %v", i+1, err)
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d errors logged for one missing file, want 1:\n%s", n, logs.String())
	}
	// Back, revoking dev-1: loaded at the next handshake.
	ca.CRL(crlFile, 2, dev.Cert)
	if err, _ := handshake(t, cfg, ca.ClientConfig(&dev)); !errors.Is(err, brokertls.ErrRevoked) {
		t.Errorf("after the CRL file came back: %v, want ErrRevoked", err)
	}
	if n := strings.Count(logs.String(), "TLS files reloaded"); n != 1 {
		t.Errorf("%d reloads logged, want 1:\n%s", n, logs.String())
	}
}
