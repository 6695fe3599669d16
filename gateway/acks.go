package gateway

import (
	"context"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Acknowledging QoS 1 publishes once they are on disk, without holding up
// the device's next ones. mochi handles a connection's packets one at a
// time and sends a PUBACK as soon as its OnPublish hook returns; waiting
// there for the outbox's group commit would let each device have one
// publish in the store's hands at a time, so that ingest could go no
// faster than one publish per device per fsync. Instead the hook takes a
// QoS 1 publish in (normalized, through the rules, queued for the next
// commit), tells mochi it needs no acknowledgement (it relays it to local
// subscribers at QoS 0), and hands the PUBACK to its client's acker. The
// acker sends each client's PUBACKs in the order their publishes came, as
// MQTT requires, each once what the publish caused is on disk: a device's
// many publishes in flight share one commit.
//
// A publish owed a PUBACK holds one unit of the client's receive quota,
// as in mochi's own QoS 1 path, so mochi disconnects a client that sends
// more than broker.receive_maximum (with its Will, counted by the
// listener) before the publish is taken in. If the store cannot write a
// publish's events, the client is disconnected and none of its later
// publishes is acknowledged: MQTT clients send unacknowledged publishes
// again only when they reconnect.

// acker sends the deferred PUBACKs, with one goroutine for each connected
// client that has some.
type acker struct {
	wait func(pending) error // the store's verdict on a publish

	mu      sync.Mutex
	closing bool
	clients map[*mqtt.Client]chan deferredAck
	wg      sync.WaitGroup
}

// deferredAck is one PUBACK waiting for its publish to be on disk.
type deferredAck struct {
	id uint16
	ps pending
}

// ackBuffer bounds how many PUBACKs one client may have queued; beyond it,
// reading the client's next packets waits for the disk. It is a channel's
// buffer per connected client, so it is kept small: 32 publishes in flight
// per device already fill a group commit with 100 devices.
const ackBuffer = 32

func newAcker(wait func(pending) error) *acker {
	return &acker{wait: wait, clients: map[*mqtt.Client]chan deferredAck{}}
}

// later queues the PUBACK of packet id of cl, to be sent once ps is on
// disk, and takes one unit of the client's receive quota until then. It is
// called from the client's own goroutine. It returns false, queuing
// nothing, once the acker is closing.
func (a *acker) later(cl *mqtt.Client, id uint16, ps pending) bool {
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		return false
	}
	q := a.clients[cl]
	if q == nil {
		q = make(chan deferredAck, ackBuffer)
		a.clients[cl] = q
		a.wg.Add(1)
		go a.run(cl, q)
	}
	a.mu.Unlock()
	cl.State.Inflight.DecreaseReceiveQuota()
	q <- deferredAck{id: id, ps: ps}
	return true
}

// run sends cl's PUBACKs in order until its queue is closed and empty.
// PUBACKs that are due one after the other leave in one write: the
// connection is corked while the next one is at hand and on disk, and
// uncorked before run waits for the queue or the disk.
func (a *acker) run(cl *mqtt.Client, q <-chan deferredAck) {
	defer a.wg.Done()
	conn, _ := cl.Net.Conn.(*corkConn)
	defer conn.uncork()
	failed := false
	for {
		var ack deferredAck
		var ok bool
		select {
		case ack, ok = <-q:
		default:
			conn.uncork() // nothing more at hand: send what is written
			ack, ok = <-q
		}
		if !ok {
			return
		}
		if !ack.ps.ready() {
			conn.uncork() // the disk is still writing this one
		}
		switch {
		case failed || cl.Closed():
		case a.wait(ack.ps) != nil:
			failed = true // not acknowledged: the device resends it once reconnected
			conn.uncork() // but those before it are on disk: their PUBACKs go first
			cl.Stop(packets.ErrImplementationSpecificError)
		default:
			conn.cork()
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: ack.id})
		}
		cl.State.Inflight.IncreaseReceiveQuota()
	}
}

// gone ends cl's acker once the PUBACKs queued are settled. It is called
// when the client disconnects, from the client's goroutine, after its last
// publish; calling it twice is harmless.
func (a *acker) gone(cl *mqtt.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q := a.clients[cl]; q != nil {
		close(q)
		delete(a.clients, cl)
	}
}

// close refuses further PUBACKs to queue and waits until every acker has
// finished, or ctx ends.
func (a *acker) close(ctx context.Context) error {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
