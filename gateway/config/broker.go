package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/flowgate/flowgate/gateway/brokertls"
)

// BrokerTLS is the broker's TLS listener. Without Listen there is none.
type BrokerTLS struct {
	Listen   string `yaml:"listen"`    // TCP address for MQTT over TLS, e.g. :8883
	CertFile string `yaml:"cert_file"` // the broker's certificate chain (PEM), reloaded when it changes
	KeyFile  string `yaml:"key_file"`  // its private key (PEM), reloaded with it
	// ClientCAFile holds the CAs whose client certificates the broker
	// accepts (PEM). Without it no client certificate is asked for.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses every client without a valid certificate
	// (mutual TLS for all); otherwise a certificate is optional and a
	// device may still log in with its password. It needs the plain
	// listener off: that one asks nobody for a certificate.
	RequireClientCert bool `yaml:"require_client_cert"`
	// CRLFile is a certificate revocation list (PEM or DER) signed by a
	// client CA: a client certificate it lists is refused. Reloaded when
	// it changes.
	CRLFile string `yaml:"crl_file"`
}

// Off is the broker.listen value (besides "") that turns the plain TCP
// listener off.
const Off = "off"

// PlainListen is the plain TCP listener's address, or "" when it is off.
func (b Broker) PlainListen() string {
	if b.Listen == Off {
		return ""
	}
	return b.Listen
}

// resolveBrokerFiles makes the TLS files relative to the config file.
func (c *Config) resolveBrokerFiles(path string) {
	t := &c.Broker.TLS
	relativeTo(path, &t.CertFile, &t.KeyFile, &t.ClientCAFile, &t.CRLFile)
}

func (c *Config) validateBroker(k *checker) {
	b := c.Broker
	if b.PlainListen() != "" {
		checkAddr(k, "broker.listen", b.Listen)
	} else if b.TLS.Listen == "" {
		k.errorf("broker.listen", "the plain listener is off and broker.tls.listen is not set: devices could not connect")
	}
	c.validateBrokerTLS(k)
	if b.MaxClients <= 0 {
		k.errorf("broker.max_clients", "must be positive")
	}
	if b.MaxPacketBytes < 1024 || b.MaxPacketBytes > 256<<20 {
		k.errorf("broker.max_packet_bytes", "must be between 1024 and 268435456")
	}
	if b.MaxMessageExpiry < 0 {
		k.errorf("broker.max_message_expiry", "must not be negative (0 means no cap)")
	}
	if b.SessionExpiry < 0 {
		k.errorf("broker.session_expiry", "must not be negative")
	}
	c.validateBrokerLimits(k)
}

func (c *Config) validateBrokerLimits(k *checker) {
	b := c.Broker
	if b.ConnectionRate < 0 {
		k.errorf("broker.connection_rate", "must not be negative (0 means no limit)")
	}
	if b.ConnectionRate > 0 && (b.ConnectionBurst < 1 || float64(b.ConnectionBurst) < b.ConnectionRate) {
		k.errorf("broker.connection_burst", "must be at least 1 and at least connection_rate (%g)", b.ConnectionRate)
	}
	for i, s := range b.ConnectionRateExempt {
		if _, err := netip.ParsePrefix(s); err != nil {
			k.errorf(fmt.Sprintf("broker.connection_rate_exempt[%d]", i), "%q is not a CIDR prefix such as 10.0.0.0/8 or ::1/128", s)
		}
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"receive_maximum", b.ReceiveMaximum}, {"max_inflight", b.MaxInflight}, {"max_queued", b.MaxQueued}} {
		if l.v < 1 || l.v > 65535 {
			k.errorf("broker."+l.key, "must be between 1 and 65535")
		}
	}
}

