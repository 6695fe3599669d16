// Package load is a load generator for any MQTT broker: N publisher
// connections and M subscribers, QoS 0 or 1, a payload size, a total rate
// or as fast as the broker takes it, bounded by a count and a duration. It
// reports the messages per second sent, acknowledged and received, the
// end-to-end latency from a timestamp in each payload, the messages lost
// and duplicated, and, given the broker's PID, its memory and CPU.
//
// It speaks a minimal MQTT 3.1.1 of its own (CONNECT, PUBLISH, PUBACK,
// SUBSCRIBE, PINGREQ, DISCONNECT) with buffered writes and no allocation
// per message, so that on a small machine it takes as little CPU from the
// broker under test as it can; Mosquitto and Flowgate are measured by the
// same code in the same way. `flowgate-sim load` is its command line; the
// bench package runs it side by side against both brokers.
package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is one load run. The zero value is not valid: use Defaults and
// change what you need.
type Config struct {
	Broker    string // where publishers connect: host:port or mqtt://host:port
	SubBroker string // where subscribers connect; empty: Broker

	Publishers  int
	Subscribers int
	QoS         byte // of the publishes, 0 or 1
	SubQoS      byte // of the subscriptions, 0 or 1
	Size        int  // payload bytes (at least the stamp's, see stamp.go)
	Rate        float64
	Count       int           // messages in all; 0: until Duration
	Duration    time.Duration // 0: until Count
	Inflight    int           // QoS 1 publishes awaiting PUBACK per publisher

	// Warmup: messages sent during the first Warmup of the run are sent,
	// received and counted like the others, but only those sent after it
	// make the steady latency figures (Result.Steady).
	Warmup time.Duration

	// Topic is each publisher's topic; {id} is its client id, {i} its
	// index. SubTopic is the subscribers' filter.
	Topic    string
	SubTopic string

	// Client ids are IDPrefix + index (publishers) and SubIDPrefix + index.
	IDPrefix    string
	SubIDPrefix string
	// Username and password of the publishers; {id} in Username is the
	// client id (Flowgate devices log in as their id). Empty: none.
	Username, Password       string
	SubUsername, SubPassword string

	PID         int           // the broker's process id: sample its RSS and CPU; 0: none
	SampleEvery time.Duration // how often

	// Drain is how long the run waits, after the last publish, for acks
	// and deliveries that still make progress; DrainMax bounds the wait.
	Drain, DrainMax time.Duration
	// ConnectTimeout bounds each connection's CONNECT and SUBSCRIBE;
	// ConnectParallel is how many connect at once.
	ConnectTimeout  time.Duration
	ConnectParallel int
	KeepAlive       time.Duration
}

// Defaults is a small run: 10 publishers, 1 subscriber, QoS 1, 64-byte
// payloads, 10 seconds as fast as possible.
func Defaults() Config {
	return Config{Broker: "127.0.0.1:1883", Publishers: 10, Subscribers: 1, QoS: 1, SubQoS: 1, Size: 64,
		Duration: 10 * time.Second, Inflight: 10, Topic: "devices/{id}/env", SubTopic: "devices/+/env",
		IDPrefix: "load-", SubIDPrefix: "load-sub-", SampleEvery: 100 * time.Millisecond,
		Drain: 5 * time.Second, DrainMax: 5 * time.Minute, ConnectTimeout: 10 * time.Second,
		ConnectParallel: 32, KeepAlive: 60 * time.Second}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Publishers < 1 || c.Publishers > 1<<20:
		return errors.New("load: publishers must be 1 to 1048576")
	case c.Subscribers < 0 || c.Subscribers > 1000:
		return errors.New("load: subscribers must be 0 to 1000")
	case c.QoS > 1 || c.SubQoS > 1:
		return errors.New("load: qos must be 0 or 1")
	case c.Size < minPayload || c.Size > 1<<20:
		return fmt.Errorf("load: size must be %d bytes to 1 MiB", minPayload)
	case c.Rate < 0:
		return errors.New("load: rate must not be negative")
	case c.Count < 0 || (c.Count == 0 && c.Duration <= 0):
		return errors.New("load: give a count, a duration or both")
	case c.Duration < 0:
		return errors.New("load: duration must not be negative")
	case c.Warmup < 0 || (c.Warmup > 0 && c.Duration > 0 && c.Warmup >= c.Duration):
		return errors.New("load: warmup must be at least 0 and shorter than the duration")
	case c.QoS == 1 && (c.Inflight < 1 || c.Inflight > 65535):
		return errors.New("load: inflight must be 1 to 65535")
	case c.Topic == "" || strings.ContainsAny(c.Topic, "+#"):
		return errors.New("load: topic must be a topic name without wildcards")
	case c.Subscribers > 0 && c.SubTopic == "":
		return errors.New("load: subscribers need a sub-topic")
	case c.SampleEvery <= 0 || c.Drain <= 0 || c.DrainMax < c.Drain || c.ConnectTimeout <= 0 || c.ConnectParallel < 1:
		return errors.New("load: sample, drain, drain-max, connect timeout and parallelism must be positive")
	case c.KeepAlive < time.Second || c.KeepAlive > 65535*time.Second:
		return errors.New("load: keep-alive must be 1s to 65535s")
	}
	if _, err := brokerAddr(c.Broker); err != nil {
		return err
	}
	if c.SubBroker != "" {
		if _, err := brokerAddr(c.SubBroker); err != nil {
			return err
		}
	}
	return nil
}

