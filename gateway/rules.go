package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rulesState names the rules engine's checkpoint in the store.
const rulesState = "rules"

// quietWait is how long a checkpoint looks for a moment with no publish
// between the rules and the outbox before it is postponed to the next
// interval.
const quietWait = 500 * time.Millisecond

// startRulesClock moves the rules engine's clock on every rules.tick:
// windows close and absences fire as event time passes, even when no event
// comes. Every rules.checkpoint_interval it saves the engine's state. The
// returned function makes it tick once more, save the state and stop, and
// waits for that; it is safe to call twice. It runs with no rules too: a
// reload may bring some.
func (g *Gateway) startRulesClock(wg *sync.WaitGroup) context.CancelFunc {
	stop := make(chan struct{})
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		t := time.NewTicker(g.cfg.Rules.Tick)
		defer t.Stop()
		var save <-chan time.Time
		if every := g.cfg.Rules.CheckpointInterval; every > 0 {
			ck := time.NewTicker(every)
			defer ck.Stop()
			save = ck.C
		}
		for {
			select {
			case <-t.C:
				g.pipe.advance()
			case <-save:
				g.checkpoint()
			case <-stop:
				g.pipe.advance()
				if save != nil {
					g.checkpoint()
				}
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}
}

// restoreRules gives the rules engine the state of its last checkpoint.
// It runs once the store is open and before any event comes in. A
// checkpoint that cannot be read is logged, and the rules start empty.
func (g *Gateway) restoreRules() {
	if g.cfg.Rules.CheckpointInterval <= 0 {
		return
	}
	b, err := g.up.LoadState(rulesState)
	switch {
	case err != nil:
		g.log.Error("rules state cannot be read; the rules start empty", "err", err)
		return
	case b == nil:
		return // a new store: nothing saved yet
	}
	n, err := g.pipe.flow.Engine().Restore(b)
	if err != nil {
		g.log.Error("rules checkpoint is damaged; the rules start empty", "err", err, "bytes", len(b))
		return
	}
	g.ck.saved = g.pipe.flow.Engine().Version()
	g.log.Info("rules state restored from the last checkpoint", "rules", n, "bytes", len(b))
}

// checkpoint saves the rules engine's state if it changed since the last
// save. The state is taken while no device publish is between the engine
// and the outbox, so that a checkpoint never records as done what the
// outbox does not hold yet.
func (g *Gateway) checkpoint() {
	e := g.pipe.flow.Engine()
	if e.Version() == g.ck.saved {
		return
	}
	var b []byte
	var v uint64
	if !g.pipe.quiet(quietWait, func() { b, v = e.Snapshot() }) {
		g.ck.m.WithLabelValues("postponed").Inc()
		g.log.Debug("rules checkpoint postponed: publishes kept going (a full outbox?)")
		return
	}
	start := time.Now()
	if err := g.up.SaveState(rulesState, b); err != nil {
		g.ck.m.WithLabelValues("failed").Inc()
		g.log.Error("rules checkpoint not saved", "err", err)
		return
	}
	g.ck.saved = v
	g.ck.m.WithLabelValues("saved").Inc()
	g.ck.bytes.Set(float64(len(b)))
	g.log.Debug("rules checkpoint saved", "bytes", len(b), "took", time.Since(start))
}

// checkpoints is the checkpointer's own account.
type checkpoints struct {
	saved uint64 // the engine version last saved
	m     *prometheus.CounterVec
	bytes prometheus.Gauge
}

func newCheckpoints(reg *prometheus.Registry) checkpoints {
	c := checkpoints{
		m: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowgate_rules_checkpoints_total",
			Help: "Checkpoints of the rules' state, by result (saved, failed, postponed: publishes kept going)."}, []string{"result"}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowgate_rules_checkpoint_bytes",
			Help: "The size of the last checkpoint of the rules' state."}),
	}
	c.m.WithLabelValues("saved")
	c.m.WithLabelValues("failed")
	c.m.WithLabelValues("postponed")
	reg.MustRegister(c.m, c.bytes)
	return c
}
