package uplink

import (
	"io"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// sessionHooks is paho's own session state with the uplink listening in.
// paho calls a session manager whenever an acknowledgement arrives or a
// connection comes or goes, which is exactly what the uplink must know to
// delete on PUBACK and resend after a drop. The wrapped state does the rest
// of the protocol work, such as answering anything the broker sends.
type sessionHooks struct {
	*state.State
	u *Uplink
}

var _ session.SessionManager = (*sessionHooks)(nil)

func newSessionHooks(u *Uplink) *sessionHooks {
	return &sessionHooks{State: state.NewInMemory(), u: u}
}

// ConAckReceived is called once a CONNACK accepted the connection.
func (s *sessionHooks) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	if err := s.State.ConAckReceived(w, cp, ca); err != nil {
		return err
	}
	recvMax, maxPacket, qos0 := maxUint16, 0, false // MQTT's defaults when the properties are absent
	if p := ca.Properties; p != nil {
		if p.ReceiveMaximum != nil {
			recvMax = int(*p.ReceiveMaximum)
		}
		if p.MaximumPacketSize != nil {
			maxPacket = int(*p.MaximumPacketSize)
		}
		qos0 = p.MaximumQOS != nil && *p.MaximumQOS == 0
	}
	s.u.connUp(recvMax, maxPacket, qos0)
	return nil
}

// ConnectionLost is called when the connection ends, possibly more than once.
func (s *sessionHooks) ConnectionLost(dp *packets.Disconnect) error {
	s.u.connDown(dp)
	return s.State.ConnectionLost(dp)
}

// PacketReceived sees every packet paho reads that belongs to a session.
// A PUBACK answers a publish of the sender (sender.go), whose packet ids
// the wrapped state never gave out: the uplink handles it, and the state
// does not see it.
func (s *sessionHooks) PacketReceived(cp *packets.ControlPacket, pubs chan<- *packets.Publish) error {
	if ack, ok := cp.Content.(*packets.Puback); ok {
		s.u.acked(ack)
		return nil
	}
	return s.State.PacketReceived(cp, pubs)
}

// connUp opens the window for a new connection. A broker that takes only
// QoS 0 gets nothing: the uplink publishes at QoS 1 so that an event leaves
// the outbox only on the broker's PUBACK, and a QoS 1 PUBLISH would make it
// drop the connection, again at every reconnect. The window stays shut and
// the events stay queued until the broker is configured otherwise.
func (u *Uplink) connUp(recvMax, maxPacket int, qos0 bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.maxPacket = maxPacket
	size := min(u.opts.MaxInflight, recvMax)
	if qos0 {
		size = 0
		u.log.Error("the broker accepts only QoS 0 (CONNACK Maximum QoS 0); events stay queued, as they are published at QoS 1",
			"url", u.broker.Redacted(), "queued", u.ob.Len())
	}
	u.epoch++
	u.connected = true
	u.connectedAt = time.Now()
	u.win.open(size, u.ob.next)
	u.work.notify()
	u.log.Info("connected", "url", u.broker.Redacted(), "window", size,
		"receive_maximum", recvMax, "queued", u.ob.Len())
}

// connDown closes the window; whatever was in flight will be resent.
func (u *Uplink) connDown(dp *packets.Disconnect) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.connected {
		return
	}
	u.epoch++
	u.connected = false
	lost := u.win.close()
	u.work.notify()
	if u.stopping {
		u.log.Info("disconnected", "queued", u.ob.Len())
		return
	}
	args := []any{"url", u.broker.Redacted(), "unacknowledged", lost, "queued", u.ob.Len()}
	if dp != nil {
		args = append(args, "reason_code", dp.ReasonCode, "reason", dp.Reason())
	}
	u.log.Warn("connection lost; will reconnect and resend", args...)
}

// acked handles a PUBACK: success deletes the event, an error reason code
// puts it back in line after a pause.
func (u *Uplink) acked(ack *packets.Puback) {
	u.mu.Lock()
	defer u.mu.Unlock()
	seq, sentAt, ok := u.win.acked(ack.PacketID)
	if !ok {
		return // for a publish from a connection already given up
	}
	u.ackTimes.observe(time.Since(sentAt))
	defer u.work.notify()
	if ack.ReasonCode >= 0x80 {
		u.rejected(seq, ack)
		return
	}
	u.ob.Delete(seq)
	u.stats.Forwarded++
	if len(u.win.parked) == 0 {
		u.failures = 0
	}
	u.space.notify()
}

// rejected parks seq for a retry and logs why: the event is kept, never
// dropped.
func (u *Uplink) rejected(seq uint64, ack *packets.Puback) {
	delay := u.park(seq)
	var id, reason string
	if s, rec, ok := u.ob.Next(idLane(seq), idSeq(seq)); ok && s == seq {
		id = recordID(rec)
	}
	if ack.Properties != nil {
		reason = ack.Properties.ReasonString
	}
	u.log.Warn("broker rejected event; will retry", "id", id, "reason_code", ack.ReasonCode,
		"reason", ack.Reason(), "broker_reason", reason, "retry_in", delay, "attempt", u.failures)
}

// park sets seq aside for a retry after a backoff that grows while
// rejections continue, and has Run wake the sender when it ends.
func (u *Uplink) park(seq uint64) time.Duration {
	u.failures++
	delay := u.timing.retry(u.failures)
	u.win.park(seq, time.Now().Add(delay))
	u.wakeLater()
	return delay
}

// wakeLater has Run wake the sender at the window's wakeAt.
func (u *Uplink) wakeLater() {
	select {
	case u.retry <- struct{}{}:
	default: // Run has a wake-up pending already
	}
}
