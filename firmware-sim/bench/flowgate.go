package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// devicePassword is every benchmark device's password.
const devicePassword = "bench"

// writeDevices writes a devices file of n devices bench-0 … bench-(n-1).
// The hash is made at bcrypt's lowest cost: a thousand devices connecting
// at the default cost would spend a minute of CPU on logins, which is not
// what this benchmark measures (the registry caches a verified password
// either way).
func writeDevices(dir string, n int) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(devicePassword), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	var b strings.Builder
	b.WriteString("devices:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {id: bench-%d, password_hash: %q}\n", i, h)
	}
	f := filepath.Join(dir, "devices.yaml")
	return f, os.WriteFile(f, []byte(b.String()), 0o600)
}

// gateway is a running flowgate process and its addresses.
type gateway struct {
	*proc
	mqtt, http string
}

// startFlowgate runs `flowgate run -c config` with a fresh store in dir,
// its broker and HTTP server on free loopback ports and its uplink to
// cloud, and waits until /healthz answers 200.
func startFlowgate(ctx context.Context, o *Options, dir, devicesFile, cloud string) (*gateway, error) {
	mqtt, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	store, err := os.MkdirTemp(dir, "outbox-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	env := []string{"FLOWGATE_BENCH_MQTT=" + mqtt, "FLOWGATE_BENCH_HTTP=" + httpAddr,
		"FLOWGATE_BENCH_DEVICES=" + devicesFile, "FLOWGATE_BENCH_CLOUD=mqtt://" + cloud,
		"FLOWGATE_BENCH_STORE=" + store}
	p, err := start("flowgate", o.Flowgate, []string{"run", "-c", o.Config}, env)
	if err != nil {
		return nil, err
	}
	g := &gateway{proc: p, mqtt: mqtt, http: httpAddr}
	if err := p.waitHealthy("http://"+httpAddr+"/healthz", 30*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	if err := p.waitTCP(mqtt, 5*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	if err := ctx.Err(); err != nil { // interrupted while it started: nobody else would stop it
		p.stop()
		return nil, err
	}
	return g, nil
}

// profile fetches one of the gateway's pprof profiles into file: "profile"
// with seconds > 0 is a CPU profile over that time, "heap" a heap profile.
func (g *gateway) profile(ctx context.Context, name string, seconds int, file string) error {
	url := "http://" + g.http + "/debug/pprof/" + name
	if seconds > 0 {
		url += fmt.Sprintf("?seconds=%d", seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: profile %s: %s (is http.pprof on in %s?)", name, resp.Status, g.name)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("bench: profile %s: %w", name, err)
	}
	return f.Close()
}
