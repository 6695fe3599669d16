package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/firmware-sim/internal/mqtt311"
)

// publisher is one publishing connection. Its own goroutine writes; a
// reader goroutine takes the PUBACKs and frees window slots.
type publisher struct {
	idx   int
	id    string
	topic string
	quota int // messages to send; 0: until stopped
	c     *conn

	// The QoS 1 window: publishes awaiting their PUBACK. A full window
	// takes a new publish per ack, as an MQTT client does; publishes that
	// find room (acks that came while the publisher was busy) go out in one
	// write. Refilling only at half a window would save system calls but
	// stalls on brokers that leave Nagle on (mosquitto by default): their
	// later PUBACKs wait for a TCP ACK the generator delays.
	window   int64
	low      int64
	inflight atomic.Int64
	waiting  atomic.Bool
	wake     chan struct{}
	sent     atomic.Uint64
	acked    atomic.Uint64
	lastSend atomic.Int64 // unix ns
	lastAck  atomic.Int64
	readDone chan struct{}
	closing  atomic.Bool
	once     sync.Once
	payload  []byte
}

func (r *run) connectPublishers(ctx context.Context) ([]*publisher, error) {
	cfg := r.cfg
	addr, _ := brokerAddr(cfg.Broker)
	return connectAll(ctx, cfg, cfg.Publishers, func(i int) (*publisher, error) {
		id := cfg.IDPrefix + itoa(i)
		c, err := dial(ctx, addr, id, expand(cfg.Username, id, i), cfg.Password, cfg.KeepAlive, cfg.ConnectTimeout)
		if err != nil {
			return nil, err
		}
		p := &publisher{idx: i, id: id, topic: expand(cfg.Topic, id, i), c: c,
			window: int64(cfg.Inflight), low: int64(cfg.Inflight - 1), wake: make(chan struct{}, 1),
			readDone: make(chan struct{})}
		if cfg.Count > 0 {
			p.quota = cfg.Count / cfg.Publishers
			if i < cfg.Count%cfg.Publishers {
				p.quota++
			}
		}
		go p.read(r)
		go c.keepAlive(cfg.KeepAlive/2, p.readDone)
		return p, nil
	})
}

// read takes PUBACKs until the connection closes.
func (p *publisher) read(r *run) {
	defer close(p.readDone)
	for {
		pk, err := p.c.rd.Next()
		if err != nil {
			if !p.closing.Load() {
				r.fail(err)
			}
			return
		}
		switch pk.Kind() {
		case mqtt311.TypePuback:
			if p.inflight.Add(-1) <= p.low && p.waiting.Load() {
				select {
				case p.wake <- struct{}{}:
				default:
				}
			}
			p.acked.Add(1)
			p.lastAck.Store(time.Now().UnixNano())
			progress.Add(1)
		case mqtt311.TypePingresp:
		default:
			r.fail(errUnexpected(p.id, pk.Kind()))
		}
	}
}

// publish sends until the quota is reached, r.stop closes or the
// connection is lost. When paced, each message is stamped with the time it
// was due, not the time it left, so a broker that holds the generator back
// is charged the wait (no coordinated omission).
func (p *publisher) publish(r *run) {
	cfg := r.cfg
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(cfg.Publishers) / cfg.Rate * float64(time.Second))
	}
	next := r.start.Add(interval * time.Duration(p.idx) / time.Duration(cfg.Publishers))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer p.flush()
	for seq := 0; p.quota == 0 || seq < p.quota; seq++ {
		select {
		case <-r.stop:
			return
		default:
		}
		var ts time.Time
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				if p.flush() != nil {
					return
				}
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-r.stop:
					return
				}
			}
			ts, next = next, next.Add(interval)
		} else {
			ts = time.Now()
		}
		if cfg.QoS == 1 && !p.acquire(r) {
			return
		}
		if p.write(cfg, seq, ts) != nil {
			return
		}
	}
}

// acquire takes a window slot. When the window is full it flushes and
// waits until the window has drained to half.
func (p *publisher) acquire(r *run) bool {
	if p.inflight.Load() < p.window {
		p.inflight.Add(1)
		return true
	}
	if p.flush() != nil {
		return false
	}
	p.waiting.Store(true)
	defer p.waiting.Store(false)
	for p.inflight.Load() > p.low {
		select {
		case <-p.wake:
		case <-r.stop:
			return false
		case <-p.readDone:
			return false
		}
	}
	p.inflight.Add(1)
	return true
}

func (p *publisher) write(cfg Config, seq int, ts time.Time) error {
	p.payload = appendPayload(p.payload[:0], stamp{pub: p.idx, seq: seq, usec: ts.UnixMicro()}, cfg.Size)
	c := p.c
	c.mu.Lock()
	c.scratch = mqtt311.AppendPublish(c.scratch[:0], p.topic, cfg.QoS, false, uint16(seq%65535+1), p.payload)
	_, err := c.w.Write(c.scratch)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	p.sent.Add(1)
	now := time.Now().UnixNano()
	p.lastSend.Store(now)
	if cfg.QoS == 0 {
		p.acked.Add(1)
		p.lastAck.Store(now)
	}
	return nil
}

func (p *publisher) flush() error {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.w.Flush()
}

func (p *publisher) close() {
	p.once.Do(func() {
		p.closing.Store(true)
		p.c.disconnect()
		<-p.readDone
	})
}

func sent(ps []*publisher) (n uint64) {
	for _, p := range ps {
		n += p.sent.Load()
	}
	return n
}

func acked(ps []*publisher) (n uint64) {
	for _, p := range ps {
		n += p.acked.Load()
	}
	return n
}
