// Package uplink forwards Flowgate's events to the cloud MQTT broker.
//
// The gateway's promise upstream is at-least-once delivery, in order per
// source, with a stable id on every event so the cloud can deduplicate. This
// package keeps that promise on a link that drops: an Uplink holds every
// accepted event until the broker's PUBACK says it has it (ack-then-delete),
// resends whatever was unacknowledged when the connection comes back, and
// keeps as many publishes in flight as the broker allows, because a backlog
// drained one round trip at a time never catches up.
//
// Each event is published as a CloudEvent in structured JSON mode: MQTT v5,
// QoS 1, content type application/cloudevents+json, and a user property "id"
// carrying the event id so that the cloud can deduplicate without parsing the
// payload. The topic comes from a template such as
// "flowgate/gw1/events/{type}".
//
// Use it in three steps: New checks the options; Run, in a goroutine the
// caller owns, connects and publishes until stopped; Enqueue hands it events.
// Close stops intake, waits for the queue to drain and disconnects:
//
//	up, err := uplink.New(uplink.Options{URL: "tls://cloud.example:8883", Topic: "gw/{type}", Logger: log})
//	...
//	go func() { done <- up.Run(ctx) }()
//	err = up.Enqueue(ctx, ev)
//	...
//	err = up.Close(shutdownCtx) // then <-done
//
// # Durability
//
// With Options.StoreDir set, the outbox is a Badger store on disk, and
// Enqueue returns only once the event is synced there: an event whose
// Enqueue returned survives a crash, kill -9 or power cut, and is sent after
// the next start with the same bytes and id. Many concurrent Enqueue calls
// share one sync (group commit, see commit.go). Only synced events are sent,
// so the cloud never receives an event whose Enqueue did not return. An
// acknowledged event is deleted from the store, without a sync: after a
// crash, an event may be sent again, with the same id.
//
// New does no I/O. The store is opened by Open, which Run and Enqueue call
// if the caller has not, so the sequence above works unchanged; call Open
// right after New to learn early that the directory is unusable. Close
// writes whatever is pending and closes the store; events not yet
// acknowledged stay in it for the next start. Without StoreDir, events are
// kept in memory only and are lost when the process ends.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/event"
)

// Uplink publishes events to one MQTT broker. Its methods are safe for
// concurrent use.
type Uplink struct {
	opts   Options
	broker *url.URL
	topic  topicTemplate
	log    *slog.Logger
	timing timing
	link   link // the network connection, for the watchdog (watchdog.go)

	mu          sync.Mutex
	ob          *outbox // nil until Open
	defLane     int     // the lane of Enqueue: the last class
	win         window
	epoch       uint64 // changes whenever a connection comes up or goes down
	connected   bool
	connectedAt time.Time  // when the last connection came up
	maxPacket   int        // the broker's Maximum Packet Size; 0: no limit
	failures    int        // rejections since the last time nothing was parked
	closing     bool       // Close has begun: Enqueue refuses
	ran         bool       // Run has been called
	running     bool       // Run has not returned yet
	stopping    bool       // Run is shutting the connection down on purpose
	stopBy      time.Time  // Close's deadline, which bounds Run's disconnect too
	work        signal     // wakes the sender: something may be sendable
	space       signal     // wakes Enqueue and Close: the queue shrank or Run ended
	conn        *batchConn // the connection of the latest attempt (sender.go)
	deadEpoch   uint64     // the sender's writes failed on this connection
	pinger      *keepAlive // the keep alive of Run's connections
	stats       Stats
	commitTimes latencyHist // group commits that synced events
	ackTimes    latencyHist // from a publish's write to its PUBACK

	stop     chan struct{} // closed by Close: Run returns
	stopOnce sync.Once
	runDone  chan struct{} // closed when Run returns
	retry    chan struct{} // a record was parked; Run arms a timer for its retry

	// The store's lifecycle (commit.go), guarded by openMu. maint counts
	// the maintenance goroutine (maintain.go), which closeStore waits for.
	openMu        sync.Mutex
	maint         sync.WaitGroup
	maintEvery    time.Duration
	storeOpen     atomic.Bool     // Open succeeded: the fast path of Open
	storeShut     bool            // closeStore has run: Open refuses
	stateTidied   map[string]bool // state names saved by this process (state.go); under openMu
	storeCloseErr error
}

