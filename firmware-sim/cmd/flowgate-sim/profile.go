package main

import (
	"os"
	"runtime/pprof"
	"sync"
	"time"

	sim "github.com/flowgate/flowgate/firmware-sim"
)

// profiler writes the -cpuprofile and -memprofile of a devices run: the
// CPU profile covers the whole run, the heap profile is taken once half
// of the planned messages are sent (memory in use is near its peak
// then), or at the end of a run that never gets there.
type profiler struct {
	cpu     *os.File
	memPath string
	once    sync.Once
	err     error
	stop    chan struct{}
	done    chan struct{}
}

func startProfiler(cpuPath, memPath string, r *sim.Runner, planned int) (*profiler, error) {
	p := &profiler{memPath: memPath, stop: make(chan struct{}), done: make(chan struct{})}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		p.cpu = f
	}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for r.Stats.Sent.Load() < int64(planned/2) {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
		p.writeHeap()
	}()
	return p, nil
}

func (p *profiler) writeHeap() {
	p.once.Do(func() {
		if p.memPath == "" {
			return
		}
		f, err := os.Create(p.memPath)
		if err != nil {
			p.err = err
			return
		}
		if p.err = pprof.Lookup("heap").WriteTo(f, 0); p.err == nil {
			p.err = f.Close()
		} else {
			f.Close()
		}
	})
}

// finish stops the CPU profile and writes the heap profile if it is not
// written yet.
func (p *profiler) finish() error {
	close(p.stop)
	<-p.done
	p.writeHeap()
	if p.cpu != nil {
		pprof.StopCPUProfile()
		if err := p.cpu.Close(); err != nil && p.err == nil {
			p.err = err
		}
	}
	return p.err
}
