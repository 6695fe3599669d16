package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/event"
	"github.com/flowgate/flowgate/rules"
	"github.com/flowgate/flowgate/uplink"
)

// sink is where routed events go upstream: the uplink. Submit queues an
// event for the store's next group commit (waiting only while the outbox
// is full) and returns its promise, done once the event is on disk.
type sink interface {
	Submit(ctx context.Context, ev *event.Event, class string) (uplink.Durable, error)
}

// pending is what one publish put into the outbox: the promises to wait
// for before it counts as accepted. Events submitted one after another
// join the same group commit, so there is nearly always one.
type pending []uplink.Durable

func (ps *pending) add(d uplink.Durable) {
	if n := len(*ps); n == 0 || (*ps)[n-1] != d {
		*ps = append(*ps, d)
	}
}

// wait returns nil once every event is on disk.
func (ps pending) wait(ctx context.Context) error {
	for _, d := range ps {
		if err := d.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ready reports whether wait would return at once.
func (ps pending) ready() bool {
	for _, d := range ps {
		if !d.Ready() {
			return false
		}
	}
	return true
}

// errStopped is returned for publishes that arrive after the pipeline closed.
var errStopped = errors.New("gateway: pipeline stopped")

// pipeline carries one device publish through normalization and the rules
// stage to the uplink and local topics. handle runs on the publishing
// client's own goroutine, so publishes from many devices run in parallel and
// a device's own publishes stay in order.
type pipeline struct {
	norm      *devices.Normalizer
	flow      *rules.Flow
	up        sink
	local     func(topic string, payload []byte) error // publish on the local broker
	deadTopic string
	lateTopic string // rules.late_topic: outputs on it are input events, not derived ones
	now       func() time.Time
	m         *metrics
	log       *slog.Logger

	ctx    context.Context // cancelled when a drain runs out of time
	cancel context.CancelFunc
	mu     sync.RWMutex // held for reading by every handle in progress
	closed bool
}

func (p *pipeline) init() {
	p.ctx, p.cancel = context.WithCancel(context.Background())
}

// accept takes one publish in: normalized, through the rules, and what it
// causes queued for the outbox. It returns what to wait for before the
// publish counts as accepted (see pending.wait), or why it was not taken;
// the broker then withholds the device's PUBACK, so the device sends it
// again when it reconnects. A bad payload is not an error here: it is
// dead-lettered and counted, and accepted at once.
func (p *pipeline) accept(d *devices.Device, clientID, topic string, payload []byte) (pending, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, errStopped
	}
	p.m.received.Inc()
	now := p.now()
	ev, err := p.norm.Normalize(d, topic, payload, now)
	if err != nil {
		p.deadLetter(d, clientID, topic, payload, now, err)
		return nil, nil
	}
	ps, upErr, routed := p.route(ev)
	if !routed {
		p.m.unrouted.Inc()
	}
	switch {
	case errors.Is(upErr, uplink.ErrInvalidEvent):
		// What the other routes took is on its way to disk: the device's
		// PUBACK waits for it, as for any publish.
		p.deadLetter(d, clientID, topic, payload, now, &devices.RejectError{Reason: devices.ReasonUndeliverable, Detail: upErr.Error()})
		return ps, nil
	case upErr != nil:
		p.m.rejected.Inc()
		p.log.Warn("uplink did not accept event; not acknowledged, the device resends it when it reconnects",
			"id", ev.ID, "device", d.ID, "err", upErr)
	}
	return ps, upErr
}

// handle is accept and the wait for the store: for a publish that is
// acknowledged, or not, when handle returns.
func (p *pipeline) handle(d *devices.Device, clientID, topic string, payload []byte) error {
	ps, err := p.accept(d, clientID, topic, payload)
	if err != nil {
		return err
	}
	return p.durable(ps)
}

// durable waits until what a publish put into the outbox is on disk. If
// the store fails, or the shutdown's drain runs out of time, the publish
// is not accepted.
func (p *pipeline) durable(ps pending) error {
	if err := ps.wait(p.ctx); err != nil {
		p.m.rejected.Inc()
		p.log.Warn("events not written to the outbox; the publish is not acknowledged, its device resends it", "err", err)
		return err
	}
	return nil
}

// route runs an event through the rules and hands what they produce on:
// into the outbox and onto local topics. It returns what it put into the
// outbox, the first error of the uplink, and whether any route took the
// event or what it caused.
func (p *pipeline) route(ev *event.Event) (ps pending, upErr error, routed bool) {
	var check derivedCheck
	p.flow.Process(ev, func(o rules.Output) {
		routed = true
		if o.Event != ev && !check.ok(p, o) {
			return
		}
		p.deliver(o, &ps, &upErr)
	})
	return ps, upErr, routed
}

// derivedCheck validates the events the rules derive against the catalog,
// once per event however many routes take it, and dead-letters those that
// break it: they are not delivered.
type derivedCheck struct {
	last *event.Event
	err  error
}

func (c *derivedCheck) ok(p *pipeline, o rules.Output) bool {
	if o.Route == lateRoute && o.Topic == p.lateTopic && !o.Uplink {
		return true // an input event the engine refused as late, not a derived one
	}
	if o.Event != c.last {
		c.last, c.err = o.Event, p.checkEvent(o.Event)
		if c.err != nil {
			p.deadLetterEvent(o.Event, o.Route, c.err)
		}
	}
	return c.err == nil
}

// lateRoute is the route name of the outputs rules.Flow makes for late
// events.
const lateRoute = "late"

// checkEvent validates an event the gateway made (derived by rules, or its
// own) against the catalog, if there is one, and sets its dataschema.
func (p *pipeline) checkEvent(ev *event.Event) error {
	cat := p.norm.Catalog
	if cat == nil {
		return nil
	}
	if err := cat.Validate(ev); err != nil {
		return err
	}
	ev.DataSchema = cat.DataSchema(ev.Type)
	return nil
}

// system processes an event the gateway itself made (a device's presence):
// checked against the catalog, then through the routes and rules like a
// device's. Nobody waits to resend it, so an uplink refusal is logged.
func (p *pipeline) system(ev *event.Event) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return
	}
	if err := p.checkEvent(ev); err != nil {
		p.deadLetterEvent(ev, "", err)
		return
	}
	_, upErr, routed := p.route(ev) // nobody waits for the store: the committer reports its failures
	if !routed {
		p.m.unrouted.Inc()
	}
	if upErr != nil {
		p.m.rejected.Inc()
		p.log.Error("uplink did not accept the gateway's event", "id", ev.ID, "type", ev.Type, "subject", ev.Subject, "err", upErr)
	}
}

