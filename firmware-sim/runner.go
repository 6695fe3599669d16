package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Runner plays a Plan against an MQTT broker: every device connects with
// its own credentials, then, once all are connected, the clock starts and
// each device sends its messages at their simulated times, holding them in
// a bounded local buffer while its connection is down, like real firmware.
type Runner struct {
	Broker string // mqtt://host:port
	Plan   *Plan
	Clock  *Clock
	// Secret derives each device's password (Password); empty: connect
	// anonymously, with the device id as client id.
	Secret string
	// MQTT is the protocol version the devices speak: 5 (the default when
	// 0) or 3 (3.1.1).
	MQTT int
	QoS  byte // 0 or 1
	// Will makes each device leave a last will, {"online":false}, on
	// devices/{id}/status.
	Will bool
	// Buffer is how many messages a device holds while disconnected; the
	// oldest is dropped (and counted) when it is full. Default 1000.
	Buffer int
	// Count stops the run after this many messages in all (0: the plan's).
	Count int64
	// ConnectWait bounds the wait for every device's first connection.
	ConnectWait time.Duration
	// OnPublish, if set, is told of each message as it is sent (from many
	// goroutines at once).
	OnPublish func(device string, m *Message)
	Logger    *slog.Logger

	Stats Stats
}

// Stats are a run's counters, safe to read while it runs.
type Stats struct {
	Devices    int64 // in the plan
	Connected  atomic.Int64
	Sent       atomic.Int64 // messages the broker took (PUBACK for QoS 1)
	Bytes      atomic.Int64
	Broken     atomic.Int64 // malformed on purpose (-faults), included in Sent
	Errors     atomic.Int64 // failed publishes and refused PUBACKs
	Dropped    atomic.Int64 // pushed out of a full local buffer
	Reconnects atomic.Int64
}

// Run connects every device and plays the plan; it returns when every
// device has sent its last message (or ctx ends) and disconnected.
func (r *Runner) Run(ctx context.Context) error {
	u, err := url.Parse(r.Broker)
	if err != nil {
		return fmt.Errorf("sim: broker url: %w", err)
	}
	if r.Clock == nil || r.Clock.Speed <= 0 {
		return errors.New("sim: a clock with a positive speed is needed")
	}
	if r.MQTT != 0 && r.MQTT != 3 && r.MQTT != 5 {
		return fmt.Errorf("sim: MQTT version %d: only 3 (3.1.1) and 5 are spoken", r.MQTT)
	}
	if r.Buffer <= 0 {
		r.Buffer = 1000
	}
	if r.ConnectWait <= 0 {
		r.ConnectWait = time.Minute
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	r.Stats.Devices = int64(len(r.Plan.Devices))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	devs := make([]*simDevice, len(r.Plan.Devices))
	for i, d := range r.Plan.Devices {
		devs[i] = &simDevice{r: r, spec: d, msgs: r.Plan.Messages[i], up: make(chan struct{}, 1)}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, d := range devs {
		if err := d.connect(runCtx, u); err != nil {
			return err
		}
	}
	if err := r.awaitAll(runCtx, devs); err != nil {
		cancel()
		for _, d := range devs {
			<-d.link.Done()
		}
		return err
	}
	r.Clock.Begin(time.Now())
	for _, d := range devs {
		wg.Add(1)
		go func() { defer wg.Done(); d.play(runCtx) }()
	}
	return nil
}

// awaitAll waits until every device has connected once.
func (r *Runner) awaitAll(ctx context.Context, devs []*simDevice) error {
	ctx, cancel := context.WithTimeout(ctx, r.ConnectWait)
	defer cancel()
	for _, d := range devs {
		if err := d.link.AwaitConnection(ctx); err != nil {
			return fmt.Errorf("sim: %s did not connect within %v: %w", d.spec.ID, r.ConnectWait, err)
		}
	}
	return nil
}

// simDevice is one device's connection and the messages it has to send.
type simDevice struct {
	r     *Runner
	spec  DeviceSpec
	msgs  []Message
	link  link
	buf   []byte        // payload encode buffer
	up    chan struct{} // a (re)connection happened
	queue []*Message
}

func (d *simDevice) connect(ctx context.Context, u *url.URL) error {
	r, id := d.r, d.spec.ID
	h := linkHooks{
		up: func() {
			r.Stats.Connected.Add(1)
			select {
			case d.up <- struct{}{}:
			default: // one wake-up is pending already
			}
		},
		down: func() {
			r.Stats.Connected.Add(-1)
			r.Stats.Reconnects.Add(1)
		},
		connectError: func(err error) { r.Logger.Debug("connect failed", "device", id, "err", err) },
	}
	var err error
	if r.MQTT == 3 {
		d.link, err = dial311(ctx, r, u, id, h)
	} else {
		d.link, err = dial5(ctx, r, u, id, h)
	}
	if err != nil {
		return fmt.Errorf("sim: %s: %w", id, err)
	}
	return nil
}

// play sends each message at its time, then drains the buffer, then
// disconnects.
func (d *simDevice) play(ctx context.Context) {
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.link.Disconnect(ctx)
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range d.msgs {
		m := &d.msgs[i]
		timer.Reset(time.Until(d.r.Clock.WallAt(m.At)))
		if !d.wait(ctx, timer.C) {
			return
		}
		if d.r.Count > 0 && d.r.Stats.Sent.Load()+int64(len(d.queue)) >= d.r.Count {
			break
		}
		d.enqueue(m)
		d.drain(ctx)
	}
	// What is left waits for the connection to come back, or, if it never
	// went (a publish timed out), is tried again every retryLeft.
	retry := time.NewTicker(retryLeft)
	defer retry.Stop()
	for len(d.queue) > 0 && ctx.Err() == nil {
		if !d.wait(ctx, retry.C) {
			return
		}
		d.drain(ctx)
	}
}

// retryLeft is how often a device tries again to send what it still holds
// at the end while its connection seems up.
const retryLeft = time.Second

// wait blocks until c fires (nil: until the connection comes back up) or
// ctx ends; a reconnection in between drains the buffer.
func (d *simDevice) wait(ctx context.Context, c <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-c:
			return true
		case <-d.up:
			d.drain(ctx)
			if c == nil {
				return true
			}
		}
	}
}

