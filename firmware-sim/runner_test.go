package sim

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// TestRunnerMQTT311 plays a short facility scenario with MQTT 3.1.1
// devices (QoS 1, credentials, a last will) against mosquitto and checks
// that every planned message arrives, once, on its topic, with its
// payload, and that no will fires when the devices disconnect.
func TestRunnerMQTT311(t *testing.T) {
	broker := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, broker.URL(), "devices/#")
	plan, err := NewPlan("facility", Options{Seed: 7, Start: DefaultStart(time.Now()), Duration: 30 * time.Minute, Faults: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Broker: broker.URL(), Plan: plan, Clock: &Clock{Start: plan.Start, Speed: 3600},
		Secret: "s", MQTT: 3, QoS: 1, Will: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.Stats.Sent.Load(); n != int64(plan.Count()) || r.Stats.Errors.Load() != 0 {
		t.Fatalf("sent %d of %d messages, %d errors", n, plan.Count(), r.Stats.Errors.Load())
	}
	want := map[string]int{}
	for i, d := range plan.Devices {
		for _, m := range plan.Messages[i] {
			want["devices/"+d.ID+"/"+m.Topic+" "+string(m.Payload())]++
		}
	}
	msgs := got.WaitN(t, plan.Count(), 30*time.Second)
	for _, m := range msgs {
		k := m.Topic + " " + string(m.Payload)
		if want[k] == 0 {
			t.Errorf("unexpected: %s", k)
			continue
		}
		want[k]--
	}
	for k, n := range want {
		if n != 0 {
			t.Errorf("missing %d×: %s", n, k)
		}
	}
	t.Logf("%d devices sent %d messages over MQTT 3.1.1, %d malformed on purpose", len(plan.Devices), len(msgs), r.Stats.Broken.Load())
}

// TestRunnerRejectsMQTTVersion: only 3 and 5 are spoken.
func TestRunnerRejectsMQTTVersion(t *testing.T) {
	plan, err := NewPlan("facility", Options{Seed: 1, Start: DefaultStart(time.Now()), Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Broker: "mqtt://127.0.0.1:1", Plan: plan, Clock: &Clock{Start: plan.Start, Speed: 1}, MQTT: 4}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("MQTT 4 accepted")
	} else {
		t.Log(strconv.Quote(err.Error()))
	}
}