// Stats is a snapshot of an Uplink's counters.
type Stats struct {
	Connected bool   // a connection to the broker is up
	Enqueued  uint64 // events accepted by Enqueue
	Forwarded uint64 // events acknowledged by the broker, and so deleted
	Resent    uint64 // publishes sent again: after a reconnect, or a rejected PUBACK
	Queued    int    // events held: accepted but not yet acknowledged
	Inflight  int    // publishes sent on this connection and awaiting a PUBACK

	Reconnects  uint64    // connections established after the first
	Stalls      uint64    // connections dropped by the watchdog (Options.StallTimeout)
	QueuedBytes int64     // their size, as counted against Options.MaxBytes
	Oldest      time.Time // when the oldest event held was accepted; zero if none
	Classes     []ClassStats

	// Dropped counts events dropped undelivered, by reason: DropExpired
	// (older than their class's TTL), DropFull (to make room) and
	// DropTooLarge (the broker would refuse them whatever happens).
	Dropped map[string]uint64
	// Quarantined counts stored records that could not be read and were set
	// aside in the store's quarantine instead of being sent.
	Quarantined uint64
	// Spilled counts events written from the journal into Badger, not
	// acknowledged in time (hotFor) or beyond the hot bytes (journal.go).
	Spilled uint64

	// With a store (Options.StoreDir): group commits that synced events,
	// those of them that took longer than Options.CommitInterval, and the
	// store's size on disk at the last measurement.
	Syncs       uint64
	SlowCommits uint64
	StoreBytes  int64

	// CommitTimes: how long group commits that synced events took (with a
	// store). AckTimes: from a publish's write to the connection to its
	// PUBACK, for the publishes acknowledged.
	CommitTimes Latency
	AckTimes    Latency
}

// ClassStats is the backlog of one class.
type ClassStats struct {
	Name   string
	Queued int
	Bytes  int64
}

// Reasons an event is dropped undelivered, the keys of Stats.Dropped.
const (
	DropExpired  = "expired"
	DropFull     = "full"
	DropTooLarge = "too_large" // larger than the broker's Maximum Packet Size
)

// New checks opts and returns an Uplink ready to Run. It has no side
// effects: it neither connects, nor opens the store, nor starts goroutines.
func New(opts Options) (*Uplink, error) {
	opts = opts.withDefaults()
	broker, topic, err := opts.validate()
	if err != nil {
		return nil, err
	}
	u := &Uplink{
		opts:       opts,
		broker:     broker,
		topic:      topic,
		log:        opts.Logger, // the caller names the component
		timing:     defaultTiming(),
		win:        newWindow(newPacer(opts.ReplayRate, opts.ReplayBytes)),
		maintEvery: maintainEvery,
		stop:       make(chan struct{}),
		runDone:    make(chan struct{}),
		retry:      make(chan struct{}, 1),

		stateTidied: make(map[string]bool),
	}
	return u, nil
}

// Enqueue accepts ev for delivery. It encodes the event once, then queues
// it; while the queue is full it blocks until there is space or ctx is done.
// With a store (Options.StoreDir) it returns only once the event is synced
// to disk, and opens the store first if Run has not.
//
// After Close has begun it returns ErrClosed. An event that cannot be
// published (no id, an invalid topic, too large) is refused with
// ErrInvalidEvent.
// Any other error means the event was not accepted, except that one which
// says the event may still be delivered: ctx ended while Enqueue waited for
// the sync. Retrying then is safe, as the cloud deduplicates by id.
func (u *Uplink) Enqueue(ctx context.Context, ev *event.Event) error {
	return u.EnqueueClass(ctx, ev, "")
}

// EnqueueClass is Enqueue into the lane of class, one of Options.Classes;
// "" is the last class, Enqueue's. An unknown class is refused with
// ErrUnknownClass.
func (u *Uplink) EnqueueClass(ctx context.Context, ev *event.Event, class string) error {
	d, err := u.Submit(ctx, ev, class)
	if err != nil {
		return err
	}
	return d.Wait(ctx)
}

// Durable is the promise of an event submitted to the outbox: Wait says
// when it is on disk (or in memory, without a store), and so accepted.
type Durable struct{ b *batch }

// Wait returns nil once the event is accepted, the store's error if it
// could not be written, or ctx's if ctx ends first (the event may then
// still be delivered).
func (d Durable) Wait(ctx context.Context) error {
	if d.b == nil {
		return nil
	}
	return waitDurable(ctx, d.b)
}

// Ready reports, without waiting, whether Wait would return at once.
func (d Durable) Ready() bool {
	if d.b == nil {
		return true
	}
	select {
	case <-d.b.done:
		return true
	default:
		return false
	}
}

