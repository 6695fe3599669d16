package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
)

// How TLS is set up, and why the files are read at every attempt.
//
// autopaho offers two ways in: a fixed ClientConfig.TlsCfg, used for every
// connection, or an AttemptConnection hook that returns the connection
// ready for MQTT. A fixed config would need callbacks to pick up renewed
// files (GetClientCertificate for the client certificate, and for the CAs
// InsecureSkipVerify plus a hand-written VerifyConnection), and a bad file
// would then surface as a vague handshake failure. The uplink uses the hook
// instead (run.go): before each attempt it reads and parses the files afresh
// with tlsConfig, so a certificate renewed on disk is used at the next
// reconnect, and a file that has gone bad is reported by its option key and
// path, and retried with backoff. Run reads them once before connecting, so
// that files bad from the start fail it at once. The hook serves twice more:
// it keeps the TCP connection under TLS, which the watchdog (watchdog.go)
// closes when the connection stalls, and it dials through timing.dial, so
// tests can hold the link down with TLS as without.

// CheckTLSFiles reads and parses the TLS files named by o (CAFile,
// CertFile, KeyFile) and reports the first problem as an *OptionError whose
// Key is ca_file, cert_file or key_file, so that `flowgate check` can point at
// the line. An empty CAFile is not checked (the system roots are used);
// CertFile and KeyFile are checked if either is set, as they go together.
// Whether TLS files suit the URL is New's business.
func CheckTLSFiles(o Options) error {
	_, err := tlsConfig(o, "")
	return err
}

// tlsConfig builds the client TLS configuration from the files named in o,
// reading them now: TLS 1.2 at least, the broker's certificate verified for
// serverName against CAFile (the system roots if empty), and the client
// certificate from CertFile and KeyFile if set. Errors are *OptionError.
func tlsConfig(o Options, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if o.CAFile != "" {
		pool, err := loadCAs(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := loadKeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// loadCAs parses every certificate in the PEM bundle at path. Blocks of
// other types are skipped, as crypto/x509 does, but there must be at least
// one certificate and every certificate must parse.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := readTLSFile("ca_file", path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, optionErr("ca_file", "%s: certificate %d: %v", path, n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, optionErr("ca_file", "%s: no PEM certificate found", path)
	}
	return pool, nil
}

// loadKeyPair reads the client certificate and its key. Problems with the
// certificate are reported against cert_file; with the key, or a key that
// does not belong to the certificate, against key_file.
func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := readTLSFile("cert_file", certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := checkCertPEM(certPath, certPEM); err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readTLSFile("key_file", keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, optionErr("key_file", "%s: %v (certificate from %s)", keyPath, err, certPath)
	}
	return cert, nil
}

// checkCertPEM checks that data holds a certificate chain, leaf first, that
// parses.
func checkCertPEM(path string, data []byte) error {
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return optionErr("cert_file", "%s: no PEM data found", path)
	case block.Type != "CERTIFICATE":
		return optionErr("cert_file", "%s: first PEM block is %q, want CERTIFICATE", path, block.Type)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return optionErr("cert_file", "%s: %v", path, err)
	}
	return nil
}

// readTLSFile reads the file at path named by the option key.
func readTLSFile(key, path string) ([]byte, error) {
	if path == "" {
		return nil, optionErr(key, "must not be empty (cert_file and key_file go together)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return nil, optionErr(key, "cannot read %s: %v", path, err)
	}
	return data, nil
}

// handshake runs the TLS handshake with the broker at addr over raw,
// closing raw if it fails.
//
// A broker that requires a client certificate we lack refuses us, with
// TLS 1.3, only after our side of the handshake is done: the error comes
// later, from paho, often as a bare "connection reset by peer". So when the
// broker asks for a certificate and none is configured, handshake says so
// in the log. It does not fail the attempt: a broker may ask without
// requiring one, and accept a password instead.
func (u *Uplink) handshake(ctx context.Context, raw net.Conn, cfg *tls.Config, addr string) (net.Conn, error) {
	asked := false
	if len(cfg.Certificates) == 0 {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = true
			return new(tls.Certificate), nil // none, as without the callback
		}
	}
	tc := tls.Client(raw, cfg)
	err := tc.HandshakeContext(ctx)
	if asked {
		u.log.Warn("tls handshake: the broker asked for a client certificate, but cert_file and key_file are not set; it may refuse the connection",
			"url", u.broker.Redacted())
	}
	if err != nil {
		_ = raw.Close() // the handshake's error says what went wrong
		return nil, fmt.Errorf("uplink: tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}
