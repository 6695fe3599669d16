package uplink_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink"
	"github.com/flowgate/flowgate/uplink/uplinktest"
)

func TestTLSServerAuth(t *testing.T) {
	certs := uplinktest.NewCerts(t)
	m := uplinktest.StartMosquittoTLS(t, certs, false)
	c := uplinktest.Subscribe(t, m.PlainURL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL(), CAFile: certs.CAFile})
	run(t, u)
	evs := makeEvents(50)
	enqueueAll(t, u, evs)
	checkDelivered(t, evs, c.WaitN(t, len(evs), waitTimeout))
}

// TestTLSMutual delivers with a client certificate, across a broker
// restart, dialing through a test's dialer: TLS runs over what it returns.
func TestTLSMutual(t *testing.T) {
	certs := uplinktest.NewCerts(t)
	m := uplinktest.StartMosquittoTLS(t, certs, true)
	before := uplinktest.Subscribe(t, m.PlainURL(), "flowgate/#")
	u := newUplink(t, uplink.Options{URL: m.URL(), CAFile: certs.CAFile,
		CertFile: certs.ClientCert, KeyFile: certs.ClientKey})
	var gate linkGate
	uplink.SetDialer(u, gate.dial)
	run(t, u)
	evs := makeEvents(50)
	enqueueAll(t, u, evs[:25])
	checkDelivered(t, evs[:25], before.WaitN(t, 25, waitTimeout))

	// The broker restarts empty; subscribe again before the uplink may
	// reconnect, so that nothing it sends is missed.
	gate.set(true)
	m.Stop()
	eventually(t, "the uplink to notice the outage", func() bool { return !u.Stats().Connected })
	enqueueAll(t, u, evs[25:])
	m.Start()
	after := uplinktest.Subscribe(t, m.PlainURL(), "flowgate/#")
	gate.set(false)
	checkDelivered(t, evs[25:], after.WaitN(t, 25, waitTimeout))
	if n := u.Reconnects(); n != 1 {
		t.Errorf("Reconnects = %d, want 1", n)
	}
}

// TestTLSRefused: a broker that wants a client certificate we do not send,
// and a broker whose certificate our CA did not sign, are never connected
// to; the uplink keeps retrying and says why.
func TestTLSRefused(t *testing.T) {
	certs := uplinktest.NewCerts(t)
	for _, tc := range []struct {
		name   string
		mutual bool
		caFile string
		log    []string // what a log line must say
	}{
		{"no client certificate", true, certs.CAFile, []string{"tls handshake", "the broker asked for a client certificate"}},
		{"wrong CA", false, certs.OtherCAFile, []string{"connect failed", "tls handshake with 127.0.0.1:", "unknown authority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := uplinktest.StartMosquittoTLS(t, certs, tc.mutual)
			c := uplinktest.Subscribe(t, m.PlainURL(), "flowgate/#")
			log, buf := bufferLogger(t)
			u := newUplink(t, uplink.Options{URL: m.URL(), CAFile: tc.caFile, Logger: log})
			run(t, u)
			enqueueAll(t, u, makeEvents(5))
			waitLog(t, buf, tc.log...)
			waitLog(t, buf, tc.log...) // and again: it retries
			waitLog(t, buf, "connect failed")
			if s := u.Stats(); s.Connected || s.Forwarded != 0 || s.Queued != 5 {
				t.Errorf("Stats = %+v, want not connected, nothing forwarded, 5 queued", s)
			}
			if msgs := c.Messages(); len(msgs) != 0 {
				t.Errorf("%d messages delivered, want none", len(msgs))
			}
			// Nothing can be delivered: give Close a short deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := u.Close(ctx); !errors.Is(err, uplink.ErrUndelivered) {
				t.Errorf("Close = %v, want ErrUndelivered", err)
			}
		})
	}
}