// validateBrokerTLS checks the TLS keys and loads every file once, so that
// a certificate that does not parse or does not match its key is a config
// error, not a refusal at the first handshake.
func (c *Config) validateBrokerTLS(k *checker) {
	t := c.Broker.TLS
	if t.Listen == "" {
		for key, v := range map[string]string{"cert_file": t.CertFile, "key_file": t.KeyFile,
			"client_ca_file": t.ClientCAFile, "crl_file": t.CRLFile} {
			if v != "" {
				k.errorf("broker.tls."+key, "is set but broker.tls.listen is not: there is no TLS listener")
			}
		}
		return
	}
	checkAddr(k, "broker.tls.listen", t.Listen)
	if t.Listen == c.Broker.PlainListen() {
		k.errorf("broker.tls.listen", "%q is also broker.listen", t.Listen)
	}
	switch {
	case t.CertFile == "" || t.KeyFile == "":
		k.errorf("broker.tls.listen", "needs cert_file and key_file: the broker's certificate and its key")
	default:
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			k.errorf("broker.tls.cert_file", "%v", err)
		}
	}
	var cas []*x509.Certificate
	if t.ClientCAFile != "" {
		var err error
		if cas, err = brokertls.LoadCAs(t.ClientCAFile); err != nil {
			k.errorf("broker.tls.client_ca_file", "%v", err)
		}
	}
	if t.RequireClientCert && t.ClientCAFile == "" {
		k.errorf("broker.tls.require_client_cert", "needs broker.tls.client_ca_file: the CAs client certificates must come from")
	}
	if t.RequireClientCert && c.Broker.PlainListen() != "" {
		k.errorf("broker.tls.require_client_cert", "the plain listener (broker.listen %q) still lets devices in with a password and no certificate: set broker.listen: off", c.Broker.Listen)
	}
	if t.CRLFile != "" {
		if t.ClientCAFile == "" {
			k.errorf("broker.tls.crl_file", "needs broker.tls.client_ca_file")
		} else if data, err := os.ReadFile(t.CRLFile); err != nil {
			k.errorf("broker.tls.crl_file", "%q: %s", t.CRLFile, readError(err))
		} else if cas != nil {
			if _, err := brokertls.ParseCRL(data, cas); err != nil {
				k.errorf("broker.tls.crl_file", "%v", err)
			}
		}
	}
}

// validateCredentials checks how device d at path p logs in: a bcrypt
// password hash, a client certificate's Common Name, or both.
func (c *Config) validateCredentials(k *checker, p string, d Device, cns map[string]bool) {
	if d.PasswordHash == "" && d.CertCN == "" {
		k.errorf(p, "device %q needs password_hash (make one with `flowgate passwd`), cert_cn, or both", d.ID)
	}
	if d.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(d.PasswordHash)); err != nil {
			k.errorf(p+".password_hash", "not a bcrypt hash (make one with `flowgate passwd`)")
		}
	}
	if d.CertCN == "" {
		return
	}
	switch {
	case !utf8.ValidString(d.CertCN) || len(d.CertCN) > 64:
		k.errorf(p+".cert_cn", "must be valid UTF-8 of at most 64 bytes (a certificate's Common Name)")
	case cns[d.CertCN]:
		k.errorf(p+".cert_cn", "duplicate cert_cn %q", d.CertCN)
	case c.Broker.TLS.ClientCAFile == "":
		k.errorf(p+".cert_cn", "needs broker.tls.client_ca_file: without it no client certificate is asked for")
	}
	cns[d.CertCN] = true
}

// The event types the gateway makes itself when a device comes online or
// goes offline. A route may list them in its types; they are made only
// then.
const (
	TypeDeviceOnline  = "device.online"
	TypeDeviceOffline = "device.offline"
)

// PresenceTypes are the presence event types some route lists.
func (c *Config) PresenceTypes() map[string]bool {
	out := map[string]bool{}
	for _, r := range c.Routes {
		for _, t := range r.Types {
			if t == TypeDeviceOnline || t == TypeDeviceOffline {
				out[t] = true
			}
		}
	}
	return out
}
