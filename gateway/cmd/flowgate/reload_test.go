package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestReloadRules edits the rules of a running gateway. A rule whose
// definition did not change keeps its state across the reload (an
// excursion that started before it ends after it, and is not started
// twice); a changed rule takes its new definition; a new rule runs; a rules
// file with an error is refused with its file:line:col and the rules in
// force keep running. One reload comes from SIGHUP, the others from the
// file check.
func TestReloadRules(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	const excursion = `rules:
  - name: excursion
    match: {types: [env.reading]}
    threshold: {field: data.temperature, above: 8, clear_below: 7}
    emit: {type: coldchain.excursion.started, clear_type: coldchain.excursion.ended}
`
	hot := func(limit int) string {
		return fmt.Sprintf(`  - name: hot
    match: {types: [env.reading]}
    filter: data.temperature > %d
    emit: {type: env.hot}
`, limit)
	}
	write := func(content string) { t.Helper(); writeFile(t, rulesFile, content) }
	write(excursion + hot(30))
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, cloud.URL(), mqttAddr, httpAddr,
		"routes:\n  - name: cloud\n    filter: 'data.skip != true'\n", fmt.Sprintf(`routes:
  - name: cloud
    filter: type != "env.reading"
rules:
  files: [%q]
`, rulesFile),
		"  shutdown_timeout: 10s\n", "  shutdown_timeout: 10s\n  reload_check: 50ms\n")
	g := startGateway(t, cfg, mqttAddr, httpAddr)
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	reloads := func(result string, n int) {
		t.Helper()
		want := fmt.Sprintf(`flowgate_reloads_total{result=%q} %d`, result, n)
		waitFor(t, 10*time.Second, want, func() bool { return strings.Contains(get(t, "http://"+httpAddr+"/metrics"), want) })
	}
	types := func(n int) []string {
		t.Helper()
		var out []string
		for _, m := range got.WaitN(t, n, 10*time.Second) {
			out = append(out, decodeEvent(t, m).Type)
		}
		return out
	}

	publish(t, dev, "devices/dev-1/env", `{"temperature":9}`) // the excursion starts
	types(1)

	// hot changes (30 → 20), cold is new, excursion is as it was.
	write(excursion + hot(20) + `  - name: cold
    match: {types: [env.reading]}
    filter: data.temperature < 0
    emit: {type: env.cold}
`)
	reloads("applied", 1)
	publish(t, dev, "devices/dev-1/env", `{"temperature":25}`) // hot under its new limit; still in the excursion
	publish(t, dev, "devices/dev-1/env", `{"temperature":-1}`) // cold; the excursion that began before the reload ends
	want := []string{"coldchain.excursion.started", "env.hot", "coldchain.excursion.ended", "env.cold"}
	if got := types(4); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cloud got %v, want %v", got, want)
	}

	// A broken file is refused; the rules in force keep running.
	write(excursion + "  - name: broken\n    match: {types: [env.reading]}\n    filter: data.temperature >\n    emit: {type: env.x}\n")
	reloads("refused", 1)
	if log := g.log.String(); !strings.Contains(log, rulesFile+":8:") {
		t.Errorf("the refusal does not name %s:8:COL; log:\n%s", rulesFile, log)
	}
	// SIGHUP: the file is still broken, so refused again.
	_ = g.cmd.Process.Signal(syscall.SIGHUP)
	reloads("refused", 2)
	publish(t, dev, "devices/dev-1/env", `{"temperature":21}`)
	publish(t, dev, "devices/dev-1/env", `{"temperature":-2}`)
	want = append(want, "coldchain.excursion.started", "env.hot", "coldchain.excursion.ended", "env.cold")
	if got := types(8); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after the refused reloads the cloud got %v, want %v (the rules in force)", got, want)
	}
	if code := g.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
