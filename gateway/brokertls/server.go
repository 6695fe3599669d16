package brokertls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Options name the files of a TLS listener.
type Options struct {
	CertFile, KeyFile string // the broker's certificate chain and key (PEM)
	ClientCAFile      string // CAs of client certificates; "": none asked for
	RequireClientCert bool   // refuse clients without a valid certificate
	CRLFile           string // revoked client certificates; "": none
	Logger            *slog.Logger
}

// ErrRevoked is a client certificate on the revocation list.
var ErrRevoked = errors.New("brokertls: client certificate revoked")

// Server holds a listener's TLS material and reads it again when one of
// its files changes (its size or modification time, or whether it is
// there at all), at the next handshake. A file that changed but no longer
// loads (a half-written certificate, a CRL signed by the wrong CA, a file
// removed) is logged once and the material loaded before stays in use, so
// a bad edit never stops new connections; the load is tried again when a
// file changes again.
//
// Every connection's client certificate is checked against the material
// of that handshake, resumed sessions included: session tickets stay on
// (a device reconnecting saves a full handshake), and a resumed session's
// certificate is verified again against the current client CAs and
// revocation list, so neither a revoked certificate nor one of a CA taken
// out of client_ca_file gets back in with a ticket issued before.
type Server struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	stamps map[string]stamp
	cur    *material
}

// material is one consistent load of every file.
type material struct {
	cert *tls.Certificate
	cas  []*x509.Certificate
	pool *x509.CertPool
	crl  *CRL
}

// stamp is what a file looked like when it was loaded. A file that could
// not be stat'ed (removed, not readable) is stamped missing, so that it
// counts as changed only once it is back, not at every handshake.
type stamp struct {
	mod     time.Time
	size    int64
	missing bool
}

// stampOf stamps file f as it is now.
func stampOf(f string) (stamp, error) {
	fi, err := os.Stat(f)
	if err != nil {
		return stamp{missing: true}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// New loads every file; an error names the first that does not load.
func New(o Options) (*Server, error) {
	s := &Server{opts: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m, stamps, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur, s.stamps = m, stamps
	return s, nil
}

func (s *Server) files() []string {
	out := []string{s.opts.CertFile, s.opts.KeyFile}
	for _, f := range []string{s.opts.ClientCAFile, s.opts.CRLFile} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// load reads every file. The stamps are taken before reading, so a change
// during the read is seen at the next check.
func (s *Server) load() (*material, map[string]stamp, error) {
	stamps := map[string]stamp{}
	var missing error
	for _, f := range s.files() {
		st, err := stampOf(f)
		if err != nil && missing == nil {
			missing = fmt.Errorf("brokertls: %w", err)
		}
		stamps[f] = st
	}
	if missing != nil {
		return nil, stamps, missing
	}
	m := &material{}
	var err error
	if m.cert, err = loadKeyPair(s.opts.CertFile, s.opts.KeyFile); err != nil {
		return nil, stamps, err
	}
	if s.opts.ClientCAFile != "" {
		if m.cas, err = LoadCAs(s.opts.ClientCAFile); err != nil {
			return nil, stamps, fmt.Errorf("%w (%s)", err, s.opts.ClientCAFile)
		}
		m.pool = pool(m.cas)
	}
	if s.opts.CRLFile != "" {
		data, err := os.ReadFile(s.opts.CRLFile)
		if err != nil {
			return nil, stamps, fmt.Errorf("brokertls: %w", err)
		}
		if m.crl, err = ParseCRL(data, m.cas); err != nil {
			return nil, stamps, fmt.Errorf("%w (%s)", err, s.opts.CRLFile)
		}
		if !m.crl.NextUpdate.IsZero() && time.Now().After(m.crl.NextUpdate) {
			s.log.Warn("revocation list is past its next update: publish a fresh one", "file", s.opts.CRLFile,
				"next_update", m.crl.NextUpdate)
		}
	}
	return m, stamps, nil
}

// current returns the material, loading it again first if a file changed.
func (s *Server) current() *material {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.changed() {
		return s.cur
	}
	m, stamps, err := s.load()
	if err != nil {
		s.log.Error("TLS files changed but do not load; keeping the ones loaded before", "err", err)
		s.stamps = stamps // tried again once a file changes again
		return s.cur
	}
	s.cur, s.stamps = m, stamps
	s.log.Info("TLS files reloaded", "cert", s.opts.CertFile, "revoked", m.crl.Len())
	return m
}

func (s *Server) changed() bool {
	if s.stamps == nil {
		return true
	}
	for _, f := range s.files() {
		now, _ := stampOf(f)
		if st := s.stamps[f]; st.missing != now.missing || !st.mod.Equal(now.mod) || st.size != now.size {
			return true
		}
	}
	return false
}

// Config is the tls.Config of the listener. Each handshake takes the
// material current at that moment.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.handshakeConfig(s.current()), nil
		},
	}
}

func (s *Server) handshakeConfig(m *material) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert}}
	switch {
	case m.pool == nil:
		c.ClientAuth = tls.NoClientCert
	case s.opts.RequireClientCert:
		c.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	c.ClientCAs = m.pool
	// VerifyConnection, unlike VerifyPeerCertificate, runs on resumed
	// sessions too.
	c.VerifyConnection = func(cs tls.ConnectionState) error { return m.verify(cs) }
	return c
}

// verify checks a connection's client certificate, if it has one, against
// m: on a resumed session it is verified again against the client CAs
// (the session may predate them), and on every connection its chain must
// hold no revoked certificate.
func (m *material) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	chains := cs.VerifiedChains
	if cs.DidResume {
		if m.pool == nil {
			return errors.New("brokertls: resumed session has a client certificate but no client CA is configured")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		var err error
		chains, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: m.pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return fmt.Errorf("brokertls: resumed session's client certificate: %w", err)
		}
	}
	if m.crl == nil {
		return nil
	}
	for _, chain := range chains {
		for _, cert := range chain {
			if m.crl.Revoked(cert) {
				return fmt.Errorf("%w: serial %s, subject %q", ErrRevoked, cert.SerialNumber, cert.Subject.CommonName)
			}
		}
	}
	return nil
}