// deliver sends one output on: onto a local topic, and into the outbox,
// adding its promise to ps, or its error to *upErr if there is none yet. An
// error of the store outranks an event the uplink refuses as invalid: the
// first means the device must send its publish again, the second that it
// need not (the refused event is dead-lettered, the others kept).
func (p *pipeline) deliver(o rules.Output, ps *pending, upErr *error) {
	if o.Topic != "" {
		p.publishLocal(o)
	}
	if !o.Uplink {
		return
	}
	d, err := p.up.Submit(p.ctx, o.Event, o.Class)
	if err != nil {
		if *upErr == nil || (errors.Is(*upErr, uplink.ErrInvalidEvent) && !errors.Is(err, uplink.ErrInvalidEvent)) {
			*upErr = err
		}
		return
	}
	ps.add(d)
}

// advance moves the rules' clock on and delivers what falls due (closed
// windows, absences). An event the uplink does not accept is logged: no
// device is waiting to resend it.
func (p *pipeline) advance() {
	var check derivedCheck
	var ps pending
	p.flow.Advance(func(o rules.Output) {
		if !check.ok(p, o) {
			return
		}
		var err error
		if p.deliver(o, &ps, &err); err != nil {
			p.m.rejected.Inc()
			p.log.Error("uplink did not accept a rule's event", "id", o.Event.ID, "type", o.Event.Type, "route", o.Route, "err", err)
		}
	})
	if err := ps.wait(p.ctx); err != nil {
		p.m.rejected.Inc()
		p.log.Error("rules' events not written to the outbox", "err", err)
	}
}

func (p *pipeline) publishLocal(o rules.Output) {
	if err := p.local(o.Topic, o.Event.AppendJSON(nil)); err != nil {
		p.log.Warn("local publish failed", "topic", o.Topic, "route", o.Route, "err", err)
		return
	}
	p.m.localPublished.Inc()
}

