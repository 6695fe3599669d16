package sensors_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/sensors/sensorstest"
)

// sensorPackages are the packages whose tests run the drivers over
// playback buses, the NMEA parser and the supervisor.
var sensorPackages = []string{".", "./bme280", "./mfrc522", "./gps", "./sim"}

// TestPlaybackOnPiCPUs cross-compiles the sensors' tests for the CPUs
// Flowgate ships to and runs them under qemu-user: ARMv6 as in a Pi Zero
// or Pi 1 (qemu's ARM1176, GOARM=6), and ARM64 as in a Pi 3, 4, 5 or Zero
// 2 W. The real periph drivers then exchange their registers, and
// go-nmea parses, on those instruction sets. It needs Debian's
// qemu-user-static; with CI set, its absence is a failure.
func TestPlaybackOnPiCPUs(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds skipped in -short mode")
	}
	for _, target := range sensorstest.PiTargets {
		t.Run(target.Name, func(t *testing.T) {
			qemu, env := target.Emulator(t), target.BuildEnv()
			for _, pkg := range sensorPackages {
				runUnderQEMU(t, qemu, target.CPU, env, pkg)
			}
		})
	}
}

// runUnderQEMU builds pkg's test binary with env and runs it under qemu in
// the package's folder, as go test would.
func runUnderQEMU(t *testing.T, qemu string, cpu, env []string, pkg string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg)+".test")
	build := exec.Command("go", "test", "-c", "-o", bin, pkg)
	build.Env = env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross build of %s: %v\n%s", pkg, err, out)
	}
	args := append(append([]string(nil), cpu...), bin, "-test.count=1", "-test.skip=^TestPlaybackOnPiCPUs$")
	run := exec.Command(qemu, args...)
	run.Dir = pkg
	out, err := run.CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "PASS") {
		t.Errorf("%s under %s: %v\n%s", pkg, filepath.Base(qemu), err, out)
	}
}
