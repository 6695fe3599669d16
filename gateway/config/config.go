// Package config is the gateway's configuration: its shape, its defaults and
// its validation, in that order (decode → defaults → validate).
//
// Every problem is reported with the file, line and column it comes from, all
// at once, so `flowgate check -c FILE` can list them the way a compiler does.
// The config is plain data: gateway/ maps it onto the components.
package config

import (
	"log/slog"
	"strings"
	"time"

	"github.com/flowgate/flowgate/uplink"
)

// Config is the whole gateway configuration file.
type Config struct {
	Gateway     Gateway  `yaml:"gateway"`
	Log         Log      `yaml:"log"`
	Broker      Broker   `yaml:"broker"`
	HTTP        HTTP     `yaml:"http"`
	DevicesFile string   `yaml:"devices_file"` // more devices in a separate file, relative to this one
	Devices     []Device `yaml:"devices"`
	Ingest      Ingest   `yaml:"ingest"`
	Routes      []Route  `yaml:"routes"`
	Uplink      Uplink   `yaml:"uplink"`

	// ProfilesFile and CatalogFile are the event library: how each device
	// kind's payload becomes canonical fields, and every event type with
	// its schema. Both relative to this file. See library.go.
	ProfilesFile string `yaml:"profiles_file"`
	CatalogFile  string `yaml:"catalog_file"`

	// Library is the two files loaded and compiled. See library.go.
	Library   Library `yaml:"-"`
	catalogOK bool    // the catalog compiled without a problem

	// Rules are the rule sets and the engine's clock. See rules.go.
	Rules Rules `yaml:"rules"`

	// Sensors wired to the gateway itself. See sensors.go.
	Sensors []Sensor `yaml:"sensors"`

	// Where each value came from, for errors found after loading.
	src sources
}

// Gateway names this gateway and bounds its shutdown.
type Gateway struct {
	ID              string        `yaml:"id"`               // part of every event's source: /gateways/{id}
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // how long an ordered shutdown may take before giving up
	// ReloadCheck is how often the files the config reads are checked for
	// changes; a change reloads the device registry and the rules. 0: only
	// SIGHUP reloads.
	ReloadCheck time.Duration `yaml:"reload_check"`
}

// Log chooses how the gateway logs.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Broker configures the embedded MQTT broker devices connect to.
type Broker struct {
	Listen         string    `yaml:"listen"`          // TCP address for MQTT 3.1.1 and 5; "" or "off": none
	TLS            BrokerTLS `yaml:"tls"`             // the TLS listener, see broker.go
	AllowAnonymous bool      `yaml:"allow_anonymous"` // let clients without credentials in (demo only)
	MaxClients     int       `yaml:"max_clients"`
	MaxPacketBytes int       `yaml:"max_packet_bytes"`
	// ConnectionRate is how many new connections per second one remote IP
	// may open, with bursts of ConnectionBurst; 0: no limit. Addresses in
	// ConnectionRateExempt (CIDRs) are not limited.
	ConnectionRate       float64  `yaml:"connection_rate"`
	ConnectionBurst      int      `yaml:"connection_burst"`
	ConnectionRateExempt []string `yaml:"connection_rate_exempt"`
	// ReceiveMaximum is how many QoS 1 and 2 publishes a client may have
	// unacknowledged towards the broker; MaxInflight how many the broker
	// keeps unacknowledged towards one client; MaxQueued how many messages
	// may wait to be written to one client before new ones are dropped.
	ReceiveMaximum int `yaml:"receive_maximum"`
	MaxInflight    int `yaml:"max_inflight"`
	MaxQueued      int `yaml:"max_queued"`
	// MaxMessageExpiry caps how long the broker keeps a retained or queued
	// message. 0 keeps them until a publisher's own expiry says otherwise.
	MaxMessageExpiry time.Duration `yaml:"max_message_expiry"`
	// SessionExpiry caps how long a disconnected persistent session is kept.
	SessionExpiry time.Duration `yaml:"session_expiry"`
}

