package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestARMv6Binary builds the static binary a Pi Zero runs and runs it under
// qemu's ARM1176 (the Pi Zero's core): check the demo config and print the
// version. It needs Debian's qemu-user-static.
func TestARMv6Binary(t *testing.T) {
	if testing.Short() {
		t.Skip("cross build skipped in -short mode")
	}
	qemu, err := exec.LookPath("qemu-arm-static")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-arm-static not installed (apt-get install qemu-user-static)")
		}
		t.Skip("qemu-arm-static not installed; apt-get install qemu-user-static")
	}
	bin := filepath.Join(t.TempDir(), "flowgate-armv6")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=6")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross build: %v\n%s", err, out)
	}
	out, err := exec.Command(qemu, "-cpu", "arm1176", bin, "check", "-c", "../../../configs/demo.yaml").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("armv6 check: %v: %s", err, out)
	}
	out, err = exec.Command(qemu, "-cpu", "arm1176", bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "flowgate ") {
		t.Errorf("armv6 version: %v: %s", err, out)
	}
}
