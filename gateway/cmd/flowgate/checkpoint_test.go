package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestRulesStateSurvivesKill: a driver's shift starts, the rules' state is
// checkpointed, and the gateway is killed (kill -9) before the shift's
// deadline. The deadline passes while it is down; when it comes back the
// pending absence is restored and fires: the cloud gets the overrun.
func TestRulesStateSurvivesKill(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesFile, `rules:
  - name: shift-overrun
    match: {types: [env.reading]}
    absence:
      start: {filter: data.shift == "start"}
      end: {filter: data.shift == "end"}
      within: 2s
    emit: {type: driver.shift.overrun}
`)
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, cloud.URL(), mqttAddr, httpAddr,
		"routes:\n  - name: cloud\n    filter: 'data.skip != true'\n", fmt.Sprintf(`routes:
  - name: cloud
    types: [driver.shift.overrun]
rules:
  files: [%q]
  idle_timeout: 1s
  tick: 50ms
  checkpoint_interval: 50ms
`, rulesFile))
	g := startGateway(t, cfg, mqttAddr, httpAddr)
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dev, "devices/dev-1/env", `{"shift":"start"}`)
	waitFor(t, 10*time.Second, "a checkpoint after the shift started", func() bool {
		m := get(t, "http://"+httpAddr+"/metrics")
		return strings.Contains(m, "flowgate_rules_events_processed_total 1") &&
			!strings.Contains(m, `flowgate_rules_checkpoints_total{result="saved"} 0`)
	})
	_ = g.cmd.Process.Kill()
	<-g.exited
	if n := len(got.Messages()); n != 0 {
		t.Fatalf("the overrun reached the cloud before the kill (%d messages): the test proves nothing", n)
	}

	again := startGateway(t, cfg, mqttAddr, httpAddr)
	msgs := got.WaitN(t, 1, 15*time.Second)
	if ev := decodeEvent(t, msgs[0]); ev.Type != "driver.shift.overrun" || ev.Subject != "dev-1" {
		t.Errorf("cloud got %s about %q, want driver.shift.overrun about dev-1", ev.Type, ev.Subject)
	}
	if !strings.Contains(again.log.String(), "rules state restored") {
		t.Errorf("the restart did not log the restore:\n%s", again.log.String())
	}
	if code := again.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
