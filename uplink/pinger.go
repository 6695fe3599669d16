package uplink

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/log"
)

// keepAlive is the uplink's MQTT keep alive (a paho.Pinger). MQTT asks a
// client to send something at least once per keep alive period; when
// nothing else went out for three quarters of it, this sends a PINGREQ. It
// judges the connection by what comes back: any packet, a PINGRESP or a
// PUBACK, proves the broker is there. The connection is given up when a
// PINGREQ was sent and nothing at all arrived for one and a half periods
// since.
//
// paho's own pinger gives up when the PINGRESP itself takes longer than one
// period. On a slow link that is wrong: the PINGREQ waits in the send
// buffer behind a window of publishes, while their PUBACKs keep arriving.
// And it knows only of the packets paho writes, not of the sender's
// publishes, so it would ping a busy link every period.
type keepAlive struct {
	mu       sync.Mutex
	lastSent time.Time // the last packet queued for the broker
	lastRecv time.Time // the last packet read from it
	pingAt   time.Time // the PINGREQ not yet followed by any packet; zero if none
}

var errNoReply = errors.New("uplink: no packet from the broker within 1.5 keep alive periods of a PINGREQ")

// Run pings as needed until ctx ends, or returns an error when the broker
// stopped answering.
func (k *keepAlive) Run(ctx context.Context, conn net.Conn, seconds uint16) error {
	if seconds == 0 {
		return nil
	}
	period := time.Duration(seconds) * time.Second
	k.mu.Lock()
	k.lastSent, k.lastRecv, k.pingAt = time.Now(), time.Now(), time.Time{}
	k.mu.Unlock()
	tick := time.NewTicker(period / 4)
	defer tick.Stop()
	failed := make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case now := <-tick.C:
			ping, err := k.check(now, period)
			if err != nil {
				return err
			}
			if ping {
				// The write may wait behind publishes in a full buffer; the
				// connection closing ends the wait.
				go func() {
					if _, err := packets.NewControlPacket(packets.PINGREQ).WriteTo(conn); err != nil {
						select {
						case failed <- err:
						default:
						}
					}
				}()
			}
		}
	}
}

// check decides, at now, whether to send a PINGREQ, or that the broker is
// gone.
func (k *keepAlive) check(now time.Time, period time.Duration) (ping bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.pingAt.IsZero() && k.lastRecv.After(k.pingAt) {
		k.pingAt = time.Time{} // answered, by a PINGRESP or anything else
	}
	switch {
	case !k.pingAt.IsZero() && now.Sub(k.pingAt) >= period*3/2:
		return false, errNoReply
	case k.pingAt.IsZero() && now.Sub(k.lastSent) >= period*3/4:
		// Checked every quarter period, so the PINGREQ goes out 0.75 to 1
		// period after the last packet: never later than MQTT allows.
		k.pingAt, k.lastSent = now, now
		return true, nil
	}
	return false, nil
}

// PacketSent is told of every packet queued for the broker: paho's and the
// sender's.
func (k *keepAlive) PacketSent() {
	k.mu.Lock()
	k.lastSent = time.Now()
	k.mu.Unlock()
}

// PacketReceived is told of every packet paho reads.
func (k *keepAlive) PacketReceived() {
	k.mu.Lock()
	k.lastRecv = time.Now()
	k.mu.Unlock()
}

// PingResp: a PINGRESP is a packet received like any other.
func (k *keepAlive) PingResp() {}

// SetDebug: the keep alive has nothing to log.
func (k *keepAlive) SetDebug(log.Logger) {}
