package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
)

func reading(typ, subject, data string) *event.Event {
	return &event.Event{ID: "1", Source: "/gw/devices/" + subject, Type: typ, Subject: subject,
		Time: time.Unix(0, 0), Data: []byte(data), Topic: "devices/" + subject + "/env"}
}

func collect(r *Router, ev *event.Event) []Output {
	var outs []Output
	r.Process(ev, func(o Output) { outs = append(outs, o) })
	return outs
}

func TestRouterFilters(t *testing.T) {
	r, err := NewRouter([]Route{
		{Name: "hot", Types: []string{"env.reading"}, Filter: "data.t > 30", Uplink: true, Topic: "alerts/{subject}/{type}"},
		{Name: "all", Uplink: true},
		{Name: "gps-local", Types: []string{"gps.fix"}, Topic: "local/gps"},
		{Name: "by-subject", Filter: `subject startsWith "truck" && topic endsWith "/env"`, Topic: "trucks"},
	})
	if err != nil {
		t.Fatal(err)
	}
	outs := collect(r, reading("env.reading", "truck-7", `{"t":31}`))
	if len(outs) != 3 || outs[0].Route != "hot" || outs[0].Uplink || outs[0].Topic != "alerts/truck-7/env.reading" {
		t.Fatalf("hot reading: %+v", outs)
	}
	if outs[1].Route != "by-subject" || outs[1].Uplink || outs[1].Topic != "trucks" {
		t.Errorf("local topic of the second route: %+v", outs[1])
	}
	if outs[2].Route != "hot" || !outs[2].Uplink || outs[2].Topic != "" {
		t.Errorf("uplink must be emitted once, last, for the first route: %+v", outs[2])
	}
	outs = collect(r, reading("env.reading", "door-1", `{"t":20}`))
	if len(outs) != 1 || outs[0].Route != "all" || !outs[0].Uplink || outs[0].Topic != "" {
		t.Errorf("cool reading: %+v", outs)
	}
	outs = collect(r, reading("gps.fix", "door-1", `{"lat":1}`))
	if len(outs) != 2 || outs[0].Topic != "local/gps" || outs[0].Uplink || !outs[1].Uplink {
		t.Errorf("gps fix: %+v", outs)
	}
	// A filter over a field the data lacks, or over data that is not an
	// object, is false rather than an error that stops the stream.
	outs = collect(r, reading("env.reading", "door-1", `{"x":1}`))
	if len(outs) != 1 || outs[0].Route != "all" {
		t.Errorf("missing field: %+v", outs)
	}
}

func TestRouterPicksTheHighestClass(t *testing.T) {
	r, err := NewRouter([]Route{
		{Name: "all", Uplink: true, Rank: 1},
		{Name: "hot", Filter: "data.t > 30", Uplink: true, Class: "alarm", Rank: 0},
		{Name: "bulk", Uplink: true, Class: "bulk", Rank: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	for data, want := range map[string]string{`{"t":31}`: "alarm", `{"t":20}`: ""} {
		outs := collect(r, reading("env.reading", "truck-7", data))
		if len(outs) != 1 || !outs[0].Uplink || outs[0].Class != want {
			t.Errorf("%s: %+v, want one uplink output in class %q", data, outs, want)
		}
	}
}

func TestRouterCompileErrors(t *testing.T) {
	_, err := NewRouter([]Route{
		{Name: "ok", Filter: "data.t > 1"},
		{Name: "syntax", Filter: "data.t >> 1"},
		{Name: "unknown", Filter: "temperature > 1"},
		{Name: "notbool", Filter: `"x"`},
	})
	var ces []*CompileError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *CompileError
		if !errors.As(e, &ce) {
			t.Fatalf("not a CompileError: %v", e)
		}
		ces = append(ces, ce)
	}
	if len(ces) != 3 || ces[0].Route != 1 || ces[1].Route != 2 || ces[2].Route != 3 {
		t.Fatalf("errors %+v", ces)
	}
	if ces[1].Offset != 0 || !strings.Contains(ces[1].Msg, "temperature") {
		t.Errorf("unknown name error: %+v", ces[1])
	}
	if ces[0].Offset == 0 {
		t.Errorf("syntax error offset not set: %+v", ces[0])
	}
}

func BenchmarkRouterFilter(b *testing.B) {
	r, err := NewRouter([]Route{{Name: "hot", Types: []string{"env.reading"}, Filter: "data.t > 30", Uplink: true}})
	if err != nil {
		b.Fatal(err)
	}
	ev := reading("env.reading", "truck-7", `{"t":31,"h":40.5,"p":1013}`)
	b.ReportAllocs()
	for b.Loop() {
		r.Process(ev, func(Output) {})
	}
}

func BenchmarkRouterNoFilter(b *testing.B) {
	r, _ := NewRouter([]Route{{Name: "all", Uplink: true}})
	ev := reading("env.reading", "truck-7", `{"t":31}`)
	b.ReportAllocs()
	for b.Loop() {
		r.Process(ev, func(Output) {})
	}
}
