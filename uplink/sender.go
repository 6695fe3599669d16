package uplink

import (
	"time"
)

// How events reach the wire, and why it is built this way.
//
// autopaho runs the connection: it dials through attempt (run.go), sends
// CONNECT, reads every packet the broker sends, runs the keep alive
// (pinger.go), reconnects with backoff and says DISCONNECT at the end. Publishing is left out of it. An
// outbox record is already a complete MQTT v5 PUBLISH packet (encode.go);
// handing it to paho meant parsing it back into a packets.Publish (about
// 12 KB of garbage per event) and encoding it again, and autopaho's publish
// queue deletes a message once it is written, where the outbox must keep it
// until the PUBACK.
//
// So the sender, below, writes the stored bytes to the connection itself,
// with only the packet id filled in. It is one goroutine, owned by Run,
// that takes records oldest first, lane by lane, while the window (window.go)
// has room: at most min(MaxInflight, Receive Maximum) publishes are awaiting
// a PUBACK. It checks each record is a packet the broker will take
// (packetcheck.go; a damaged one is quarantined), gives it a packet id not
// in flight, records it in the window, and only then writes it, so that no
// PUBACK can come back for an id the window does not know. sessionHooks (session.go) sees the PUBACKs paho
// reads and the connection going up and down.
//
// The outbox, not the connection, is the record of what is undelivered: a
// record is deleted only on a successful PUBACK, and when a connection drops
// the window forgets what was in flight so that it is all sent again,
// oldest first. A PUBACK with an error reason code parks its record for a
// retry after a backoff (window.go), so one event the broker refuses cannot
// hold up the rest.

// maxTake is the most records the sender takes from the window at once:
// enough that a busy link gets batches, few enough that the Uplink's lock
// is held briefly. A batch also ends once it holds maxBatch bytes, so that
// the connection's buffer stays near its bound with large events.
const maxTake = 64

// outgoing is one record taken for sending, with its packet id.
type outgoing struct {
	rec []byte
	at  int // the offset of the packet id in rec
	pid uint16
}

// sendLoop writes records to the connection until stop is closed.
func (u *Uplink) sendLoop(stop <-chan struct{}) {
	var batch []outgoing
	for {
		conn, epoch, wait := u.take(&batch)
		if conn == nil {
			select {
			case <-wait:
				continue
			case <-stop:
				return
			}
		}
		if err := conn.writePublishes(batch); err != nil {
			// The connection is failing (paho's reader sees it too and
			// autopaho reconnects) or Run is saying goodbye on it. Nothing
			// more goes to this one.
			u.abandon(epoch)
		} else {
			u.pinger.PacketSent() // a busy link needs no PINGREQ
		}
		clear(batch) // the records may be deleted meanwhile: hold none
	}
}

// take fills batch with records to send now and returns the connection to
// write them to and its epoch. With nothing to send it returns a nil
// connection and a channel closed when that may have changed.
func (u *Uplink) take(batch *[]outgoing) (*batchConn, uint64, <-chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	*batch = (*batch)[:0]
	if !u.connected || u.stopping || u.conn == nil || u.deadEpoch == u.epoch {
		return nil, 0, u.work.wait()
	}
	now := time.Now()
	for size := 0; len(*batch) < maxTake && size < maxBatch; {
		id, rec, ok := u.nextToSend(now)
		if !ok {
			break
		}
		at, ok := checkPublish(rec)
		if !ok {
			u.ob.quarantine(id, errUnparsable)
			u.space.notify()
			continue
		}
		pid := u.win.freePID()
		if u.win.sent(id, pid, len(rec), now) {
			u.stats.Resent++
		}
		*batch = append(*batch, outgoing{rec: rec, at: at, pid: pid})
		size += len(rec)
	}
	if len(*batch) == 0 {
		if u.win.held {
			u.wakeLater() // pacing: Run wakes the sender when the bucket refills
		}
		return nil, 0, u.work.wait()
	}
	return u.conn, u.epoch, nil
}

// abandon stops the sender writing to the connection of epoch, which
// failed; it waits for the next one.
func (u *Uplink) abandon(epoch uint64) {
	u.mu.Lock()
	u.deadEpoch = epoch
	u.mu.Unlock()
}

// nextToSend is the window's next record, after dropping those larger than
// the broker's Maximum Packet Size: the broker would close the connection
// on them, on every attempt, holding up everything behind them.
func (u *Uplink) nextToSend(now time.Time) (uint64, []byte, bool) {
	for {
		id, rec, ok := u.win.next(u.ob, now)
		if !ok || u.maxPacket == 0 || len(rec) <= u.maxPacket {
			return id, rec, ok
		}
		u.log.Error("event larger than the broker accepts; dropped", "id", recordID(rec),
			"bytes", len(rec), "maximum_packet_size", u.maxPacket)
		u.drop(id, DropTooLarge)
	}
}
