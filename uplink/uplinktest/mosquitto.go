// Package uplinktest runs a real Mosquitto broker on loopback for tests of
// the uplink and of anything that forwards events through it, and collects
// what arrives at that broker.
//
// A real broker, not a fake, because what the uplink promises (ack-then-
// delete, resend after an outage, an in-flight window bounded by the broker's
// Receive Maximum) only means something against a broker that really
// acknowledges, throttles and dies. Mosquitto 2.0 is what Debian ships and
// what Flowgate's performance targets are measured against.
//
// Tests skip when mosquitto is not installed, unless the CI environment
// variable is set, in which case they fail: CI must not go green by skipping.
package uplinktest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a broker may take to accept connections.
const startTimeout = 5 * time.Second

// Mosquitto is a broker process listening on 127.0.0.1. It can be stopped
// and started again on the same port to simulate an outage.
type Mosquitto struct {
	t    testing.TB
	bin  string
	conf string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    SyncBuffer    // stderr of every run, shown when the test fails
}

// StartMosquitto starts a broker on a free loopback port and stops it when
// the test ends. Each extra string is appended to the configuration as a line,
// for example "max_inflight_messages 5" or "acl_file /path".
func StartMosquitto(t testing.TB, extra ...string) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, bin: findMosquitto(t), port: freePort(t)}
	m.conf = writeConfig(t, m.port, extra)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.log.String())
		}
	})
	m.Start()
	return m
}

// Addr returns the broker's address, "127.0.0.1:PORT".
func (m *Mosquitto) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))
}

// URL returns the broker's URL, "mqtt://127.0.0.1:PORT".
func (m *Mosquitto) URL() string {
	return "mqtt://" + m.Addr()
}

// Start starts the broker again, on the same port, after Stop. It returns
// once the port accepts connections. Start on a running broker does nothing.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout = &m.log
	cmd.Stderr = &m.log
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("uplinktest: start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the error is the kill we asked for, or shown by waitListening
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	if err := waitListening(m.Addr(), exited); err != nil {
		m.t.Fatalf("uplinktest: mosquitto on %s: %v\n%s", m.Addr(), err, m.log.String())
	}
}

// Stop kills the broker abruptly, as a crash or power cut would, and waits
// for the process to exit. Stop on a stopped broker does nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill() // fails only if it already exited
	<-m.exited
	m.cmd, m.exited = nil, nil
}

// Shutdown stops the broker gracefully (SIGTERM), so that with persistence
// on it saves its sessions and queued messages, and waits for it to exit.
// Mosquitto 2.0.11 can miss a SIGTERM that arrives just after it started
// listening, so the signal is repeated every second; after 10 s the broker
// is killed, and the test is told. Shutdown on a stopped broker does nothing.
func (m *Mosquitto) Shutdown() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for stopped := false; !stopped; {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
			stopped = true
		case <-tick.C:
			if time.Now().After(deadline) {
				m.t.Errorf("uplinktest: mosquitto did not stop within 10s of SIGTERM; killed it")
				_ = m.cmd.Process.Kill()
				<-m.exited
				stopped = true
			}
		}
	}
	m.cmd, m.exited = nil, nil
}

// Pause freezes the broker (SIGSTOP) and returns once it has stopped:
// connections stay open, but nothing is read, delivered or acknowledged until
// Resume. Publishes sent meanwhile stay in flight, which makes the in-flight
// window observable.
func (m *Mosquitto) Pause() {
	m.t.Helper()
	m.signal(syscall.SIGSTOP)
	m.mu.Lock()
	pid := m.cmd.Process.Pid
	m.mu.Unlock()
	if err := waitStopped(pid); err != nil {
		m.t.Fatalf("uplinktest: pause mosquitto: %v", err)
	}
}

// Resume lets a paused broker run again (SIGCONT).
func (m *Mosquitto) Resume() { m.signal(syscall.SIGCONT) }

func (m *Mosquitto) signal(sig os.Signal) {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		m.t.Fatalf("uplinktest: mosquitto is not running")
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatalf("uplinktest: signal mosquitto: %v", err)
	}
}

// findMosquitto returns the broker binary, or skips (fails under CI) the test.
func findMosquitto(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "" {
		t.Skip("mosquitto not installed; apt-get install mosquitto")
	}
	t.Fatal("mosquitto not installed (CI is set, so this fails rather than skips); apt-get install mosquitto")
	return ""
}

// freePort asks the kernel for a loopback port that is free right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("uplinktest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is a loopback host:port that is free right now, for a server a
// test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

func writeConfig(t testing.TB, port int, extra []string) string {
	t.Helper()
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		// Never drop messages queued for a slow test subscriber.
		"max_queued_messages 0",
	}
	if os.Geteuid() == 0 {
		// As root, mosquitto drops privileges to the user "mosquitto", which
		// cannot read files in the test's private temporary directory.
		lines = append(lines, "user root")
	}
	lines = append(lines, extra...)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("uplinktest: write mosquitto config: %v", err)
	}
	return conf
}

// waitListening polls addr until it accepts a connection, the process exits
// or startTimeout passes.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections after %v: %w", startTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("process exited during start")
		case <-tick.C:
		}
	}
}

// waitStopped polls Linux's /proc until process pid is in the stopped state:
// a signal is delivered asynchronously, and a broker still running for a few
// microseconds after Pause would acknowledge what the test expects in flight.
// Without /proc it returns at once.
func waitStopped(pid int) error {
	stat := fmt.Sprintf("/proc/%d/stat", pid)
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(stat)
		if err != nil {
			return nil // no procfs: the best we can do is the signal itself
		}
		// The state follows the parenthesised command name: "pid (comm) T ...".
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped after %v", pid, startTimeout)
		}
		<-tick.C
	}
}

// SyncBuffer is a bytes.Buffer that a process's output goroutine (or a
// logger) and a test may use at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Reload makes the broker reread its configuration (SIGHUP), for example an
// ACL file the test has rewritten.
func (m *Mosquitto) Reload() { m.signal(syscall.SIGHUP) }
