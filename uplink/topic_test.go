package uplink

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flowgate/flowgate/event"
)

func TestTopicExpand(t *testing.T) {
	tt, err := parseTopic("gw/{type}/x/{subject}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tt.expand(&event.Event{ID: "1", Type: "env.reading", Subject: "truck-7"})
	if want := "gw/env.reading/x/truck-7"; err != nil || got != want {
		t.Errorf("expand = %q, %v; want %q", got, err, want)
	}
}

func FuzzTopic(f *testing.F) {
	for _, seed := range [][3]string{
		{"flowgate/gw1/events/{type}", "env.reading", "truck-7"},
		{"{subject}", "", ""},
		{"{type}{subject}", "a/#", "b"},
		{"a/{subject}/{type}", "\x00", "$x"},
		{"{nope}/{type", "t", "s"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, template, typ, subject string) {
		tt, err := parseTopic(template)
		if err != nil {
			return
		}
		topic, err := tt.expand(&event.Event{ID: "1", Type: typ, Subject: subject})
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("expand error %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		if topic == "" || strings.ContainsAny(topic, "+#\x00") || topic[0] == '$' || !utf8.ValidString(topic) {
			t.Fatalf("template %q made invalid topic %q", template, topic)
		}
	})
}