// HTTP configures the health, metrics and API server.
type HTTP struct {
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ (CPU and heap
	// profiles, goroutines), for benchmarks and diagnosis. Only on a
	// loopback listen address: profiles show the gateway's internals.
	Pprof bool `yaml:"pprof"`
}

// Device is one registered MQTT device.
type Device struct {
	ID           string            `yaml:"id"`
	Username     string            `yaml:"username"`      // defaults to id
	PasswordHash string            `yaml:"password_hash"` // bcrypt, from `flowgate passwd`
	CertCN       string            `yaml:"cert_cn"`       // its client certificate's Common Name, for mutual TLS
	TopicPrefix  string            `yaml:"topic_prefix"`  // defaults to devices/{id}/
	Subscribe    []string          `yaml:"subscribe"`     // extra filters the device may subscribe to
	Kind         string            `yaml:"kind"`          // its profile in profiles_file; empty: payloads are JSON objects kept as they are
	Metadata     map[string]string `yaml:"metadata"`
}

// devicesFile is the shape of the separate devices file.
type devicesFile struct {
	Devices []Device `yaml:"devices"`
}

// Ingest says which device publishes become events.
type Ingest struct {
	MaxPayloadBytes int           `yaml:"max_payload_bytes"`
	DeadLetterTopic string        `yaml:"dead_letter_topic"`
	Topics          []IngestTopic `yaml:"topics"`
}

// IngestTopic maps publishes on topics matching a filter to an event type.
type IngestTopic struct {
	Match string `yaml:"match"`
	Type  string `yaml:"type"`
}

// Route sends matching events to the uplink and/or a local topic.
type Route struct {
	Name       string   `yaml:"name"`
	Types      []string `yaml:"types"`
	Filter     string   `yaml:"filter"`
	To         []string `yaml:"to"`          // uplink, local
	LocalTopic string   `yaml:"local_topic"` // with to: [local]; {type} and {subject} are replaced
	Class      string   `yaml:"class"`       // with to: [uplink]; one of uplink.classes, default the last
}

// Destinations a route may name in To.
const (
	ToUplink = "uplink"
	ToLocal  = "local"
)

// Uplink configures the connection to the cloud MQTT broker.
type Uplink struct {
	URL            string        `yaml:"url"` // mqtt://host:port or tls://host:port
	ClientID       string        `yaml:"client_id"`
	Username       string        `yaml:"username"`
	Password       string        `yaml:"password"` // use ${ENV_VAR}
	Topic          string        `yaml:"topic"`    // {type} and {subject} are replaced per event
	KeepAlive      time.Duration `yaml:"keep_alive"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	QueueSize      int           `yaml:"queue_size"`
	MaxInflight    int           `yaml:"max_inflight"`
	// StoreDir is the durable outbox (a Badger store), relative to the
	// config file; "memory" keeps events in memory only (lost on restart).
	StoreDir       string        `yaml:"store_dir"`
	CommitInterval time.Duration `yaml:"commit_interval"` // the longest an accepted event waits for its fsync

	// TLS files for a tls:// url, relative to the config file: the CAs
	// that may sign the broker's certificate (empty: the system's), and a
	// client certificate and key for mutual TLS.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// Classes are the priority lanes, highest first, each with a TTL
	// (0: kept until delivered). Routes choose one with class.
	Classes  []Class  `yaml:"classes"`
	MaxBytes ByteSize `yaml:"max_bytes"` // the outbox's size on disk; 0: no cap
	WhenFull string   `yaml:"when_full"` // drop_oldest or reject

	ReplayRate   int           `yaml:"replay_rate"`  // backlog events per second after a reconnect; 0: unpaced
	ReplayBytes  ByteSize      `yaml:"replay_bytes"` // backlog bytes per second; 0: unpaced
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	StallTimeout time.Duration `yaml:"stall_timeout"` // connected, events in flight, no PUBACK for this long: reconnect
}

// Class is one priority lane of the uplink.
type Class struct {
	Name string        `yaml:"name"`
	TTL  time.Duration `yaml:"ttl"`
}

// MemoryStore is the store_dir value that keeps the outbox in memory.
const MemoryStore = "memory"

// Default returns a config holding every default. Loading decodes the file
// over it, so a key that is present, even with a zero value, is what the
// file says and is validated as such; only absent keys take defaults.
func Default() *Config {
	return &Config{
		Gateway: Gateway{ID: "flowgate", ShutdownTimeout: 15 * time.Second, ReloadCheck: 2 * time.Second},
		Log:     Log{Level: "info", Format: "text"},
		Broker: Broker{
			Listen:               ":1883",
			MaxClients:           10000,
			MaxPacketBytes:       1 << 20,
			SessionExpiry:        24 * time.Hour,
			ConnectionRate:       20,
			ConnectionBurst:      100,
			ConnectionRateExempt: []string{"127.0.0.0/8", "::1/128"},
			ReceiveMaximum:       1024,
			MaxInflight:          1024,
			MaxQueued:            1024,
		},
		HTTP: HTTP{Listen: "127.0.0.1:8080"},
		Ingest: Ingest{
			MaxPayloadBytes: 64 << 10,
			DeadLetterTopic: "$flowgate/deadletter/{device}",
		},
		Uplink: Uplink{
			Topic:          "flowgate/{gateway}/events/{type}",
			KeepAlive:      30 * time.Second,
			ConnectTimeout: 10 * time.Second,
			QueueSize:      1000000,
			MaxInflight:    256,
			StoreDir:       "/var/lib/flowgate/outbox",
			CommitInterval: 10 * time.Millisecond,
			Classes:        defaultClasses(),
			MaxBytes:       1 << 30,
			WhenFull:       string(uplink.DropOldest),
			ReconnectMin:   500 * time.Millisecond,
			ReconnectMax:   time.Minute,
			StallTimeout:   30 * time.Second,
		},
		Rules: defaultRules(),
	}
}

func defaultClasses() []Class {
	var cs []Class
	for _, c := range uplink.DefaultClasses {
		cs = append(cs, Class{Name: c.Name, TTL: c.TTL})
	}
	return cs
}

// derive fills values computed from others once the file is decoded.
func (c *Config) derive() {
	if c.Uplink.ClientID == "" {
		c.Uplink.ClientID = "flowgate-" + c.Gateway.ID
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Username == "" {
			d.Username = d.ID
		}
		if d.TopicPrefix == "" && d.ID != "" {
			d.TopicPrefix = "devices/" + d.ID + "/"
		}
	}
	for i := range c.Routes {
		if c.Routes[i].To == nil {
			c.Routes[i].To = []string{ToUplink}
		}
	}
}

// UplinkTopic is the uplink topic template with {gateway} replaced.
func (c *Config) UplinkTopic() string {
	return strings.ReplaceAll(c.Uplink.Topic, "{gateway}", c.Gateway.ID)
}

// UplinkOptions maps the uplink section onto the uplink's options.
func (c *Config) UplinkOptions(log *slog.Logger) uplink.Options {
	u := c.Uplink
	o := uplink.Options{
		URL: u.URL, ClientID: u.ClientID, Username: u.Username, Password: u.Password,
		CAFile: u.CAFile, CertFile: u.CertFile, KeyFile: u.KeyFile,
		Topic: c.UplinkTopic(), KeepAlive: u.KeepAlive, ConnectTimeout: u.ConnectTimeout,
		QueueSize: u.QueueSize, MaxInflight: u.MaxInflight, Logger: log,
		StoreDir: u.StoreDir, CommitInterval: u.CommitInterval,
		MaxBytes: int64(u.MaxBytes), WhenFull: uplink.FullPolicy(u.WhenFull),
		ReplayRate: u.ReplayRate, ReplayBytes: int64(u.ReplayBytes),
		ReconnectMin: u.ReconnectMin, ReconnectMax: u.ReconnectMax, StallTimeout: u.StallTimeout,
		Classes: []uplink.Class{}, // empty, not nil: the file's list is the list
	}
	for _, cl := range u.Classes {
		o.Classes = append(o.Classes, uplink.Class{Name: cl.Name, TTL: cl.TTL})
	}
	if u.StoreDir == MemoryStore {
		o.StoreDir = ""
	}
	return o
}