// Submit is EnqueueClass without the wait for the store: it returns once
// the event is queued for the next group commit (waiting only while the
// outbox is full), and Wait on the result waits for that commit. Events
// submitted one after the other are written in that order, so their
// Durables become done in that order too. A device's publishes can so be
// taken in while earlier ones are still being written, and acknowledged
// each once it is on disk.
func (u *Uplink) Submit(ctx context.Context, ev *event.Event, class string) (Durable, error) {
	rec, err := u.encode(ev)
	if err != nil {
		return Durable{}, err
	}
	if err := u.Open(); err != nil {
		return Durable{}, err
	}
	li, err := u.lane(class)
	if err != nil {
		return Durable{}, err
	}
	for {
		b, wait, err := u.append(li, rec)
		switch {
		case b != nil:
			return Durable{b}, nil
		case wait == nil:
			return Durable{}, err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Durable{}, fmt.Errorf("uplink: enqueue: queue full: %w", ctx.Err())
		}
	}
}

// lane returns the lane of class.
func (u *Uplink) lane(class string) (int, error) {
	if class == "" {
		return u.defLane, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if li := u.ob.laneOf(class); li >= 0 && li < len(u.opts.Classes) {
		return li, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownClass, class)
}

// append queues rec in lane li and returns the batch whose write to wait
// for; while the outbox is full, a channel to wait on for space. With the
// DropOldest policy it first makes room, if it can, by dropping the oldest
// events of the lowest class no higher than li's.
func (u *Uplink) append(li int, rec []byte) (*batch, <-chan struct{}, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closing {
		return nil, nil, ErrClosed
	}
	for {
		_, err := u.ob.Append(li, rec, time.Now())
		if errors.Is(err, errFull) && u.opts.WhenFull == DropOldest && u.dropOldest(li, DropFull) {
			continue
		}
		switch {
		case errors.Is(err, errFull):
			return nil, u.space.wait(), nil
		case err != nil:
			return nil, nil, fmt.Errorf("uplink: enqueue: %w", err)
		}
		return u.ob.pending(), nil, nil // counted and sendable once written
	}
}

// Stats returns a snapshot of the counters.
func (u *Uplink) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	s.Connected = u.connected
	s.Inflight = u.win.inflight()
	s.Reconnects, s.Stalls = u.Reconnects(), u.Stalls()
	s.CommitTimes, s.AckTimes = u.commitTimes.snapshot(), u.ackTimes.snapshot()
	if u.ob != nil {
		u.ob.fillStats(&s)
	}
	return s
}

// Close stops accepting events, waits until every queued event has been
// acknowledged or ctx is done, then makes Run disconnect cleanly and return.
// If events are left undelivered (the deadline hit, or Run was not running
// to deliver them) the error wraps ErrUndelivered and says how many. With a
// store, Close then finishes writing pending events and deletes and closes
// it; undelivered events stay in it for the next start.
//
// Close may be called more than once, and before or without Run; a Run that
// has not started when Close begins is not waited for, and returns ErrClosed
// when it does start. Close does not wait past ctx for Run to return; Run's
// caller waits for that.
func (u *Uplink) Close(ctx context.Context) error {
	u.mu.Lock()
	u.closing = true
	u.space.notify()
	ran := u.ran
	u.mu.Unlock()

	if ran {
		u.drain(ctx)
	}
	u.stopOnce.Do(func() {
		if d, ok := ctx.Deadline(); ok {
			u.mu.Lock()
			u.stopBy = d
			u.mu.Unlock()
		}
		close(u.stop)
	})
	if ran {
		select {
		case <-u.runDone:
		case <-ctx.Done():
		}
	}
	storeErr := u.closeStore()
	return errors.Join(u.undelivered(ctx), storeErr)
}

// drain waits until the queue is empty, Run has returned or ctx is done.
func (u *Uplink) drain(ctx context.Context) {
	for {
		u.mu.Lock()
		if u.ob == nil || u.ob.Len() == 0 || !u.running {
			u.mu.Unlock()
			return
		}
		wait := u.space.wait()
		u.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
}

// undelivered reports the events still queued, if any.
func (u *Uplink) undelivered(ctx context.Context) error {
	u.mu.Lock()
	n := 0
	if u.ob != nil {
		n = u.ob.Len()
	}
	u.mu.Unlock()
	kept := ""
	if u.opts.StoreDir != "" {
		kept = ", kept in " + u.opts.StoreDir
	}
	switch {
	case n == 0:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %d not acknowledged by the broker%s: %w", ErrUndelivered, n, kept, ctx.Err())
	default:
		return fmt.Errorf("%w: %d not acknowledged by the broker%s (Run was not running)", ErrUndelivered, n, kept)
	}
}

// signal wakes every goroutine waiting on it at the next notify. The zero
// value is ready to use; the Uplink's mutex guards it. A channel is made only
// when someone waits, so notifying nobody costs nothing.
type signal struct{ ch chan struct{} }

func (s *signal) wait() chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
