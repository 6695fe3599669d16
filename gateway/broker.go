package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config"
)

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
	// Per-client flow control: unacknowledged QoS 1/2 publishes from the
	// client (announced in CONNACK), unacknowledged ones to it, and
	// messages waiting to be written to it (mochi allocates a channel of
	// this size per client, so its default of 8192 costs 64 KiB each).
	caps.ReceiveMaximum = uint16(c.ReceiveMaximum)
	caps.MaximumInflight = uint16(c.MaxInflight)
	caps.MaximumClientWritesPending = int32(c.MaxQueued)
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

// brokerHook is the thin adapter between mochi's hook interface and the
// device registry and pipeline: it decides nothing itself.
type brokerHook struct {
	mqtt.HookBase
	registry *atomic.Pointer[devices.Registry]
	pipe     *pipeline
	acks     *acker
	presence *presenceEvents
	m        *metrics
	log      *slog.Logger
}

func (h *brokerHook) ID() string { return "flowgate" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnWillSent,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// OnConnectAuthenticate admits a device whose credentials and client id the
// registry accepts, and whose Will (if any) it would be allowed to publish.
// A client certificate the TLS handshake verified, whose Common Name is a
// device's cert_cn, admits that device without a password; the client's
// username becomes the device's, so that every later check finds it.
func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	reg := h.registry.Load()
	d, err := reg.AuthenticateCert(cl.ID, string(pk.Connect.Username), certCN(cl))
	if err == nil {
		cl.Properties.Username = []byte(d.Username)
	} else if errors.Is(err, devices.ErrUnknownDevice) {
		d, err = reg.Authenticate(cl.ID, string(pk.Connect.Username), pk.Connect.Password)
	}
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
		level := slog.LevelInfo
		if !write && devices.InternalTopic(topic) {
			// Also asked for every internal message a wildcard subscriber
			// would get: worth counting, too frequent to log.
			level = slog.LevelDebug
		}
		h.log.Log(context.Background(), level, "acl denied", "client", cl.ID, "username", string(cl.Properties.Username),
			"topic", topic, "publish", write)
	}
	return ok
}

// OnPublish hands a device's publish to the pipeline. Publishes by the
// gateway itself (the inline client) pass through untouched. If the
// pipeline cannot accept the event, the packet is rejected without a PUBACK
// so that the device resends it. A QoS 1 publish is acknowledged by the
// acker once on disk (see acks.go) and relayed to local subscribers at
// QoS 0; QoS 0 needs no wait, and QoS 2 is acknowledged by mochi once
// handle returns.
func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	d, ok := h.registry.Load().Lookup(cl.ID, string(cl.Properties.Username))
	if !ok {
		return pk, packets.ErrRejectPacket
	}
	h.presence.tracker.Published(d.ID, h.presence.now())
	switch pk.FixedHeader.Qos {
	case 0, 1:
		ps, err := h.pipe.accept(d, cl.ID, pk.TopicName, pk.Payload)
		if err != nil {
			return pk, packets.ErrRejectPacket
		}
		if pk.FixedHeader.Qos == 1 {
			if !h.acks.later(cl, pk.PacketID, ps) {
				return pk, packets.ErrRejectPacket // shutting down: not acknowledged, the device resends it
			}
			pk.FixedHeader.Qos = 0 // mochi neither acknowledges it nor holds it in flight
		}
	default:
		if err := h.pipe.handle(d, cl.ID, pk.TopicName, pk.Payload); err != nil {
			return pk, packets.ErrRejectPacket
		}
	}
	return pk, nil
}

// OnSessionEstablished marks the device online.
func (h *brokerHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	d, ok := h.registry.Load().Lookup(cl.ID, string(cl.Properties.Username))
	if !ok {
		return // removed by a reload while it connected; it is refused from now on
	}
	h.m.connects.Inc()
	auth := "password"
	switch {
	case d.Anonymous():
		auth = "anonymous"
	case d.CertCN != "" && certCN(cl) == d.CertCN:
		auth = "certificate"
	}
	h.presence.connected(d, cl, auth)
}

// OnDisconnect counts why the connection ended, and marks the device
// offline when it was its last. (The limits a client broke are counted by
// its listener, which sees every connection's end: see guardedListener.)
func (h *brokerHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	reason := goneReason(cl, err)
	h.m.disconnects.WithLabelValues(reason).Inc()
	h.presence.disconnected(cl, reason)
	h.acks.gone(cl)
}

// OnWillSent hands a device's Will, which the broker publishes itself when
// the device vanishes, to the pipeline like any publish of the device.
func (h *brokerHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.presence.tracker.WillSent(cl)
	if d, ok := h.registry.Load().Lookup(cl.ID, string(cl.Properties.Username)); ok {
		_, _ = h.pipe.accept(d, cl.ID, pk.TopicName, pk.Payload) // nobody to acknowledge: no wait for the disk
	}
}

// certCN is the Common Name of the client certificate the TLS handshake
// verified, or "" (no TLS, no certificate, or one not verified).
func certCN(cl *mqtt.Client) string {
	tc, ok := tlsConn(cl.Net.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}
