package gateway

import (
	"context"
	"sync"
	"time"
)

// startRulesClock moves the rules engine's clock on every rules.tick:
// windows close and absences fire as event time passes, even when no event
// comes. The returned function makes it tick once more and stop, and waits
// for that; it is safe to call twice. It runs with no rules too: a reload
// may bring some.
func (g *Gateway) startRulesClock(wg *sync.WaitGroup) context.CancelFunc {
	stop := make(chan struct{})
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		t := time.NewTicker(g.cfg.Rules.Tick)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				g.pipe.advance()
			case <-stop:
				g.pipe.advance()
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
