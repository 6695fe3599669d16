package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/rules"
	"github.com/flowgate/flowgate/uplink"
)

// sinkFunc adapts a function to the pipeline's sink: what it accepts is
// on disk at once.
type sinkFunc func(context.Context, *event.Event) error

func (f sinkFunc) Submit(ctx context.Context, ev *event.Event, _ string) (uplink.Durable, error) {
	return uplink.Durable{}, f(ctx, ev)
}

func testPipeline(tb testing.TB, up sink, local func(string, []byte) error) *pipeline {
	tb.Helper()
	router, err := rules.NewRouter([]rules.Route{
		{Name: "hot", Types: []string{"env.reading"}, Filter: "data.temperature > 25", Uplink: true},
		{Name: "dash", Types: []string{"env.reading"}, Topic: "dashboard/{subject}"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	p := &pipeline{
		norm: &devices.Normalizer{Source: "/gateways/gw", MaxPayload: 1024,
			Topics: []devices.IngestTopic{{Filter: "devices/+/env", Type: "env.reading"}}},
		flow: rules.NewFlow(router, rules.NewEngine(&rules.RuleSet{}, rules.Options{}), "flowgate/late"), up: up, local: local, deadTopic: "flowgate/deadletter", now: time.Now,
		m: newMetrics(), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	p.init()
	return p
}

// A publish the uplink cannot take (it blocks) is released when the drain
// runs out of time, reported as an error so the device is not acknowledged,
// and publishes after close are refused.
func TestPipelineCloseReleasesBlockedEnqueue(t *testing.T) {
	entered := make(chan struct{})
	p := testPipeline(t, sinkFunc(func(ctx context.Context, _ *event.Event) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}), func(string, []byte) error { return nil })
	d := &devices.Device{ID: "d1"}
	var wg sync.WaitGroup
	var handleErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		handleErr = p.handle(d, "c1", "devices/d1/env", []byte(`{"temperature":30}`))
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.close(ctx); err == nil {
		t.Error("close reported success while a publish was stuck")
	}
	wg.Wait()
	if handleErr == nil {
		t.Error("the stuck publish was reported accepted")
	}
	if err := p.handle(d, "c1", "devices/d1/env", []byte(`{"temperature":30}`)); err != errStopped {
		t.Errorf("publish after close: %v, want errStopped", err)
	}
}

func TestPipelineRoutes(t *testing.T) {
	var up []*event.Event
	local := map[string]int{}
	p := testPipeline(t, sinkFunc(func(_ context.Context, ev *event.Event) error { up = append(up, ev); return nil }),
		func(topic string, _ []byte) error { local[topic]++; return nil })
	d := &devices.Device{ID: "d1"}
	for _, payload := range []string{`{"temperature":30}`, `{"temperature":20}`, `{"temperature":`} {
		if err := p.handle(d, "c1", "devices/d1/env", []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	if len(up) != 1 || string(up[0].Data) != `{"temperature":30}` {
		t.Errorf("uplink got %d events", len(up))
	}
	if local["dashboard/d1"] != 2 || local["flowgate/deadletter"] != 1 {
		t.Errorf("local publishes %v", local)
	}
}

// TestPipelineInvalidEventKeepsTheRest: a publish makes two events for the
// uplink, the reading (class good) and what a rule derives from it (class
// bad). When the uplink refuses the derived one as invalid, the publish is
// dead-lettered and the reading, in the outbox, is still waited for before
// the device is acknowledged; a store error on the reading outranks the
// invalid event, so that the device sends the publish again.
func TestPipelineInvalidEventKeepsTheRest(t *testing.T) {
	set, errs := rules.Parse("rules.yaml", []byte(`rules:
  - name: hot
    match: {types: [env.reading]}
    threshold: {field: data.temperature, above: 25}
    emit: {type: env.hot}
`), rules.Known{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	router, err := rules.NewRouter([]rules.Route{
		{Name: "readings", Types: []string{"env.reading"}, Uplink: true, Class: "good"},
		{Name: "alarms", Types: []string{"env.hot"}, Uplink: true, Class: "bad"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, storeFails := range []bool{false, true} {
		dead := 0
		p := testPipeline(t, sinkFunc(nil), func(topic string, _ []byte) error {
			if topic == "flowgate/deadletter" {
				dead++
			}
			return nil
		})
		p.flow = rules.NewFlow(router, rules.NewEngine(set, rules.Options{}), "flowgate/late")
		var classes []string
		p.up = classSink(func(class string) error {
			classes = append(classes, class)
			switch {
			case class == "bad":
				return fmt.Errorf("%w: no such topic", uplink.ErrInvalidEvent)
			case storeFails:
				return errors.New("disk full")
			}
			return nil
		})
		ps, err := p.accept(&devices.Device{ID: "d1"}, "c1", "devices/d1/env", []byte(`{"temperature":30}`))
		if len(classes) != 2 {
			t.Fatalf("events submitted to classes %v; want the reading's and the derived one's", classes)
		}
		switch {
		case storeFails && err == nil:
			t.Errorf("submitted to %v, the store failing for the reading: the publish was accepted; want the store's error, so the device resends it", classes)
		case !storeFails && (err != nil || len(ps) != 1):
			t.Errorf("submitted to %v: accept = %d promises, %v; want the reading's to wait for", classes, len(ps), err)
		case !storeFails && dead != 1:
			t.Errorf("%d dead letters, want the publish's", dead)
		}
	}
}

// TestDeliverStoreErrorOutranksInvalid: whichever comes first, a store
// error is what deliver reports over an event refused as invalid.
func TestDeliverStoreErrorOutranksInvalid(t *testing.T) {
	p := testPipeline(t, sinkFunc(nil), func(string, []byte) error { return nil })
	disk := errors.New("disk full")
	p.up = classSink(func(class string) error {
		if class == "bad" {
			return fmt.Errorf("%w: no such topic", uplink.ErrInvalidEvent)
		}
		return disk
	})
	for _, order := range [][]string{{"bad", "good"}, {"good", "bad"}} {
		var ps pending
		var upErr error
		for _, class := range order {
			p.deliver(rules.Output{Event: &event.Event{ID: "e"}, Uplink: true, Class: class}, &ps, &upErr)
		}
		if !errors.Is(upErr, disk) {
			t.Errorf("classes %v: deliver reported %v, want the store's error", order, upErr)
		}
	}
}

// classSink is a sink that answers by the class an event goes to.
type classSink func(class string) error

func (f classSink) Submit(_ context.Context, _ *event.Event, class string) (uplink.Durable, error) {
	return uplink.Durable{}, f(class)
}

// BenchmarkPipeline is the gateway's cost per device publish, from payload
// to an accepted event: normalize, filter, enqueue (to a sink that keeps
// nothing) and one local publish (discarded).
func BenchmarkPipeline(b *testing.B) {
	p := testPipeline(b, sinkFunc(func(context.Context, *event.Event) error { return nil }),
		func(string, []byte) error { return nil })
	d := &devices.Device{ID: "truck-7"}
	payload := []byte(`{"temperature":30.5,"humidity":40.2,"ts":1795358040792}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.handle(d, "c1", "devices/truck-7/env", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeadLetterTopic: {device} becomes one topic level, whatever the
// device id or event subject holds; a template without it is used as is.
func TestDeadLetterTopic(t *testing.T) {
	for _, c := range []struct{ template, device, want string }{
		{"$flowgate/deadletter/{device}", "reefer-1", "$flowgate/deadletter/reefer-1"},
		{"$flowgate/deadletter/{device}", "van-7/driver-2", "$flowgate/deadletter/van-7_driver-2"},
		{"$flowgate/deadletter/{device}", "a+b#", "$flowgate/deadletter/a_b_"},
		{"$flowgate/deadletter/{device}", "", "$flowgate/deadletter/_"},
		{"flowgate/deadletter", "reefer-1", "flowgate/deadletter"},
	} {
		if got := DeadLetterTopic(c.template, c.device); got != c.want {
			t.Errorf("DeadLetterTopic(%q, %q) = %q, want %q", c.template, c.device, got, c.want)
		}
	}
	if f := DeadLetterFilter("$flowgate/deadletter/{device}"); f != "$flowgate/deadletter/+" {
		t.Errorf("DeadLetterFilter = %q", f)
	}
}

// TestQuietDoesNotHoldUpPublishes: a checkpoint looks for a moment with
// no publish in progress without queueing for it, so a publish stuck on a
// full outbox postpones the checkpoint instead of holding up every other
// publish behind it.
func TestQuietDoesNotHoldUpPublishes(t *testing.T) {
	p := testPipeline(t, sinkFunc(func(context.Context, *event.Event) error { return nil }), func(string, []byte) error { return nil })
	p.mu.RLock() // a publish waiting for room in a full outbox
	quiet := make(chan bool, 1)
	go func() { quiet <- p.quiet(200*time.Millisecond, func() {}) }()
	handled := make(chan error, 1)
	go func() {
		handled <- p.handle(&devices.Device{ID: "d1"}, "c1", "devices/d1/env", []byte(`{"temperature":30}`))
	}()
	select {
	case err := <-handled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a publish was held up by the checkpoint")
	}
	if <-quiet {
		t.Error("the checkpoint ran while a publish was in progress")
	}
	p.mu.RUnlock()
	if !p.quiet(time.Second, func() {}) {
		t.Error("the checkpoint did not run with no publish in progress")
	}
}
