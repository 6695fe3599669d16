package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server process the harness started and must stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    syncBuffer
	once   sync.Once
}

// start runs bin with args and env added to the harness's own.
func start(name, bin string, args, env []string) (*proc, error) {
	p := &proc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	// Should the harness itself die (a test's timeout panics past every
	// defer), the kernel stops its servers too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait() // its error is the signal we sent, or shown by waitTCP
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 30 s, then kills. It is safe to call
// twice and returns once the process is gone.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-p.exited:
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// waitTCP polls addr until it accepts a connection, the process exits or
// the timeout passes.
func (p *proc) waitTCP(addr string, timeout time.Duration) error {
	return p.poll(timeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// waitHealthy polls a Flowgate /healthz until it answers 200.
func (p *proc) waitHealthy(url string, timeout time.Duration) error {
	cl := &http.Client{Timeout: time.Second}
	return p.poll(timeout, func() bool {
		resp, err := cl.Get(url)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *proc) poll(timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not ready after %v:\n%s", p.name, timeout, p.log.String())
		}
		select {
		case <-p.exited:
			return fmt.Errorf("bench: %s exited during start:\n%s", p.name, p.log.String())
		case <-tick.C:
		}
	}
	return nil
}

// freeAddr is a loopback host:port that is free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// mosquittoConf is the configuration of both mosquittos, the reference and
// the stand-in cloud: Debian's defaults but for what a benchmark needs.
// Nothing queued for a subscriber is dropped (max_queued_messages 0), so
// losses mean something, and 256 QoS 1 messages may be in flight to a
// subscriber, the window Flowgate's uplink is allowed by the cloud.
func mosquittoConf(dir, addr string) (string, error) {
	_, port, _ := net.SplitHostPort(addr)
	lines := []string{"listener " + port + " 127.0.0.1", "allow_anonymous true", "persistence false",
		"max_queued_messages 0", "max_inflight_messages 256", "log_dest stderr", "log_type error", "log_type warning"}
	if os.Geteuid() == 0 {
		lines = append(lines, "user root") // as root it would switch to a user who cannot read dir
	}
	f := filepath.Join(dir, "mosquitto-"+port+".conf")
	return f, os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// startMosquitto starts a mosquitto on a free loopback port.
func startMosquitto(ctx context.Context, bin, dir, name string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	conf, err := mosquittoConf(dir, addr)
	if err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	p, err := serve(ctx, name, bin, addr, "-c", conf)
	return p, addr, err
}

// startMochi starts `sim broker`, mochi alone, on a free loopback port.
func startMochi(ctx context.Context, sim string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := serve(ctx, "mochi alone", sim, addr, "broker", "-listen", addr)
	return p, addr, err
}

// serve starts a broker and waits until it accepts connections on addr.
func serve(ctx context.Context, name, bin, addr string, args ...string) (*proc, error) {
	p, err := start(name, bin, args, nil)
	if err != nil {
		return nil, err
	}
	if err := p.waitTCP(addr, 5*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	if err := ctx.Err(); err != nil { // interrupted while it started: nobody else would stop it
		p.stop()
		return nil, err
	}
	return p, nil
}

// findMosquitto is the mosquitto binary: the given path, on PATH, or in
// Debian's /usr/sbin.
func findMosquitto(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", errors.New("bench: mosquitto not found (apt-get install mosquitto)")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 { // keep the first MiB of a chatty process
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
