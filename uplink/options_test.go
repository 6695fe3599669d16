package uplink_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink"
)

func TestNewRejectsBadOptions(t *testing.T) {
	good := uplink.Options{URL: "mqtt://broker.example:1883", Topic: testTopic}
	for _, tc := range []struct {
		name    string
		edit    func(*uplink.Options)
		key     string
		mention string
	}{
		{"empty url", func(o *uplink.Options) { o.URL = "" }, "url", "must not be empty"},
		{"bad scheme", func(o *uplink.Options) { o.URL = "http://broker.example:1883" }, "url", `scheme "http"`},
		{"no scheme", func(o *uplink.Options) { o.URL = "broker.example:1883" }, "url", "not supported"},
		{"no port", func(o *uplink.Options) { o.URL = "tls://broker.example" }, "url", "explicit port"},
		{"no host", func(o *uplink.Options) { o.URL = "mqtt://:1883" }, "url", "no host"},
		{"path", func(o *uplink.Options) { o.URL = "mqtt://broker.example:1883/x" }, "url", "without path"},
		{"credentials in url", func(o *uplink.Options) { o.URL = "mqtt://u:secret@broker.example:1883" }, "url", "username and password"},
		{"empty topic", func(o *uplink.Options) { o.Topic = "" }, "topic", "must not be empty"},
		{"wildcard topic", func(o *uplink.Options) { o.Topic = "gw/+/{type}" }, "topic", "wildcards"},
		{"unknown placeholder", func(o *uplink.Options) { o.Topic = "gw/{source}" }, "topic", "{source}"},
		{"unclosed placeholder", func(o *uplink.Options) { o.Topic = "gw/{type" }, "topic", "unknown placeholder"},
		{"stray brace", func(o *uplink.Options) { o.Topic = "gw/type}" }, "topic", "unmatched"},
		{"reserved topic", func(o *uplink.Options) { o.Topic = "$SYS/{type}" }, "topic", "reserved"},
		{"negative queue", func(o *uplink.Options) { o.QueueSize = -1 }, "queue_size", "negative"},
		{"negative inflight", func(o *uplink.Options) { o.MaxInflight = -1 }, "max_inflight", "negative"},
		{"huge inflight", func(o *uplink.Options) { o.MaxInflight = 70000 }, "max_inflight", "65535"},
		{"sub-second keep alive", func(o *uplink.Options) { o.KeepAlive = 500 * time.Millisecond }, "keep_alive", "minimum"},
		{"fractional keep alive", func(o *uplink.Options) { o.KeepAlive = 1500 * time.Millisecond }, "keep_alive", "whole"},
		{"negative connect timeout", func(o *uplink.Options) { o.ConnectTimeout = -time.Second }, "connect_timeout", "negative"},
		{"negative commit interval", func(o *uplink.Options) { o.CommitInterval = -time.Millisecond }, "commit_interval", "negative"},
		{"long commit interval", func(o *uplink.Options) { o.CommitInterval = 2 * time.Second }, "commit_interval", "maximum of 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := good
			tc.edit(&opts)
			u, err := uplink.New(opts)
			var oe *uplink.OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("New = %v, %v; want an *OptionError", u, err)
			}
			if oe.Key != tc.key || !strings.Contains(err.Error(), tc.mention) ||
				!strings.HasPrefix(err.Error(), "uplink: "+tc.key+": ") {
				t.Errorf("error %q (key %q), want key %q and a mention of %q", err, oe.Key, tc.key, tc.mention)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestNewAcceptsGoodOptions(t *testing.T) {
	for _, opts := range []uplink.Options{
		{URL: "mqtt://127.0.0.1:1883", Topic: "a"},
		{URL: "tls://broker.example:8883", Topic: "gw1/{type}/{subject}", KeepAlive: time.Minute},
		{URL: "mqtt://[::1]:1883", Topic: "{subject}", MaxInflight: 65535, QueueSize: 1},
	} {
		if _, err := uplink.New(opts); err != nil {
			t.Errorf("New(%+v): %v", opts, err)
		}
	}
}
