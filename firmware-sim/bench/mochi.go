package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flowgate/flowgate/gateway/config"
)

// ServeMochi runs the broker Flowgate embeds (mochi) with nothing on it
// until ctx ends: anonymous, in memory, no pipeline. It is built as
// gateway/broker.go builds the gateway's, from the gateway's broker
// defaults, so that beside mosquitto and the gateway it shows what the
// embedded broker alone costs under the same load (`flowgate-sim broker`,
// which the harness starts as a process of its own).
func ServeMochi(ctx context.Context, addr string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := config.Default().Broker
	caps := mqtt.NewDefaultServerCapabilities()
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MaximumClients = int64(b.MaxClients)
	caps.MaximumPacketSize = uint32(b.MaxPacketBytes)
	caps.MaximumMessageExpiryInterval = int64(b.MaxMessageExpiry.Seconds())
	caps.MaximumSessionExpiryInterval = uint32(min(b.SessionExpiry.Seconds(), math.MaxUint32))
	caps.ReceiveMaximum = uint16(b.ReceiveMaximum)
	caps.MaximumInflight = uint16(b.MaxInflight)
	caps.MaximumClientWritesPending = int32(b.MaxQueued)
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log, InlineClient: true, SysTopicResendInterval: 30})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		return fmt.Errorf("bench: mochi: %w", err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return fmt.Errorf("bench: mochi: %w", err)
	}
	if err := s.Serve(); err != nil {
		return fmt.Errorf("bench: mochi: %w", err)
	}
	<-ctx.Done()
	return s.Close()
}

// allowAll lets every client connect and use every topic.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