// deadLetter is the message published on the dead-letter topic.
type deadLetter struct {
	Reason        devices.Reason `json:"reason"`
	Error         string         `json:"error"`
	Device        string         `json:"device"`
	ClientID      string         `json:"client_id"`
	Topic         string         `json:"topic"`
	Received      time.Time      `json:"received"`
	Payload       string         `json:"payload,omitempty"`        // when valid UTF-8
	PayloadBase64 []byte         `json:"payload_base64,omitempty"` // otherwise
	Size          int            `json:"size"`
	// For an event the gateway made (derived by a rule, or its own): its
	// type and the route or rule that produced it; the payload is the
	// event, as it would have been sent.
	EventType string `json:"event_type,omitempty"`
	Route     string `json:"route,omitempty"`
}

// maxDeadLetterPayload bounds the payload copied into a dead letter.
const maxDeadLetterPayload = 4 << 10

func (p *pipeline) deadLetter(d *devices.Device, clientID, topic string, payload []byte, now time.Time, err error) {
	dl := deadLetter{Reason: devices.ReasonMalformed, Error: err.Error(), Device: d.ID, ClientID: clientID,
		Topic: topic, Received: now.UTC(), Size: len(payload)}
	p.publishDeadLetter(dl, payload, err)
}

// deadLetterEvent dead-letters an event the gateway made, which the
// catalog refused.
func (p *pipeline) deadLetterEvent(ev *event.Event, route string, err error) {
	payload := ev.AppendJSON(nil)
	dl := deadLetter{Reason: devices.ReasonSchema, Error: err.Error(), Device: ev.Subject, Topic: ev.Topic,
		Received: p.now().UTC(), Size: len(payload), EventType: ev.Type, Route: route}
	p.publishDeadLetter(dl, payload, err)
}

func (p *pipeline) publishDeadLetter(dl deadLetter, payload []byte, err error) {
	if r, ok := devices.AsReject(err); ok {
		dl.Reason, dl.Error = r.Reason, r.Detail
	}
	p.m.deadLetters.WithLabelValues(string(dl.Reason)).Inc()
	body := payload[:min(len(payload), maxDeadLetterPayload)]
	if utf8.Valid(body) {
		dl.Payload = string(body)
	} else {
		dl.PayloadBase64 = body
	}
	msg, _ := json.Marshal(dl)
	topic := DeadLetterTopic(p.deadTopic, dl.Device)
	if perr := p.local(topic, msg); perr != nil {
		p.log.Error("dead-letter publish failed", "topic", topic, "err", perr)
	}
	p.log.Debug("dead letter", "device", dl.Device, "topic", dl.Topic, "type", dl.EventType, "reason", dl.Reason, "err", err)
}

// DeadLetterTopic is the dead-letter topic of device from the template of
// ingest.dead_letter_topic: {device} becomes the device's id (or, for an
// event the gateway made, its subject), made one topic level.
func DeadLetterTopic(template, device string) string {
	if !strings.Contains(template, "{device}") {
		return template
	}
	level := strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r == 0 {
			return '_'
		}
		return r
	}, device)
	if level == "" {
		level = "_"
	}
	return strings.ReplaceAll(template, "{device}", level)
}

// DeadLetterFilter is the subscription filter that receives every dead
// letter of the template: {device} becomes '+'.
func DeadLetterFilter(template string) string { return strings.ReplaceAll(template, "{device}", "+") }

// quiet runs fn while no publish is in progress: every publish that the
// rules have seen has been delivered (or refused). New publishes wait.
//
// It does not queue for the lock, which would hold up every new publish
// behind one waiting for room in a full outbox: it looks for a moment
// when none is in progress, for at most within, and reports whether it
// found one.
func (p *pipeline) quiet(within time.Duration, fn func()) bool {
	deadline := time.Now().Add(within)
	for !p.mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	defer p.mu.Unlock()
	fn()
	return true
}

// close stops new publishes and waits for those in progress. If ctx ends
// first, blocked uplink enqueues are cancelled (those publishes are not
// acknowledged to their devices, which resend them) and close waits for them.
func (p *pipeline) close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return ctx.Err()
	}
}
