package load

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/firmware-sim/internal/mqtt311"
)

// subscriber is one subscribing connection. Its goroutine reads, acks at
// QoS 1 and records each message; what it records is read only after it
// stopped.
type subscriber struct {
	id   string
	c    *conn
	pubs int // publishers in the run: stamps naming another are foreign

	hist      histogram
	steady    histogram  // of the messages sent from steadyAt on
	steadyAt  int64      // unix µs: the end of the warmup; 0 without one
	seen      [][]uint64 // per publisher, a bit per sequence number
	received  atomic.Uint64
	dups      uint64
	unstamped uint64
	lastRecv  atomic.Int64 // unix ns of the last distinct message

	done    chan struct{} // closed by recv when it returns
	started atomic.Bool   // recv runs: close waits for done
	closing atomic.Bool
	once    sync.Once
}

// maxSeq bounds the sequence numbers a subscriber records (32 MiB of bits
// per publisher at most): a larger one is not a stamp of this run.
const maxSeq = 1 << 28

func (r *run) connectSubscribers(ctx context.Context) ([]*subscriber, error) {
	cfg := r.cfg
	addr, _ := brokerAddr(cfg.SubBroker)
	return connectAll(ctx, cfg, cfg.Subscribers, func(i int) (*subscriber, error) {
		id := cfg.SubIDPrefix + itoa(i)
		c, err := dial(ctx, addr, id, expand(cfg.SubUsername, id, i), cfg.SubPassword, cfg.KeepAlive, cfg.ConnectTimeout)
		if err != nil {
			return nil, err
		}
		if err := subscribe(c, cfg.SubTopic, cfg.SubQoS, cfg.ConnectTimeout); err != nil {
			c.disconnect()
			return nil, fmt.Errorf("load: %s: %w", id, err)
		}
		return &subscriber{id: id, c: c, pubs: cfg.Publishers, seen: make([][]uint64, cfg.Publishers),
			done: make(chan struct{})}, nil
	})
}

// subscribe sends SUBSCRIBE and waits for a SUBACK that grants it.
func subscribe(c *conn, filter string, qos byte, timeout time.Duration) error {
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	c.scratch = mqtt311.AppendSubscribe(c.scratch[:0], 1, filter, qos)
	if _, err := c.nc.Write(c.scratch); err != nil {
		return err
	}
	pk, err := c.rd.Next()
	if err != nil {
		return err
	}
	if pk.Kind() != mqtt311.TypeSuback || len(pk.Body) != 3 {
		return fmt.Errorf("expected SUBACK, got packet type %d", pk.Kind())
	}
	if pk.Body[2] > 1 {
		return fmt.Errorf("subscription to %q refused (SUBACK code %#x)", filter, pk.Body[2])
	}
	return nil
}

// recvStart starts the subscriber's goroutine.
func (s *subscriber) recvStart(r *run) {
	if r.cfg.Warmup > 0 {
		s.steadyAt = r.start.Add(r.cfg.Warmup).UnixMicro()
	}
	s.started.Store(true)
	go s.recv(r)
	go s.c.keepAlive(r.cfg.KeepAlive/2, s.done)
}

func (s *subscriber) recv(r *run) {
	defer close(s.done)
	for {
		pk, err := s.c.rd.Next()
		if err != nil {
			if !s.closing.Load() {
				r.fail(err)
			}
			return
		}
		switch pk.Kind() {
		case mqtt311.TypePublish:
			pb, err := mqtt311.ParsePublish(pk)
			if err != nil {
				r.fail(fmt.Errorf("load: %s: %w", s.id, err))
				return
			}
			if pb.QoS == 1 && s.ack(pb.ID) != nil {
				return
			}
			s.record(pb.Payload)
		case mqtt311.TypePingresp:
		default:
			r.fail(errUnexpected(s.id, pk.Kind()))
		}
	}
}

// ack queues a PUBACK, flushing once nothing more is waiting to be read,
// so that a burst of messages is acknowledged in one write.
func (s *subscriber) ack(id uint16) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scratch = mqtt311.AppendPuback(c.scratch[:0], id)
	if _, err := c.w.Write(c.scratch); err != nil {
		return err
	}
	if c.rd.Buffered() == 0 {
		return c.w.Flush()
	}
	return nil
}

func (s *subscriber) record(payload []byte) {
	now := time.Now()
	st, ok := parseStamp(payload)
	if !ok || st.pub >= s.pubs || st.seq >= maxSeq {
		s.unstamped++
		return
	}
	bits := s.seen[st.pub]
	w := st.seq / 64
	if w >= len(bits) {
		bits = append(bits, make([]uint64, w+1-len(bits)+len(bits)/2)...)
		s.seen[st.pub] = bits
	}
	mask := uint64(1) << (st.seq % 64)
	if bits[w]&mask != 0 {
		s.dups++
		return
	}
	bits[w] |= mask
	s.hist.add(now.UnixMicro() - st.usec)
	if s.steadyAt > 0 && st.usec >= s.steadyAt {
		s.steady.add(now.UnixMicro() - st.usec)
	}
	s.received.Add(1)
	s.lastRecv.Store(now.UnixNano())
	progress.Add(1)
}

func (s *subscriber) close() {
	s.once.Do(func() {
		s.closing.Store(true)
		s.c.disconnect()
		if s.started.Load() { // a run that failed to start never started recv
			<-s.done
		}
	})
}

func received(ss []*subscriber) (n uint64) {
	for _, s := range ss {
		n += s.received.Load()
	}
	return n
}

// collect fills res from the stopped connections.
func (r *run) collect(res *Result, pubs []*publisher, subs []*subscriber) {
	var lastSend, lastAck, lastRecv int64
	for _, p := range pubs {
		res.Sent += p.sent.Load()
		res.Acked += p.acked.Load()
		lastSend, lastAck = max(lastSend, p.lastSend.Load()), max(lastAck, p.lastAck.Load())
	}
	var h, steady histogram
	for _, s := range subs {
		steady.merge(&s.steady)
		res.Received += s.received.Load()
		res.Duplicates += s.dups
		res.Unstamped += s.unstamped
		lastRecv = max(lastRecv, s.lastRecv.Load())
		h.merge(&s.hist)
	}
	res.SendTime, res.AckTime, res.RecvTime = r.since(lastSend), r.since(lastAck), r.since(lastRecv)
	res.Expected = res.Sent * uint64(len(subs))
	if res.Received < res.Expected {
		res.Lost = res.Expected - res.Received
	}
	res.P50, res.P99, res.P999, res.Max = h.quantile(0.50), h.quantile(0.99), h.quantile(0.999), h.quantile(1)
	if r.cfg.Warmup > 0 {
		res.Steady = Latency{steady.quantile(0.50), steady.quantile(0.99), steady.quantile(0.999), steady.quantile(1), steady.n}
	}
	r.errMu.Lock()
	res.Errors = append([]string(nil), r.errs...)
	r.errMu.Unlock()
}

func itoa(i int) string { return strconv.Itoa(i) }

func errUnexpected(id string, kind byte) error {
	return fmt.Errorf("load: %s: unexpected packet type %d", id, kind)
}
