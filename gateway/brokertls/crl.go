package brokertls

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// CRL is the set of revoked client certificates, from one or more X.509
// certificate revocation lists, each signed by one of the client CAs.
type CRL struct {
	revoked    map[string]bool // issuer's raw subject + serial number
	NextUpdate time.Time       // the earliest next update of the lists; zero if none says
}

// maxCRLs bounds the lists one file may hold.
const maxCRLs = 64

// ParseCRL decodes revocation lists, PEM ("X509 CRL" blocks; others are
// ignored) or a single DER list, and checks that each is signed by one of
// cas. A list signed by no CA of cas is an error: a forged list could
// otherwise revoke nothing while appearing to.
func ParseCRL(data []byte, cas []*x509.Certificate) (*CRL, error) {
	ders, err := crlBlocks(data)
	if err != nil {
		return nil, err
	}
	c := &CRL{revoked: map[string]bool{}}
	for i, der := range ders {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("brokertls: revocation list %d: %w", i+1, err)
		}
		if err := checkIssuer(rl, cas); err != nil {
			return nil, fmt.Errorf("brokertls: revocation list %d: %w", i+1, err)
		}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				c.revoked[revocationKey(rl.RawIssuer, e.SerialNumber.Bytes())] = true
			}
		}
		if !rl.NextUpdate.IsZero() && (c.NextUpdate.IsZero() || rl.NextUpdate.Before(c.NextUpdate)) {
			c.NextUpdate = rl.NextUpdate
		}
	}
	return c, nil
}

// crlBlocks returns the DER lists in data.
func crlBlocks(data []byte) ([][]byte, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, errors.New("brokertls: revocation list file is empty")
		}
		return [][]byte{data}, nil
	}
	var ders [][]byte
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "X509 CRL" {
			if len(ders) == maxCRLs {
				return nil, fmt.Errorf("brokertls: more than %d revocation lists", maxCRLs)
			}
			ders = append(ders, b.Bytes)
		}
	}
	if len(ders) == 0 {
		return nil, errors.New("brokertls: no PEM X509 CRL block found")
	}
	return ders, nil
}

// checkIssuer checks that one of cas signed rl.
func checkIssuer(rl *x509.RevocationList, cas []*x509.Certificate) error {
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, rl.RawIssuer) && rl.CheckSignatureFrom(ca) == nil {
			return nil
		}
	}
	return fmt.Errorf("not signed by a CA of client_ca_file (issuer %q)", rl.Issuer.String())
}

func revocationKey(rawIssuer, serial []byte) string {
	return string(rawIssuer) + "\x00" + string(serial)
}

// Revoked reports whether cert is on one of the lists.
func (c *CRL) Revoked(cert *x509.Certificate) bool {
	if c == nil || cert.SerialNumber == nil {
		return false
	}
	return c.revoked[revocationKey(cert.RawIssuer, cert.SerialNumber.Bytes())]
}

// Len is the number of revoked certificates.
func (c *CRL) Len() int {
	if c == nil {
		return 0
	}
	return len(c.revoked)
}
