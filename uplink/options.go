package uplink

import (
	"log/slog"
	"net/url"
	"strconv"
	"time"
)

// Options configures an Uplink. A zero field takes the default noted beside
// it; a negative or otherwise invalid value is an error, never a default.
type Options struct {
	URL      string // mqtt://host:port or tls://host:port (tls uses the system roots)
	ClientID string // empty lets the broker assign one
	Username string
	Password string

	// Topic is a template: "{type}" and "{subject}" are replaced by the
	// event's Type and Subject, e.g. "flowgate/gw1/events/{type}".
	Topic string

	KeepAlive      time.Duration // whole seconds; default 30s
	ConnectTimeout time.Duration // per connection attempt; default 10s
	QueueSize      int           // events held awaiting PUBACK; default 10000

	// MaxInflight caps unacknowledged publishes. The window used is
	// min(MaxInflight, the broker's Receive Maximum). Default 256.
	MaxInflight int

	// StoreDir is the directory of the durable outbox, a Badger store,
	// created if missing. Empty keeps events in memory only: they are lost
	// when the process ends. With a store, Enqueue returns only once the
	// event is synced to disk, and events survive a crash or power cut.
	StoreDir string

	// CommitInterval bounds how long an accepted event may wait for the sync
	// that makes it durable; commits that take longer are counted in
	// Stats.SlowCommits. Default 10ms; at most 1s. Used only with StoreDir.
	CommitInterval time.Duration

	Logger *slog.Logger // nil discards logs
}

// Defaults for zero Options fields.
const (
	defaultKeepAlive      = 30 * time.Second
	defaultConnectTimeout = 10 * time.Second
	defaultQueueSize      = 10000
	defaultMaxInflight    = 256
	defaultCommitInterval = 10 * time.Millisecond
	maxCommitInterval     = time.Second
)

// maxUint16 bounds MQTT's two-byte fields: keep alive seconds, packet ids,
// Receive Maximum.
const maxUint16 = 1<<16 - 1

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.KeepAlive == 0 {
		o.KeepAlive = defaultKeepAlive
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.QueueSize == 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = defaultMaxInflight
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = defaultCommitInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// validate checks options that have had their defaults applied, and
// returns the broker URL and topic template parsed.
func (o *Options) validate() (*url.URL, topicTemplate, error) {
	broker, err := parseBrokerURL(o.URL)
	if err != nil {
		return nil, nil, err
	}
	topic, err := parseTopic(o.Topic)
	if err != nil {
		return nil, nil, err
	}
	return broker, topic, o.checkLimits()
}

func (o *Options) checkLimits() error {
	switch {
	case o.KeepAlive < time.Second:
		return optionErr("keep_alive", "%v is below the minimum of 1s", o.KeepAlive)
	case o.KeepAlive%time.Second != 0:
		return optionErr("keep_alive", "%v is not a whole number of seconds", o.KeepAlive)
	case o.KeepAlive > maxUint16*time.Second:
		return optionErr("keep_alive", "%v is above MQTT's maximum of %ds", o.KeepAlive, maxUint16)
	case o.ConnectTimeout < 0:
		return optionErr("connect_timeout", "%v is negative", o.ConnectTimeout)
	case o.QueueSize < 0:
		return optionErr("queue_size", "%d is negative", o.QueueSize)
	case o.MaxInflight < 0:
		return optionErr("max_inflight", "%d is negative", o.MaxInflight)
	case o.MaxInflight > maxUint16:
		return optionErr("max_inflight", "%d is above MQTT's maximum of %d", o.MaxInflight, maxUint16)
	case o.CommitInterval < 0:
		return optionErr("commit_interval", "%v is negative", o.CommitInterval)
	case o.CommitInterval > maxCommitInterval:
		return optionErr("commit_interval", "%v is above the maximum of %v", o.CommitInterval, maxCommitInterval)
	}
	return nil
}

// parseBrokerURL accepts exactly scheme://host:port with scheme mqtt or tls.
func parseBrokerURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, optionErr("url", "must not be empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, optionErr("url", "%v", err)
	}
	switch {
	case u.Scheme != "mqtt" && u.Scheme != "tls":
		return nil, optionErr("url", "%q: scheme %q is not supported; use mqtt:// or tls://", s, u.Scheme)
	case u.User != nil:
		return nil, optionErr("url", "%q: credentials belong in username and password, not the url", u.Redacted())
	case u.Hostname() == "":
		return nil, optionErr("url", "%q has no host", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, optionErr("url", "%q: want scheme://host:port, without path or query", s)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > maxUint16 {
		return nil, optionErr("url", "%q: want an explicit port, e.g. %s://%s:1883", s, u.Scheme, u.Hostname())
	}
	return u, nil
}
