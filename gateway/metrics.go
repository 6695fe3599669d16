package gateway

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowgate/flowgate/devices"
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
	}
	for _, r := range devices.Reasons {
		m.deadLetters.WithLabelValues(string(r))
	}
	m.aclDenied.WithLabelValues("publish")
	m.aclDenied.WithLabelValues("subscribe")
	m.reg.MustRegister(m.received, m.deadLetters, m.unrouted, m.localPublished, m.rejected, m.authFailures, m.aclDenied,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchUplink exports the uplink's own counters.
func (m *metrics) watchUplink(u *uplink.Uplink) {
	stat := func(f func(uplink.Stats) float64) func() float64 {
		return func() float64 { return f(u.Stats()) }
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowgate_uplink_connected",
			Help: "1 while the uplink is connected to the cloud broker."}, stat(func(s uplink.Stats) float64 {
			if s.Connected {
				return 1
			}
			return 0
		})),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowgate_events_forwarded_total",
			Help: "Events the cloud broker acknowledged."}, stat(func(s uplink.Stats) float64 { return float64(s.Forwarded) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowgate_uplink_enqueued_total",
			Help: "Events accepted by the uplink."}, stat(func(s uplink.Stats) float64 { return float64(s.Enqueued) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowgate_uplink_resent_total",
			Help: "Publishes sent again after a reconnect."}, stat(func(s uplink.Stats) float64 { return float64(s.Resent) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowgate_uplink_queued",
			Help: "Events waiting for the cloud broker's acknowledgement."}, stat(func(s uplink.Stats) float64 { return float64(s.Queued) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowgate_outbox_syncs_total",
			Help: "Group commits of the durable outbox (one fsync each)."}, stat(func(s uplink.Stats) float64 { return float64(s.Syncs) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flowgate_outbox_slow_commits_total",
			Help: "Group commits that took longer than uplink.commit_interval."}, stat(func(s uplink.Stats) float64 { return float64(s.SlowCommits) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowgate_uplink_inflight",
			Help: "Publishes sent and not yet acknowledged."}, stat(func(s uplink.Stats) float64 { return float64(s.Inflight) })),
	)
}

// watchBroker exports the embedded broker's connection count.
func (m *metrics) watchBroker(s *mqtt.Server) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowgate_devices_connected",
		Help: "MQTT clients connected to the embedded broker."},
		func() float64 { return float64(atomic.LoadInt64(&s.Info.ClientsConnected)) }))
}
