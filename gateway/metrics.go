package gateway

import (
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/rules"
	"github.com/flowgate/flowgate/uplink"
)

// metrics are the gateway's Prometheus series, in a registry of its own.
type metrics struct {
	reg            *prometheus.Registry
	received       prometheus.Counter
	deadLetters    *prometheus.CounterVec
	unrouted       prometheus.Counter
	localPublished prometheus.Counter
	rejected       prometheus.Counter
	authFailures   prometheus.Counter
	aclDenied      *prometheus.CounterVec
	tlsFailures    prometheus.Counter
	connects       prometheus.Counter
	disconnects    *prometheus.CounterVec
	limits         limitCounts
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_messages_received_total",
			Help: "Device publishes that reached the pipeline."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowgate_dead_letters_total",
			Help: "Device publishes refused by the pipeline and sent to the dead-letter topic, by reason."}, []string{"reason"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_events_unrouted_total",
			Help: "Events that no route matched."}),
		localPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_events_local_published_total",
			Help: "Events published on local broker topics by routes."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_messages_rejected_total",
			Help: "Device publishes not acknowledged because the uplink could not accept them (the device resends)."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_auth_failures_total",
			Help: "Device connections refused for bad credentials."}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowgate_acl_denied_total",
			Help: "Publishes and subscriptions refused by the device ACL."}, []string{"action"}),
		tlsFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_tls_handshake_failures_total",
			Help: "TLS connections refused in the handshake: no client certificate when one is required, one from another CA, revoked or expired, or no TLS at all."}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowgate_device_connects_total",
			Help: "Device connections established."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowgate_device_disconnects_total",
			Help: "Device connections ended, by reason."}, []string{"reason"}),
	}
	for _, r := range disconnectReasons {
		m.disconnects.WithLabelValues(r)
	}
	for _, r := range devices.Reasons {
		m.deadLetters.WithLabelValues(string(r))
	}
	m.aclDenied.WithLabelValues("publish")
	m.aclDenied.WithLabelValues("subscribe")
	m.reg.MustRegister(m.received, m.deadLetters, m.unrouted, m.localPublished, m.rejected, m.authFailures, m.aclDenied,
		m.tlsFailures, m.connects, m.disconnects,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchUplink exports the uplink's own counters.
func (m *metrics) watchUplink(u *uplink.Uplink) {
	m.reg.MustRegister(&uplinkCollector{u: u, now: time.Now})
}

// uplinkCollector exports uplink.Stats, read once per scrape.
type uplinkCollector struct {
	u   *uplink.Uplink
	now func() time.Time
}

var uplinkDescs = struct {
	connected, forwarded, enqueued, resent, queued, inflight, syncs, slow,
	queuedBytes, classEvents, classBytes, oldest, dropped, quarantined, spilled,
	reconnects, stalls, storeBytes, commitTimes, ackTimes *prometheus.Desc
}{
	connected:   desc("flowgate_uplink_connected", "1 while the uplink is connected to the cloud broker."),
	forwarded:   desc("flowgate_events_forwarded_total", "Events the cloud broker acknowledged."),
	enqueued:    desc("flowgate_uplink_enqueued_total", "Events accepted by the uplink."),
	resent:      desc("flowgate_uplink_resent_total", "Publishes sent again after a reconnect or a refusal."),
	queued:      desc("flowgate_uplink_queued", "Events waiting for the cloud broker's acknowledgement (the backlog)."),
	inflight:    desc("flowgate_uplink_inflight", "Publishes sent and not yet acknowledged."),
	syncs:       desc("flowgate_outbox_syncs_total", "Group commits of the durable outbox (one fsync each)."),
	slow:        desc("flowgate_outbox_slow_commits_total", "Group commits that took longer than uplink.commit_interval."),
	queuedBytes: desc("flowgate_uplink_queued_bytes", "Bytes of the events waiting, as counted against uplink.max_bytes."),
	classEvents: desc("flowgate_uplink_class_queued", "Events waiting, by class.", "class"),
	classBytes:  desc("flowgate_uplink_class_queued_bytes", "Bytes of the events waiting, by class.", "class"),
	oldest:      desc("flowgate_uplink_oldest_age_seconds", "Age of the oldest event waiting; 0 when none is."),
	dropped:     desc("flowgate_uplink_dropped_total", "Events dropped undelivered, by reason: expired (class TTL), full (room made) or too_large (above the broker's maximum packet size).", "reason"),
	quarantined: desc("flowgate_outbox_quarantined_total", "Stored events that could not be read and were moved to the quarantine."),
	spilled:     desc("flowgate_outbox_spilled_total", "Events moved from the journal into Badger: not acknowledged by the cloud within a few seconds, or beyond the bytes the journal keeps in memory."),
	reconnects:  desc("flowgate_uplink_reconnects_total", "Connections to the cloud broker established after the first."),
	stalls:      desc("flowgate_uplink_stalls_total", "Connections dropped by the watchdog: events in flight, no acknowledgement for uplink.stall_timeout."),
	storeBytes:  desc("flowgate_outbox_disk_bytes", "Size of the outbox store on disk at the last measurement."),
	commitTimes: desc("flowgate_outbox_commit_seconds", "How long the durable outbox's group commits (write and fsync) took."),
	ackTimes:    desc("flowgate_uplink_ack_seconds", "From an event's publish to the cloud broker's acknowledgement."),
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func (c *uplinkCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *uplinkCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.u.Stats()
	d := &uplinkDescs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(d.connected, b2f(s.Connected))
	counter(d.forwarded, s.Forwarded)
	counter(d.enqueued, s.Enqueued)
	counter(d.resent, s.Resent)
	gauge(d.queued, float64(s.Queued))
	gauge(d.inflight, float64(s.Inflight))
	counter(d.syncs, s.Syncs)
	counter(d.slow, s.SlowCommits)
	gauge(d.queuedBytes, float64(s.QueuedBytes))
	for _, cl := range s.Classes {
		gauge(d.classEvents, float64(cl.Queued), cl.Name)
		gauge(d.classBytes, float64(cl.Bytes), cl.Name)
	}
	gauge(d.oldest, oldestAge(s, c.now()).Seconds())
	for _, r := range dropReasons {
		counter(d.dropped, s.Dropped[r], r)
	}
	counter(d.quarantined, s.Quarantined)
	counter(d.spilled, s.Spilled)
	counter(d.reconnects, s.Reconnects)
	counter(d.stalls, s.Stalls)
	gauge(d.storeBytes, float64(s.StoreBytes))
	histogram := func(desc *prometheus.Desc, l uplink.Latency) {
		buckets := make(map[float64]uint64, len(uplink.LatencyBounds))
		for i, b := range uplink.LatencyBounds {
			buckets[b.Seconds()] = l.Counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(desc, l.Count, l.Sum.Seconds(), buckets)
	}
	histogram(d.commitTimes, s.CommitTimes)
	histogram(d.ackTimes, s.AckTimes)
}

// dropReasons are the uplink's reasons for dropping an event, all exported
// from the start so that a rate over them works before the first drop.
var dropReasons = []string{uplink.DropExpired, uplink.DropFull, uplink.DropTooLarge}

// oldestAge is how long the oldest event held has waited; 0 if none.
func oldestAge(s uplink.Stats, now time.Time) time.Duration {
	if s.Oldest.IsZero() {
		return 0
	}
	return max(now.Sub(s.Oldest), 0)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// watchBroker exports the embedded broker's connection count.
func (m *metrics) watchBroker(s *mqtt.Server) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowgate_devices_connected",
		Help: "MQTT clients connected to the embedded broker."},
		func() float64 { return float64(atomic.LoadInt64(&s.Info.ClientsConnected)) }))
}

