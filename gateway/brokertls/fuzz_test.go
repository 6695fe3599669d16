package brokertls_test

import (
	"crypto/x509"
	"testing"

	"github.com/flowgate/flowgate/gateway/brokertls"
	"github.com/flowgate/flowgate/gateway/brokertls/brokertlstest"
)

type x509Cert = x509.Certificate

// FuzzParseCRL feeds revocation list files to the parser: it must never
// panic, and a list it accepts must be signed by the CA.
func FuzzParseCRL(f *testing.F) {
	ca := brokertlstest.NewCA(f, "fuzz CA")
	der := ca.CRLDER(1, ca.Client("d").Cert)
	f.Add(der)
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Add([]byte{})
	f.Add(der[:len(der)/2])
	cas := []*x509.Certificate{ca.Cert}
	f.Fuzz(func(t *testing.T, data []byte) {
		crl, err := brokertls.ParseCRL(data, cas)
		if err == nil && crl == nil {
			t.Fatal("nil list without an error")
		}
		_, _ = brokertls.ParseCAs(data)
	})
}
