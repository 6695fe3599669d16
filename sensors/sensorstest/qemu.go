package sensorstest

import (
	"os"
	"os/exec"
	"testing"
)

// A PiTarget is a CPU Flowgate ships to, as Debian's qemu-user-static runs
// it on an amd64 machine.
type PiTarget struct {
	Name          string   // armv6, arm64
	GOARCH, GOARM string   // of the static cross build
	QEMU          string   // the emulator's command
	CPU           []string // the emulator's CPU flags, if any
}

// PiTargets are ARMv6 under qemu's ARM1176 (the core of a Pi Zero or Pi 1,
// GOARM=6) and ARM64 (a Pi 3, 4, 5 or Zero 2 W with a 64-bit OS).
var PiTargets = []PiTarget{
	{Name: "armv6", GOARCH: "arm", GOARM: "6", QEMU: "qemu-arm-static", CPU: []string{"-cpu", "arm1176"}},
	{Name: "arm64", GOARCH: "arm64", QEMU: "qemu-aarch64-static"},
}

// Emulator is the path of p's emulator. Without it the test is skipped,
// or fails when CI is set.
func (p PiTarget) Emulator(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath(p.QEMU)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (apt-get install qemu-user-static)", p.QEMU)
		}
		t.Skipf("%s not installed; apt-get install qemu-user-static", p.QEMU)
	}
	return path
}

// BuildEnv is the environment of a static cross build for p.
func (p PiTarget) BuildEnv() []string {
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.GOARCH, "GOFLAGS=")
	if p.GOARM != "" {
		env = append(env, "GOARM="+p.GOARM)
	}
	return env
}
