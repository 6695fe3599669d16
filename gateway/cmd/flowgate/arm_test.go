package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/sensors/sensorstest"
)

// TestPiBinaries builds the static binaries Pis run and runs each under
// qemu-user: ARMv6 under qemu's ARM1176 (the core of a Pi Zero or Pi 1,
// GOARM=6) and ARM64 (a Pi 3, 4, 5 or Zero 2 W with a 64-bit OS). Each
// checks the demo config and the Pi sensors config (periph's drivers are
// in the binary; check opens no hardware) and prints its version. It needs
// Debian's qemu-user-static; with CI set, its absence is a failure.
func TestPiBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds skipped in -short mode")
	}
	for _, target := range sensorstest.PiTargets {
		t.Run(target.Name, func(t *testing.T) {
			qemu := target.Emulator(t)
			bin := filepath.Join(t.TempDir(), "flowgate-"+target.Name)
			build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
			build.Env = target.BuildEnv()
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("cross build: %v\n%s", err, out)
			}
			runQEMU := func(args ...string) (string, error) {
				cmd := exec.Command(qemu, append(append(append([]string(nil), target.CPU...), bin), args...)...)
				cmd.Env = append(os.Environ(), "FLOWGATE_CLOUD_PASSWORD=x")
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			for _, cfg := range []string{"demo.yaml", "sensors-pi.yaml"} {
				if out, err := runQEMU("check", "-c", "../../../configs/"+cfg); err != nil || strings.TrimSpace(out) != "ok" {
					t.Errorf("%s check %s: %v: %s", target.Name, cfg, err, out)
				}
			}
			if out, err := runQEMU("version"); err != nil || !strings.HasPrefix(out, "flowgate ") {
				t.Errorf("%s version: %v: %s", target.Name, err, out)
			}
		})
	}
}
