package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestAlarmClassEndToEnd: a route sends hot readings in the alarm class.
// While the cloud is away the backlog shows per class in /metrics and
// /healthz; when it returns, the alarms arrive before the older telemetry.
func TestAlarmClassEndToEnd(t *testing.T) {
	cloud := uplinktest.StartMosquitto(t)
	cloud.Stop()
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	cfg := testConfig(t, cloud.URL(), mqttAddr, httpAddr,
		"routes:\n", "routes:\n  - name: hot\n    filter: 'data.temperature > 30'\n    class: alarm\n",
		// Attempts at least half a second apart: the collector below
		// subscribes before the gateway's first attempt after the restart.
		"  store_dir:", "  reconnect_min: 1s\n  reconnect_max: 2s\n  store_dir:")
	g := startGateway(t, cfg, mqttAddr, httpAddr)
	dev, _, err := device(t, mqttAddr, "dev-1", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		temp := 20
		if i >= 4 {
			temp = 40 + i // the last two are alarms
		}
		publish(t, dev, "devices/dev-1/env", fmt.Sprintf(`{"temperature":%d}`, temp))
	}
	metrics := get(t, "http://"+httpAddr+"/metrics")
	for _, want := range []string{
		`flowgate_uplink_class_queued{class="alarm"} 2`,
		`flowgate_uplink_class_queued{class="telemetry"} 4`,
		`flowgate_uplink_queued 6`,
		`flowgate_uplink_dropped_total{reason="expired"} 0`,
		`flowgate_outbox_quarantined_total 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	var h struct {
		Uplink struct {
			QueuedBytes int64   `json:"queued_bytes"`
			OldestAge   float64 `json:"oldest_age_seconds"`
			Classes     []struct {
				Name   string `json:"name"`
				Queued int    `json:"queued"`
			} `json:"classes"`
		} `json:"uplink"`
	}
	if err := json.Unmarshal([]byte(get(t, "http://"+httpAddr+"/healthz")), &h); err != nil ||
		h.Uplink.QueuedBytes <= 0 || h.Uplink.OldestAge <= 0 || len(h.Uplink.Classes) != 2 ||
		h.Uplink.Classes[0].Name != "alarm" || h.Uplink.Classes[0].Queued != 2 {
		t.Errorf("healthz uplink detail: %+v (%v)", h.Uplink, err)
	}

	cloud.Start()
	got := uplinktest.Subscribe(t, cloud.URL(), "cloud/#")
	msgs := got.WaitN(t, 6, 10*time.Second)
	for i, m := range msgs {
		var data struct{ Temperature int }
		_ = json.Unmarshal(decodeEvent(t, m).Data, &data)
		if alarm := data.Temperature > 30; alarm != (i < 2) {
			t.Errorf("message %d has temperature %d: want the two alarms first", i, data.Temperature)
		}
	}
	if code := g.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