func (d *simDevice) enqueue(m *Message) {
	if len(d.queue) >= d.r.Buffer {
		d.queue = d.queue[1:]
		d.r.Stats.Dropped.Add(1)
	}
	d.queue = append(d.queue, m)
}

// drain publishes the buffer, oldest first, until it is empty or a
// publish fails: the connection is down or went down, and the rest wait
// for it to come back. A publish the broker refuses is counted and
// dropped (sending it again would not help).
func (d *simDevice) drain(ctx context.Context) {
	for len(d.queue) > 0 {
		m := d.queue[0]
		err := d.publish(ctx, m)
		var refused *refusedError
		switch {
		case errors.As(err, &refused):
			d.r.Stats.Errors.Add(1)
			d.r.Logger.Warn("publish refused", "device", d.spec.ID, "topic", m.Topic, "err", err)
		case err != nil:
			if !errors.Is(err, errLinkDown) && ctx.Err() == nil {
				d.r.Stats.Errors.Add(1)
				d.r.Logger.Debug("publish failed; kept for later", "device", d.spec.ID, "err", err)
			}
			return
		}
		d.queue = d.queue[1:]
	}
}

// refusedError is a PUBACK with an error reason code.
type refusedError struct{ code byte }

func (e *refusedError) Error() string {
	return fmt.Sprintf("sim: broker refused the publish: reason 0x%02x", e.code)
}

func (d *simDevice) publish(ctx context.Context, m *Message) error {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d.buf = m.AppendPayload(d.buf[:0])
	if err := d.link.Publish(pctx, "devices/"+d.spec.ID+"/"+m.Topic, d.r.QoS, m.Retain, d.buf); err != nil {
		return err
	}
	d.r.Stats.Sent.Add(1)
	d.r.Stats.Bytes.Add(int64(len(d.buf)))
	if m.Broken {
		d.r.Stats.Broken.Add(1)
	}
	if d.r.OnPublish != nil {
		d.r.OnPublish(d.spec.ID, m)
	}
	return nil
}