// TestTLSRereadsFilesAtReconnect changes the CA file while the uplink
// retries: first a CA that did not sign the broker's certificate, then
// garbage, then the right CA. Each attempt reads the file afresh, so the
// uplink reports each problem by key and path and connects once it is fixed.
func TestTLSRereadsFilesAtReconnect(t *testing.T) {
	certs := uplinktest.NewCerts(t)
	m := uplinktest.StartMosquittoTLS(t, certs, false)
	c := uplinktest.Subscribe(t, m.PlainURL(), "flowgate/#")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	copyFile(t, certs.OtherCAFile, caFile)
	log, buf := bufferLogger(t)
	u := newUplink(t, uplink.Options{URL: m.URL(), CAFile: caFile, Logger: log})
	run(t, u)
	evs := makeEvents(10)
	enqueueAll(t, u, evs)

	waitLog(t, buf, "connect failed", "certificate signed by unknown authority")
	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLog(t, buf, "connect failed", "ca_file: "+caFile+": no PEM certificate found")
	copyFile(t, certs.CAFile, caFile)
	checkDelivered(t, evs, c.WaitN(t, len(evs), waitTimeout))
}

// TestRunFailsFastOnBadTLSFiles: files that are unusable when Run starts
// make it return at once, naming the option, rather than retry for ever.
func TestRunFailsFastOnBadTLSFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	u := newUplink(t, uplink.Options{URL: "tls://127.0.0.1:8883", CAFile: missing})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := u.Run(ctx)
	var oe *uplink.OptionError
	if !errors.As(err, &oe) || oe.Key != "ca_file" || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Run = %v, want an *OptionError for ca_file naming %s", err, missing)
	}
	if err := u.Close(ctx); err != nil {
		t.Errorf("Close after a failed Run: %v", err)
	}
}

func TestCheckTLSFiles(t *testing.T) {
	certs := uplinktest.NewCerts(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts uplink.Options
		key  string // "" for no error
		path string // the path the error must name
	}{
		{"none", uplink.Options{}, "", ""},
		{"all good", uplink.Options{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}, "", ""},
		{"CA missing", uplink.Options{CAFile: missing}, "ca_file", missing},
		{"CA empty", uplink.Options{CAFile: empty}, "ca_file", empty},
		{"CA garbage", uplink.Options{CAFile: garbage}, "ca_file", garbage},
		{"CA is a key", uplink.Options{CAFile: certs.ClientKey}, "ca_file", certs.ClientKey},
		{"cert missing", uplink.Options{CertFile: missing, KeyFile: certs.ClientKey}, "cert_file", missing},
		{"cert garbage", uplink.Options{CertFile: garbage, KeyFile: certs.ClientKey}, "cert_file", garbage},
		{"cert is a key", uplink.Options{CertFile: certs.ClientKey, KeyFile: certs.ClientKey}, "cert_file", certs.ClientKey},
		{"key missing", uplink.Options{CertFile: certs.ClientCert, KeyFile: missing}, "key_file", missing},
		{"key garbage", uplink.Options{CertFile: certs.ClientCert, KeyFile: garbage}, "key_file", garbage},
		{"key of another cert", uplink.Options{CertFile: certs.ClientCert, KeyFile: certs.ServerKey}, "key_file", certs.ServerKey},
		{"key without cert", uplink.Options{KeyFile: certs.ClientKey}, "cert_file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := uplink.CheckTLSFiles(tc.opts)
			if tc.key == "" {
				if err != nil {
					t.Fatalf("CheckTLSFiles = %v, want nil", err)
				}
				return
			}
			var oe *uplink.OptionError
			if !errors.As(err, &oe) || oe.Key != tc.key {
				t.Fatalf("CheckTLSFiles = %v, want an *OptionError for %s", err, tc.key)
			}
			if !strings.HasPrefix(err.Error(), "uplink: "+tc.key+": ") || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s and %s", err, tc.key, tc.path)
			}
		})
	}
}

// bufferLogger returns a logger and the buffer it writes to, which the test
// may search; it is shown if the test fails.
func bufferLogger(t testing.TB) (*slog.Logger, *uplinktest.SyncBuffer) {
	buf := new(uplinktest.SyncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uplink log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// waitLog waits until a line written to buf after the call contains every
// one of parts, failing the test after waitTimeout.
func waitLog(t testing.TB, buf *uplinktest.SyncBuffer, parts ...string) {
	t.Helper()
	from := len(buf.String())
	eventually(t, "a log line with "+strings.Join(parts, ", "), func() bool {
		for line := range strings.Lines(buf.String()[from:]) {
			if containsAll(line, parts) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
