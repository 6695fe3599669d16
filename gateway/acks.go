package gateway

import (
	"context"
	"sync"
	"sync/atomic"

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
// many publishes in flight share one commit. A publish whose events could
// not be written is never acknowledged, so its device sends it again.

// acker sends the deferred PUBACKs, with one goroutine for each connected
// client that has some.
type acker struct {
	wait func(pending) error // the store's verdict on a publish
	max  int                 // broker.receive_maximum: PUBACKs a client may be owed

	mu      sync.Mutex
	clients map[*mqtt.Client]*ackQueue
	wg      sync.WaitGroup
}

// ackQueue is one client's PUBACKs to send, and how many it is owed.
type ackQueue struct {
	ch   chan deferredAck
	owed atomic.Int32
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

func newAcker(wait func(pending) error, receiveMaximum int) *acker {
	return &acker{wait: wait, max: receiveMaximum, clients: map[*mqtt.Client]*ackQueue{}}
}

// later queues the PUBACK of packet id of cl, to be sent once ps is on
// disk. It is called from the client's own goroutine. It returns false,
// queuing nothing, if the client is owed receive_maximum PUBACKs already:
// it broke the limit the broker announced.
func (a *acker) later(cl *mqtt.Client, id uint16, ps pending) bool {
	a.mu.Lock()
	q := a.clients[cl]
	if q == nil {
		q = &ackQueue{ch: make(chan deferredAck, min(ackBuffer, a.max))}
		a.clients[cl] = q
		a.wg.Add(1)
		go a.run(cl, q)
	}
	a.mu.Unlock()
	if int(q.owed.Add(1)) > a.max {
		q.owed.Add(-1)
		return false
	}
	q.ch <- deferredAck{id: id, ps: ps}
	return true
}

// run sends cl's PUBACKs in order until its queue is closed and empty.
func (a *acker) run(cl *mqtt.Client, q *ackQueue) {
	defer a.wg.Done()
	for ack := range q.ch {
		if a.wait(ack.ps) == nil && !cl.Closed() {
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: ack.id})
		} // else not acknowledged: the device resends it
		q.owed.Add(-1)
	}
}

// gone ends cl's acker once the PUBACKs queued are settled. It is called
// when the client disconnects, from the client's goroutine, after its last
// publish; calling it twice is harmless.
func (a *acker) gone(cl *mqtt.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q := a.clients[cl]; q != nil {
		close(q.ch)
		delete(a.clients, cl)
	}
}

// close waits until every acker has finished, or ctx ends.
func (a *acker) close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
