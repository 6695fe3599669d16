package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestRulesEndToEnd runs the real binary with a rules file: a device's
// readings become an excursion that starts and ends (with hysteresis) at
// the cloud, and a session average on a local topic once the device has
// been quiet (the idle timeout lets the clock run on without it); the raw
// readings themselves go nowhere upstream.
func TestRulesEndToEnd(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesFile, `rules:
  - name: excursion
    match: {types: [env.reading]}
    threshold: {field: data.temperature, above: 8, clear_below: 7}
    emit: {type: coldchain.excursion.started, clear_type: coldchain.excursion.ended}
  - name: avg
    match: {types: [env.reading]}
    window: {kind: session, gap: 1s}
    aggregates: {mean: avg(data.temperature)}
    emit: {type: env.avg, route: dash}
`)
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, cloud.URL(), mqttAddr, httpAddr,
		"routes:\n  - name: cloud\n    filter: 'data.skip != true'\n",
		fmt.Sprintf(`routes:
  - name: alarms
    types: [coldchain.excursion.started, coldchain.excursion.ended]
    class: alarm
  - name: dash
    types: [env.avg]
    to: [local]
    local_topic: flowgate/dash/{subject}
rules:
  files: [%q]
  idle_timeout: 1s
  tick: 50ms
`, rulesFile))
	g := startGateway(t, cfg, mqttAddr, httpAddr)

	watcher, _, err := device(t, mqttAddr, "watcher", "pw")
	if err != nil {
		t.Fatal(err)
	}
	dash := make(chan []byte, 10)
	watcher.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		dash <- pr.Packet.Payload
		return true, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := watcher.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "flowgate/dash/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, temp := range []float64{5, 9, 9.5, 7.5, 6} {
		publish(t, dev, "devices/dev-1/env", fmt.Sprintf(`{"temperature":%g}`, temp))
	}

	msgs := got.WaitN(t, 2, 10*time.Second)
	for i, want := range []struct {
		typ   string
		value float64
	}{{"coldchain.excursion.started", 9}, {"coldchain.excursion.ended", 6}} {
		ev := decodeEvent(t, msgs[i])
		var data struct {
			Value    float64
			Subject  string
			CausedBy []string `json:"caused_by"`
			Rule     struct{ Name string }
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil || ev.Type != want.typ || data.Value != want.value ||
			data.Subject != "dev-1" || data.Rule.Name != "excursion" || len(data.CausedBy) == 0 {
			t.Errorf("cloud message %d: type %s data %s (%v), want %s at %v", i, ev.Type, ev.Data, err, want.typ, want.value)
		}
	}
	select {
	case p := <-dash:
		var ev struct {
			Type string
			Data struct {
				Mean  float64
				Count int
			}
		}
		if err := json.Unmarshal(p, &ev); err != nil || ev.Type != "env.avg" || ev.Data.Count != 5 || ev.Data.Mean != 7.4 {
			t.Errorf("local average: %s (%v), want the mean 7.4 of 5 readings", p, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no session average on the local topic")
	}
	if n := len(got.Messages()); n != 2 {
		t.Errorf("cloud got %d messages, want the 2 excursion events only", n)
	}
	metrics := get(t, "http://"+httpAddr+"/metrics")
	for _, want := range []string{
		"flowgate_rules_events_processed_total 5",
		"flowgate_rules_events_derived_total 3",
		"flowgate_rules_events_late_total 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code := g.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// writeFile writes content to path, replacing what was there.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