// watchRules exports the rules engine's counters.
func (m *metrics) watchRules(e *rules.Engine) {
	counter := func(name, help string, f func(rules.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(e.Stats())) })
	}
	m.reg.MustRegister(
		counter("flowgate_rules_events_processed_total", "Events the rules engine processed.",
			func(s rules.Stats) uint64 { return s.Processed }),
		counter("flowgate_rules_events_derived_total", "Notable events the rules produced.",
			func(s rules.Stats) uint64 { return s.Derived }),
		counter("flowgate_rules_events_late_total", "Events too late to process, published on rules.late_topic.",
			func(s rules.Stats) uint64 { return s.Late }),
	)
}

// The broker limits whose violations flowgate_broker_limit_exceeded_total
// counts, by its label limit.
const (
	limitMaxClients     = "max_clients"     // a connection refused: broker.max_clients are connected
	limitConnectionRate = "connection_rate" // a connection closed: its IP opened too many too fast
	limitPacketSize     = "packet_size"     // a client disconnected: a packet above broker.max_packet_bytes
	limitReceiveMaximum = "receive_maximum" // a client disconnected: more unacknowledged publishes than broker.receive_maximum
	limitInflight       = "inflight"        // a message not delivered: broker.max_inflight unacknowledged to the client
	limitQueued         = "queued"          // a message not delivered: broker.max_queued waiting to be written to the client
)

// limitCounts are the limit violations the gateway sees itself; the broker
// counts the other two (inflight, queued) in its Info.
type limitCounts struct {
	maxClients, connectionRate, packetSize, receiveMaximum atomic.Uint64
}

// limitCollector exports flowgate_broker_limit_exceeded_total.
type limitCollector struct {
	c    *limitCounts
	info func() (inflightDropped, messagesDropped int64)
}

var limitDesc = desc("flowgate_broker_limit_exceeded_total",
	"Connections refused or closed, and messages not delivered, because a broker limit was reached, by limit.", "limit")

func (l *limitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- limitDesc }

func (l *limitCollector) Collect(ch chan<- prometheus.Metric) {
	inflight, queued := l.info()
	for _, v := range []struct {
		name string
		n    uint64
	}{{limitMaxClients, l.c.maxClients.Load()}, {limitConnectionRate, l.c.connectionRate.Load()},
		{limitPacketSize, l.c.packetSize.Load()}, {limitReceiveMaximum, l.c.receiveMaximum.Load()},
		{limitInflight, uint64(max(inflight, 0))}, {limitQueued, uint64(max(queued, 0))}} {
		ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.CounterValue, float64(v.n), v.name)
	}
}

// watchLimits exports the broker's limit violations and the TLS
// handshakes refused.
func (m *metrics) watchLimits(s *mqtt.Server) {
	m.reg.MustRegister(&limitCollector{c: &m.limits, info: func() (int64, int64) {
		return atomic.LoadInt64(&s.Info.InflightDropped), atomic.LoadInt64(&s.Info.MessagesDropped)
	}})
}

// watchPresence exports how many devices are online. Per-device series are
// left out on purpose: their number would grow with the fleet (and with
// every anonymous client id); /api/devices has each device's figures.
func (m *metrics) watchPresence(p *devices.Presence) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowgate_devices_online",
		Help: "Devices with at least one connection to the embedded broker."},
		func() float64 { return float64(p.Online()) }))
}
