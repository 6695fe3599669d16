// Package brokertls is the TLS of the gateway's embedded broker: the
// server certificate and the client CAs loaded from PEM files, mutual TLS,
// a certificate revocation list, and all of them read again when their
// files change, so that a renewed certificate or a new CRL takes effect at
// the next connection without a restart.
package brokertls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// LoadCAs reads a PEM file of CA certificates.
func LoadCAs(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("brokertls: %w", err)
	}
	return ParseCAs(data)
}

// ParseCAs decodes PEM CA certificates; other PEM blocks are ignored. At
// least one certificate must be there.
func ParseCAs(data []byte) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("brokertls: CA certificate %d: %w", len(cas)+1, err)
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, errors.New("brokertls: no PEM CERTIFICATE block found")
	}
	return cas, nil
}

// pool makes a certificate pool of cas.
func pool(cas []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c)
	}
	return p
}

// loadKeyPair reads the server's certificate chain and key.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("brokertls: %w", err)
	}
	return &c, nil
}
