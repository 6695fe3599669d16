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

// acker sends the deferred PUBACKs. A client's are sent by a goroutine of
// its own, started when the first is queued and ended once none is left:
// with a thousand devices publishing every 100 ms, a hundred or so run at a
// time rather than one per connection, each with its stack.
type acker struct {
	wait func(pending) error // the store's verdict on a publish

	mu      sync.Mutex
	closing bool
	clients map[*mqtt.Client]*ackQueue
	wg      sync.WaitGroup
}

// deferredAck is one PUBACK waiting for its publish to be on disk.
type deferredAck struct {
	id uint16
	ps pending
}

// ackQueue is one client's PUBACKs, in the order their publishes came.
type ackQueue struct {
	// Under acker.mu:
	acks    []deferredAck // queued
	owed    int           // queued or being settled: at most ackBuffer
	room    sync.Cond     // owed fell below ackBuffer
	running bool          // a goroutine is sending them

	// The running goroutine's:
	failed bool          // the store failed one: none after it is sent
	spare  []deferredAck // its buffer, swapped with acks
}

// ackBuffer bounds how many PUBACKs one client may be owed; beyond it,
// reading the client's next packets waits for the disk. So with
// broker.receive_maximum above it (the default is 1024), a device that
// sends publishes without waiting for their PUBACKs (an MQTT 3.1.1 one
// knows no receive maximum) is slowed down to the disk's pace rather than
// disconnected for exceeding the limit; with a receive maximum of 32 or
// less, such a device is disconnected, as the limit says. 32 publishes in
// flight per device already fill a group commit with 100 devices.
const ackBuffer = 32

func newAcker(wait func(pending) error) *acker {
	return &acker{wait: wait, clients: map[*mqtt.Client]*ackQueue{}}
}

// later queues the PUBACK of packet id of cl, to be sent once ps is on
// disk, and takes one unit of the client's receive quota until then. It is
// called from the client's own goroutine, and waits while the client is
// owed ackBuffer PUBACKs. It returns false, queuing nothing, once the
// acker is closing.
func (a *acker) later(cl *mqtt.Client, id uint16, ps pending) bool {
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		return false
	}
	q := a.clients[cl]
	if q == nil {
		q = &ackQueue{}
		q.room.L = &a.mu
		a.clients[cl] = q
	}
	for q.owed >= ackBuffer && !a.closing {
		q.room.Wait()
	}
	if a.closing { // while waiting for room: the publish's events are stored, and sent again once the device resends it
		a.mu.Unlock()
		return false
	}
	cl.State.Inflight.DecreaseReceiveQuota()
	q.acks = append(q.acks, deferredAck{id: id, ps: ps})
	q.owed++
	start := !q.running
	if start {
		q.running = true
		a.wg.Add(1)
	}
	a.mu.Unlock()
	if start {
		go a.run(cl, q)
	}
	return true
}

// run sends cl's queued PUBACKs in order until none is left. PUBACKs that
// are due one after the other leave in one write: the connection is
// corked while the next one is at hand and on disk, and uncorked before
// run waits for the disk or ends.
func (a *acker) run(cl *mqtt.Client, q *ackQueue) {
	defer a.wg.Done()
	conn, _ := cl.Net.Conn.(*corkConn)
	for {
		a.mu.Lock()
		if len(q.acks) == 0 {
			a.mu.Unlock()
			conn.uncork() // nothing more at hand: send what is written
			a.mu.Lock()
			if len(q.acks) == 0 {
				q.running = false
				q.acks, q.spare = nil, nil // an idle client keeps no buffer
				a.mu.Unlock()
				return
			}
		}
		batch := q.acks
		q.acks, q.spare = q.spare[:0], nil
		a.mu.Unlock()
		for _, ack := range batch {
			a.settle(cl, conn, q, ack)
			a.mu.Lock()
			q.owed--
			q.room.Signal()
			a.mu.Unlock()
		}
		clear(batch)
		q.spare = batch[:0]
	}
}

// settle sends one PUBACK once its publish is on disk, or disconnects the
// client if the store failed it, and gives back its unit of receive quota.
func (a *acker) settle(cl *mqtt.Client, conn *corkConn, q *ackQueue, ack deferredAck) {
	if !ack.ps.ready() {
		conn.uncork() // the disk is still writing this one
	}
	switch {
	case q.failed || cl.Closed():
	case a.wait(ack.ps) != nil:
		q.failed = true // not acknowledged: the device resends it once reconnected
		conn.uncork()   // but those before it are on disk: their PUBACKs go first
		cl.Stop(packets.ErrImplementationSpecificError)
	default:
		conn.cork()
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: ack.id})
	}
	cl.State.Inflight.IncreaseReceiveQuota()
}

// gone forgets cl once it has disconnected; PUBACKs still queued are
// settled by its running goroutine. It is called from the client's
// goroutine, after its last publish; calling it twice is harmless.
func (a *acker) gone(cl *mqtt.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.clients, cl)
}

// close refuses further PUBACKs to queue and waits until every acker has
// finished, or ctx ends.
func (a *acker) close(ctx context.Context) error {
	a.mu.Lock()
	a.closing = true
	for _, q := range a.clients {
		q.room.Broadcast() // a publish waiting for room is refused
	}
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