// Result is what a run measured.
type Result struct {
	Config Config

	Sent       uint64        // publishes written
	Acked      uint64        // PUBACKs received (QoS 0: = Sent)
	SendTime   time.Duration // from the start to the last publish written
	AckTime    time.Duration // from the start to the last PUBACK
	Received   uint64        // distinct messages received, all subscribers together
	Expected   uint64        // Sent × subscribers
	Lost       uint64        // Expected − Received
	Duplicates uint64        // copies of a message a subscriber already had
	Unstamped  uint64        // messages on the filter without a stamp (not counted as received)
	RecvTime   time.Duration // from the start to the last distinct message received

	P50, P99, P999, Max time.Duration // publish (stamp) to receipt, first copies
	// Steady is the same latency of the messages sent after Config.Warmup;
	// zero without a warmup.
	Steady Latency

	Broker   *ProcStats    // nil without a PID
	LoadCPU  time.Duration // user + system time of this process during the run
	Errors   []string      // connections lost, at most 10
	Canceled bool          // the context ended the run early
}

// SendRate, AckRate and RecvRate are messages per second over the time to
// the last one (RecvRate counts every subscriber's copies).
func (r *Result) SendRate() float64 { return perSecond(r.Sent, r.SendTime) }
func (r *Result) AckRate() float64  { return perSecond(r.Acked, r.AckTime) }
func (r *Result) RecvRate() float64 { return perSecond(r.Received, r.RecvTime) }

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Latency is a set of latency percentiles.
type Latency struct {
	P50, P99, P999, Max time.Duration
	Count               uint64 // messages measured
}

// run is the shared state of one run.
type run struct {
	cfg   Config
	start time.Time
	stop  chan struct{} // closed when publishing must end (duration or ctx)

	errMu sync.Mutex
	errs  []string
}

func (r *run) fail(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, err.Error())
	}
}

// since is how long after the start t is, at least a microsecond.
func (r *run) since(t int64) time.Duration {
	return max(time.Duration(t-r.start.UnixNano()), time.Microsecond)
}

// Run connects every subscriber, then every publisher, publishes, waits
// for what is still on its way and reports. It returns an error only when
// the run could not start (a connection refused); connections lost during
// the run are in Result.Errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SubBroker == "" {
		cfg.SubBroker = cfg.Broker
	}
	r := &run{cfg: cfg, stop: make(chan struct{})}
	subs, err := r.connectSubscribers(ctx)
	if err != nil {
		return nil, err
	}
	defer closeAll(subs)
	pubs, err := r.connectPublishers(ctx)
	if err != nil {
		return nil, err
	}
	defer closeAll(pubs)

	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	procDone := make(chan ProcStats, 1)
	if cfg.PID > 0 {
		go func() {
			st, err := sampleProc(sampleCtx, cfg.PID, cfg.SampleEvery)
			if err != nil {
				r.fail(err)
			}
			procDone <- st
		}()
	}

	r.start = time.Now()
	var wg sync.WaitGroup
	for _, s := range subs {
		s.recvStart(r)
	}
	for _, p := range pubs {
		wg.Go(func() { p.publish(r) })
	}
	timeUp := r.watchStop(ctx)
	wg.Wait()
	timeUp()

	res := &Result{Config: cfg, Canceled: ctx.Err() != nil}
	r.waitFor(ctx, func() bool { return acked(pubs) == sent(pubs) })
	r.waitFor(ctx, func() bool { return received(subs) == sent(pubs)*uint64(len(subs)) })
	stopSampling()
	if cfg.PID > 0 {
		st := <-procDone
		res.Broker = &st
	}
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	res.LoadCPU = time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond

	closeAll(pubs)
	closeAll(subs)
	r.collect(res, pubs, subs)
	return res, nil
}

// watchStop closes r.stop when the duration passes or ctx ends; the
// returned function stops watching (and closes r.stop if still open).
func (r *run) watchStop(ctx context.Context) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer close(r.stop)
		var timer <-chan time.Time
		if r.cfg.Duration > 0 {
			t := time.NewTimer(r.cfg.Duration)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-timer:
		case <-ctx.Done():
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// waitFor polls cond every 10 ms while it is false and the run makes
// progress: it gives up after Drain without any new ack or message, after
// DrainMax in all, or when ctx ends.
func (r *run) waitFor(ctx context.Context, cond func() bool) {
	deadline := time.Now().Add(r.cfg.DrainMax)
	last, lastProgress := progress.Load(), time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		now := time.Now()
		if p := progress.Load(); p != last {
			last, lastProgress = p, now
		}
		if now.Sub(lastProgress) > r.cfg.Drain || now.After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// progress counts acks and messages received in every run of this
// process; waitFor only looks at whether it moves.
var progress atomic.Uint64

type closer interface{ close() }

func closeAll[T closer](list []T) {
	for _, c := range list {
		c.close()
	}
}

// expand replaces {id} and {i} in a template.
func expand(tmpl, id string, i int) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	return strings.NewReplacer("{id}", id, "{i}", strconv.Itoa(i)).Replace(tmpl)
}

// connectAll runs connect for 0..n-1, at most ConnectParallel at once, and
// returns the first error after closing whatever did connect.
func connectAll[T closer](ctx context.Context, cfg Config, n int, connect func(i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	ok := make([]bool, n)
	errs := make([]error, n)
	sem := make(chan struct{}, cfg.ConnectParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = connect(i)
			ok[i] = errs[i] == nil
		})
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		for i, c := range out {
			if ok[i] {
				c.close()
			}
		}
		return nil, firstErr(errs, ctx.Err())
	}
	return out, nil
}

func firstErr(errs []error, last error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return last
}
