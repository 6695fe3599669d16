package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/event"
)

// The event types of a device's presence. They are made only when a route
// lists them in its types (see presenceEvents).
const (
	TypeDeviceOnline  = "device.online"
	TypeDeviceOffline = "device.offline"
)

// Why a device's connection ended: the reason of device.offline events and
// the label of flowgate_device_disconnects_total.
const (
	goneDisconnect = "disconnect"        // the client sent DISCONNECT
	goneKeepAlive  = "keepalive_timeout" // nothing heard for 1.5 × its keep-alive
	goneLost       = "connection_lost"   // the connection broke (closed, reset)
	goneTakenOver  = "taken_over"        // a new connection with the same client id replaced it
	goneShutdown   = "server_shutdown"   // the gateway stopped
	goneProtocol   = "protocol_error"    // the broker disconnected it: a bad or too large packet, a limit exceeded
)

var disconnectReasons = []string{goneDisconnect, goneKeepAlive, goneLost, goneTakenOver, goneShutdown, goneProtocol}

// goneReason classifies how a client's connection ended from the error its
// read loop ended with and the cause the broker recorded.
func goneReason(cl *mqtt.Client, err error) string {
	cause := cl.StopCause()
	var code packets.Code
	var ne net.Error
	switch {
	case cl.IsTakenOver() || errors.Is(cause, packets.ErrSessionTakenOver):
		return goneTakenOver
	case errors.Is(cause, packets.ErrServerShuttingDown):
		return goneShutdown
	case errors.Is(cause, packets.CodeDisconnect) || errors.Is(err, packets.CodeDisconnect):
		return goneDisconnect
	case errors.As(err, &ne) && ne.Timeout():
		return goneKeepAlive
	case errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code,
		errors.As(cause, &code) && code.Code >= packets.ErrUnspecifiedError.Code:
		return goneProtocol
	case err == nil, errors.Is(err, io.EOF):
		return goneLost
	}
	return goneLost
}

// presenceEvents turns a device's presence changes into events that go
// through the pipeline like any other: through the routes that list their
// type, and the rules.
type presenceEvents struct {
	tracker *devices.Presence
	pipe    *pipeline
	source  string                          // /gateways/{id}
	emit    atomic.Pointer[map[string]bool] // the types some route lists; swapped by a reload
	now     func() time.Time
}

// setTypes sets the presence event types to make: those cfg's routes list.
func (p *presenceEvents) setTypes(types map[string]bool) { p.emit.Store(&types) }

// onlineData and offlineData are the data of the presence events.
type onlineData struct {
	ClientID string `json:"client_id"`
	Remote   string `json:"remote"`
	Auth     string `json:"auth"`
}

type offlineData struct {
	ClientID string `json:"client_id"`
	Reason   string `json:"reason"`
	Will     bool   `json:"will"` // its Will was published
}

// connected records a device's new connection and makes device.online if
// the device came online with it.
func (p *presenceEvents) connected(d *devices.Device, cl *mqtt.Client, auth string) {
	now := p.now()
	c := devices.Client{ClientID: cl.ID, Remote: cl.Net.Remote, Auth: auth}
	if p.tracker.Connected(d, cl, c, now) {
		p.send(TypeDeviceOnline, d.ID, onlineData(c), now)
	}
}

// disconnected records that a connection ended and makes device.offline
// if its device went offline with it.
func (p *presenceEvents) disconnected(cl *mqtt.Client, reason string) {
	now := p.now()
	g := p.tracker.Disconnected(cl, reason == goneTakenOver, now)
	if g.Offline {
		p.send(TypeDeviceOffline, g.Device, offlineData{ClientID: g.ClientID, Reason: reason, Will: g.Will}, now)
	}
}

func (p *presenceEvents) send(typ, device string, data any, now time.Time) {
	if !(*p.emit.Load())[typ] {
		return
	}
	b, err := json.Marshal(data)
	if err != nil {
		return // plain structs of strings and bools: cannot happen
	}
	p.pipe.system(&event.Event{ID: event.NewID(), Source: p.source + "/devices/" + device, Type: typ,
		Subject: device, Time: now.UTC(), DataContentType: "application/json", Data: b})
}
