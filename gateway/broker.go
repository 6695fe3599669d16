package gateway

import (
	"bytes"
	"log/slog"
	"math"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config"
)

// clientWritesPending is how many packets may wait to be written to one
// client. mochi allocates this queue for every connection, and its default
// (8,192 pointers: 64 KiB, scanned by every GC) cost 74 KB per device; a
// device reads little, and a local subscriber keeps 1,024 messages of
// slack on top of its socket buffers.
const clientWritesPending = 1024

// newBroker builds the embedded broker with capabilities chosen for a
// gateway. It does not listen yet.
func newBroker(c config.Broker, log *slog.Logger) *mqtt.Server {
	caps := mqtt.NewDefaultServerCapabilities()
	// mochi copies a PUBLISH's user properties into its PUBACK by default.
	// MQTT 5 does not allow that and strict clients (paho among them)
	// reject such acks, so it is turned off.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// mochi's default (24 h) silently deletes retained and queued messages
	// a day after they were published. A gateway keeps a retained
	// configuration or a queued command as long as its publisher asked
	// for; 0 means "no cap", and a publisher's own Message Expiry Interval
	// is still honoured.
	caps.MaximumMessageExpiryInterval = int64(c.MaxMessageExpiry.Seconds())
	// Disconnected persistent sessions are kept for a bounded time, not
	// mochi's default of forever, so a fleet of churning client ids cannot
	// grow memory without end.
	caps.MaximumSessionExpiryInterval = uint32(min(c.SessionExpiry.Seconds(), math.MaxUint32))
	caps.MaximumClients = int64(c.MaxClients)
	caps.MaximumPacketSize = uint32(c.MaxPacketBytes)
	caps.MaximumClientWritesPending = clientWritesPending
	return mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log,
		// The gateway itself publishes dead letters and local routes.
		InlineClient: true,
		// $SYS topics every 30 s rather than every second: they are for
		// people, and a Pi has better things to do.
		SysTopicResendInterval: 30,
	})
}

// listen attaches the TCP listener. It returns once the port is bound.
func listen(s *mqtt.Server, addr string) (*listeners.TCP, error) {
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := s.AddListener(l); err != nil {
		return nil, err
	}
	return l, nil
}

// brokerHook is the thin adapter between mochi's hook interface and the
// device registry and pipeline: it decides nothing itself.
type brokerHook struct {
	mqtt.HookBase
	registry *atomic.Pointer[devices.Registry]
	pipe     *pipeline
	m        *metrics
	log      *slog.Logger
}

func (h *brokerHook) ID() string { return "flowgate" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnWillSent}, []byte{b})
}

// OnConnectAuthenticate admits a device whose credentials and client id the
// registry accepts, and whose Will (if any) it would be allowed to publish.
func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	d, err := h.registry.Load().Authenticate(cl.ID, string(pk.Connect.Username), pk.Connect.Password)
	if err != nil {
		h.m.authFailures.Inc()
		h.log.Info("connection refused", "client", cl.ID, "username", string(pk.Connect.Username),
			"remote", cl.Net.Remote, "reason", err)
		return false
	}
	if pk.Connect.WillFlag && !d.CanPublish(pk.Connect.WillTopic) {
		h.m.aclDenied.WithLabelValues("publish").Inc()
		h.log.Info("connection refused: will topic outside the device's prefix", "client", cl.ID,
			"device", d.ID, "will_topic", pk.Connect.WillTopic)
		return false
	}
	return true
}

func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	d, ok := h.registry.Load().Lookup(cl.ID, string(cl.Properties.Username))
	if write {
		ok = ok && d.CanPublish(topic)
		if !ok {
			h.m.aclDenied.WithLabelValues("publish").Inc()
		}
	} else {
		ok = ok && d.CanSubscribe(topic)
		if !ok {
			h.m.aclDenied.WithLabelValues("subscribe").Inc()
		}
	}
	if !ok {
		h.log.Info("acl denied", "client", cl.ID, "username", string(cl.Properties.Username), "topic", topic, "publish", write)
	}
	return ok
}

// OnPublish hands a device's publish to the pipeline. Publishes by the
// gateway itself (the inline client) pass through untouched. If the
// pipeline cannot accept the event, the packet is rejected without a PUBACK
// so that the device resends it.
func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	d, ok := h.registry.Load().Lookup(cl.ID, string(cl.Properties.Username))
	if !ok {
		return pk, packets.ErrRejectPacket
	}
	if err := h.pipe.handle(d, cl.ID, pk.TopicName, pk.Payload); err != nil {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnWillSent hands a device's Will, which the broker publishes itself when
// the device vanishes, to the pipeline like any publish of the device.
func (h *brokerHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if d, ok := h.registry.Load().Lookup(cl.ID, string(cl.Properties.Username)); ok {
		_ = h.pipe.handle(d, cl.ID, pk.TopicName, pk.Payload) // nobody to refuse it to
	}
}
