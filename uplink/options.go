package uplink

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"
)

// Options configures an Uplink. A zero field takes the default noted beside
// it; a negative or otherwise invalid value is an error, never a default.
type Options struct {
	URL      string // mqtt://host:port or tls://host:port
	ClientID string // empty lets the broker assign one
	Username string
	Password string

	// TLS, with tls:// URLs only. CAFile is a PEM bundle of the CAs that may
	// sign the broker's certificate; empty trusts the system roots. CertFile
	// and KeyFile, both or neither, are the PEM client certificate and key
	// presented for mutual TLS. The files are read when Run connects, and
	// again at every reconnect, so renewed certificates are picked up.
	CAFile   string
	CertFile string
	KeyFile  string

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

	// Classes are the priority lanes, highest priority first: an event
	// goes out before every event of a lower class, and within a class in
	// the order accepted. TTL (0: none) is how long an event of the class
	// may wait for delivery; an older one is dropped and counted. Default:
	// DefaultClasses.
	Classes []Class

	// MaxBytes caps the outbox: the bytes of the queued events, and with a
	// store the size of the store on disk too. 0 means no byte cap. When
	// the cap or QueueSize is reached, WhenFull decides what gives.
	MaxBytes int64
	WhenFull FullPolicy // default DropOldest

	// Replay pacing: while a backlog from before the current connection
	// drains, at most ReplayRate events and ReplayBytes bytes per second of
	// it are sent (0: unpaced). Events accepted since the connection came
	// up are not paced; a higher class goes first in any case.
	ReplayRate  int
	ReplayBytes int64

	// Reconnect backoff: after a failed attempt or a lost connection the
	// wait grows from ReconnectMin, doubling, to ReconnectMax, each wait
	// drawn at random between half and all of its bound (jitter), so a
	// fleet of gateways does not reconnect in step. Defaults 500ms and 1m.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// StallTimeout is the watchdog: a connection that is up, with events
	// waiting, but has had no PUBACK for this long is dropped and opened
	// again. Default 30s; at least 1s.
	StallTimeout time.Duration

	Logger *slog.Logger // nil discards logs

	// noJournal writes every record into Badger at its commit, as before
	// the journal (hot.go): for benchmarks that compare the two.
	noJournal bool
	// hotBytes, if set, replaces the journal's limit on hot bytes: for a
	// benchmark of the journal alone.
	hotBytes int64
}

// Class is one priority lane of the outbox.
type Class struct {
	Name string
	TTL  time.Duration // 0: events of the class never expire
}

// DefaultClasses are the lanes used when Options.Classes is empty: alarms
// before telemetry, and telemetry, the default class, kept a week.
var DefaultClasses = []Class{{Name: "alarm"}, {Name: "telemetry", TTL: 7 * 24 * time.Hour}}

// FullPolicy is what happens when the outbox is full.
type FullPolicy string

const (
	// DropOldest makes room by dropping the oldest event of the lowest
	// class that holds any; each drop is counted.
	DropOldest FullPolicy = "drop_oldest"
	// Reject refuses new events (Enqueue waits for room, then fails when
	// its context ends); nothing queued is dropped.
	Reject FullPolicy = "reject"
)

// Defaults for zero Options fields.
const (
	defaultKeepAlive      = 30 * time.Second
	defaultConnectTimeout = 10 * time.Second
	defaultQueueSize      = 10000
	defaultMaxInflight    = 256
	defaultCommitInterval = 10 * time.Millisecond
	maxCommitInterval     = time.Second
	defaultReconnectMin   = 500 * time.Millisecond
	defaultReconnectMax   = time.Minute
	defaultStallTimeout   = 30 * time.Second
	minStoreBytes         = 64 << 20 // what Badger itself needs on disk
	maxClasses            = 8
	maxClassName          = 255 // stored in a byte (store.go, journal.go)
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
	if o.Classes == nil {
		o.Classes = DefaultClasses
	}
	if o.WhenFull == "" {
		o.WhenFull = DropOldest
	}
	if o.ReconnectMin == 0 {
		o.ReconnectMin = defaultReconnectMin
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = max(defaultReconnectMax, o.ReconnectMin)
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = defaultStallTimeout
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
	if err := o.checkTLS(broker); err != nil {
		return nil, nil, err
	}
	if err := o.checkClasses(); err != nil {
		return nil, nil, err
	}
	if err := o.checkCaps(); err != nil {
		return nil, nil, err
	}
	return broker, topic, o.checkLimits()
}

func (o *Options) checkTLS(broker *url.URL) error {
	switch {
	case broker.Scheme != "tls" && (o.CAFile != "" || o.CertFile != "" || o.KeyFile != ""):
		key := "ca_file"
		if o.CAFile == "" {
			key = "cert_file"
			if o.CertFile == "" {
				key = "key_file"
			}
		}
		return optionErr(key, "needs a tls:// url (the url is %s://)", broker.Scheme)
	case o.CertFile != "" && o.KeyFile == "":
		return optionErr("key_file", "is required with cert_file (mutual TLS needs both)")
	case o.KeyFile != "" && o.CertFile == "":
		return optionErr("cert_file", "is required with key_file (mutual TLS needs both)")
	}
	return nil
}

func (o *Options) checkClasses() error {
	if len(o.Classes) == 0 {
		return optionErr("classes", "must name at least one class")
	}
	if len(o.Classes) > maxClasses {
		return optionErr("classes", "%d classes; at most %d", len(o.Classes), maxClasses)
	}
	for i, c := range o.Classes {
		key := fmt.Sprintf("classes[%d]", i)
		switch {
		case c.Name == "":
			return optionErr(key+".name", "must not be empty")
		case len(c.Name) > maxClassName:
			return optionErr(key+".name", "%d bytes long; at most %d", len(c.Name), maxClassName)
		case c.TTL < 0:
			return optionErr(key+".ttl", "%v is negative", c.TTL)
		case c.TTL > 0 && c.TTL < time.Second:
			return optionErr(key+".ttl", "%v is below the minimum of 1s", c.TTL)
		}
		for _, d := range o.Classes[:i] {
			if d.Name == c.Name {
				return optionErr(key+".name", "class %q is listed twice", c.Name)
			}
		}
	}
	return nil
}

func (o *Options) checkCaps() error {
	switch {
	case o.MaxBytes < 0:
		return optionErr("max_bytes", "%d is negative", o.MaxBytes)
	case o.MaxBytes > 0 && o.StoreDir != "" && o.MaxBytes < minStoreBytes:
		return optionErr("max_bytes", "%d is below the minimum of %d (64 MiB) for a store on disk", o.MaxBytes, minStoreBytes)
	case o.WhenFull != DropOldest && o.WhenFull != Reject:
		return optionErr("when_full", "%q is not %s or %s", o.WhenFull, DropOldest, Reject)
	case o.ReplayRate < 0:
		return optionErr("replay_rate", "%d is negative", o.ReplayRate)
	case o.ReplayBytes < 0:
		return optionErr("replay_bytes", "%d is negative", o.ReplayBytes)
	case o.ReconnectMin < 0:
		return optionErr("reconnect_min", "%v is negative", o.ReconnectMin)
	case o.ReconnectMax < o.ReconnectMin:
		return optionErr("reconnect_max", "%v is below reconnect_min (%v)", o.ReconnectMax, o.ReconnectMin)
	case o.StallTimeout < time.Second:
		return optionErr("stall_timeout", "%v is below the minimum of 1s", o.StallTimeout)
	}
	return nil
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
