// Package sim is simulated device firmware: devices that connect to an MQTT
// broker (the gateway's, or any other) and publish readings the way real
// sensors do, deterministically for a given seed.
//
// This first version simulates environment sensors (temperature and
// humidity with drift, noise and occasional excursions) and, on request, a
// device with a firmware bug that sends malformed JSON now and then, so the
// gateway's dead-letter path can be seen working.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Device is one simulated device's identity at the broker.
type Device struct {
	ID       string
	Username string // empty: connect anonymously
	Password string
}

// Fleet is a set of simulated environment sensors.
type Fleet struct {
	Broker   string        // mqtt://host:port
	Devices  []Device      // who publishes
	Interval time.Duration // between two readings of one device
	Seed     uint64        // same seed, same readings
	// MalformedEvery makes the last device send a malformed payload every
	// n-th reading (0: never).
	MalformedEvery int
	// OnPublish, if set, is told of every publish just before it is sent.
	OnPublish func(device, topic string, payload []byte)
	Logger    *slog.Logger
}

// Run connects every device and publishes until ctx is cancelled. It
// returns after every device has disconnected.
func (f *Fleet) Run(ctx context.Context) error {
	u, err := url.Parse(f.Broker)
	if err != nil {
		return fmt.Errorf("sim: broker url: %w", err)
	}
	if f.Interval <= 0 {
		return errors.New("sim: interval must be positive")
	}
	var wg sync.WaitGroup
	for i, d := range f.Devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := i == len(f.Devices)-1
			f.runDevice(ctx, u, d, rand.New(rand.NewPCG(f.Seed, uint64(i))), last && f.MalformedEvery > 0)
		}()
	}
	wg.Wait()
	return nil
}

func (f *Fleet) runDevice(ctx context.Context, u *url.URL, d Device, rng *rand.Rand, buggy bool) {
	log := f.Logger.With("device", d.ID)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: d.Username, ConnectPassword: []byte(d.Password),
		ReconnectBackoff: func(int) time.Duration { return time.Second },
		OnConnectError:   func(err error) { log.Warn("connect failed", "err", err) },
		ClientConfig:     paho.ClientConfig{ClientID: d.ID},
	})
	if err != nil {
		log.Error("connect", "err", err)
		return
	}
	defer func() { <-cm.Done() }()
	if cm.AwaitConnection(ctx) != nil {
		return
	}
	env := newEnvironment(rng)
	topic := "devices/" + d.ID + "/env"
	tick := time.NewTicker(f.Interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		payload := env.next(time.Now())
		if buggy && n%f.MalformedEvery == 0 {
			payload = []byte(`{"temperature": 21.5, "humidity":`) // truncated by the bug
		}
		if f.OnPublish != nil {
			f.OnPublish(d.ID, topic, payload)
		}
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("publish failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// environment is one sensor's state: a slow drift around a set point, noise,
// and now and then an excursion (a door left open, a compressor fault).
type environment struct {
	rng       *rand.Rand
	base      float64 // °C
	humidity  float64 // %RH
	excursion int     // readings left in the current excursion
}

func newEnvironment(rng *rand.Rand) *environment {
	return &environment{rng: rng, base: 18 + 4*rng.Float64(), humidity: 40 + 20*rng.Float64()}
}

func (e *environment) next(now time.Time) []byte {
	e.base += (e.rng.Float64() - 0.5) * 0.2
	t := e.base + e.rng.NormFloat64()*0.3
	if e.excursion == 0 && e.rng.IntN(8) == 0 {
		e.excursion = 3
	}
	if e.excursion > 0 {
		t += 8 + 2*e.rng.Float64()
		e.excursion--
	}
	h := math.Max(0, math.Min(100, e.humidity+e.rng.NormFloat64()))
	return fmt.Appendf(nil, `{"temperature":%.2f,"humidity":%.1f,"ts":%d}`, t, h, now.UnixMilli())
}
