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
// its files changes (its size or modification time), at the next
// handshake. A file that changed but no longer loads (a half-written
// certificate, a CRL signed by the wrong CA) is logged and the material
// loaded before stays in use, so a bad edit never stops new connections.
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

type stamp struct {
	mod  time.Time
	size int64
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
	for _, f := range s.files() {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, nil, fmt.Errorf("brokertls: %w", err)
		}
		stamps[f] = stamp{fi.ModTime(), fi.Size()}
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
		s.stamps = stamps // tried again once a file changes again (nil: at the next handshake)
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
		fi, err := os.Stat(f)
		if err != nil {
			return true
		}
		if st := s.stamps[f]; !st.mod.Equal(fi.ModTime()) || st.size != fi.Size() {
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
	if m.crl != nil {
		crl := m.crl
		c.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, chain := range chains {
				for _, cert := range chain {
					if crl.Revoked(cert) {
						return fmt.Errorf("%w: serial %s, subject %q", ErrRevoked, cert.SerialNumber, cert.Subject.CommonName)
					}
				}
			}
			return nil
		}
	}
	return c
}
