package devices

import "testing"

func TestMatchTopic(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"+", "", true},
		{"a/+", "a/", true},
		{"devices/+/env", "devices/t1/env", true},
		{"devices/+/env", "devices/t1/gps", false},
	} {
		if got := MatchTopic(c.filter, c.topic); got != c.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestFilterCovers(t *testing.T) {
	for _, c := range []struct {
		allowed, sub string
		want         bool
	}{
		{"cmd/t1/#", "cmd/t1/#", true},
		{"cmd/t1/#", "cmd/t1/+", true},
		{"cmd/t1/#", "cmd/t1/a/b", true},
		{"cmd/t1/#", "cmd/t1", true},
		{"cmd/t1/#", "cmd/#", false},
		{"cmd/t1/#", "cmd/+/x", false},
		{"cmd/+/x", "cmd/t1/x", true},
		{"cmd/+/x", "cmd/+/x", true},
		{"cmd/t1/x", "cmd/+/x", false},
		{"cmd/t1/x", "cmd/t1/x/y", false},
		{"#", "anything/#", true},
		{"#", "$SYS/#", false},
		{"$SYS/#", "$SYS/broker/+", true},
	} {
		if got := FilterCovers(c.allowed, c.sub); got != c.want {
			t.Errorf("FilterCovers(%q, %q) = %v, want %v", c.allowed, c.sub, got, c.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	for s, want := range map[string]bool{
		"a/b": true, "a/+/c": true, "#": true, "a/#": true,
		"": false, "a/#/b": false, "a+/b": false, "a/b#": false,
	} {
		if got := ValidFilter(s); got != want {
			t.Errorf("ValidFilter(%q) = %v, want %v", s, got, want)
		}
	}
}

func BenchmarkMatchTopic(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		MatchTopic("devices/+/sensors/#", "devices/truck-7/sensors/env/temperature")
	}
}
