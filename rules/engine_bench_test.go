package rules

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/event"
)

func mustCompile(tb testing.TB, yaml string) *RuleSet {
	tb.Helper()
	set, errs := Parse("bench.yaml", []byte(yaml), Known{})
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	return set
}

// BenchmarkTumblingAvg1000Keys is the design target: a 10-second tumbling
// average over 1,000 keys, 2 million readings/s per core or more, with no
// allocation per reading. Readings are 10 µs apart in event time (1,000
// sensors at 100 Hz), so each window holds 1,000 readings per key; what
// closing a window costs is BenchmarkWindowClose's.
func BenchmarkTumblingAvg1000Keys(b *testing.B) {
	set := mustCompile(b, `
rules:
  - name: avg
    match: {types: [env.reading]}
    window: {kind: tumbling, size: 10s}
    aggregates: {avg_temp: avg(data.temperature)}
    emit: {type: env.avg}
`)
	const keys = 1000
	evs := make([]event.Event, keys)
	for i := range evs {
		id := "sensor-" + strconv.Itoa(i)
		evs[i] = event.Event{ID: id, Source: "/gw/devices/" + id, Type: "env.reading", Subject: id,
			Data: []byte(fmt.Sprintf(`{"temperature":%d.5,"humidity":40}`, i%30))}
	}
	derived := runStream(b, set, evs, 10*time.Microsecond, keys) // the gateway's clock ticks once per round of keys
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
	if b.N > 20*keys*10000 && derived == 0 {
		b.Fatal("no window closed")
	}
}

// BenchmarkRulesIndexed1000 runs events through 1,000 threshold rules, each
// on its own event type, against the same events through the one rule that
// matches: with the index by type, the cost per event must stay close.
func BenchmarkRulesIndexed1000(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			var y strings.Builder
			y.WriteString("rules:\n")
			for i := range n {
				fmt.Fprintf(&y, "  - name: r%d\n    match: {types: [t.%d]}\n    threshold: {field: data.v, above: 8, clear_below: 7}\n    emit: {type: alarm.%d, clear_type: clear.%d}\n", i, i, i, i)
			}
			set := mustCompile(b, y.String())
			var now time.Time
			e := NewEngine(set, Options{Now: func() time.Time { return now }})
			ev := &event.Event{ID: "1", Source: "/d/1", Type: "t.0", Subject: "d1", Data: []byte(`{"v":5}`)}
			t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			emit := func(Derived) {}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ev.Time = t0.Add(time.Duration(i))
				now = ev.Time
				e.Process(ev, emit)
			}
		})
	}
}

// BenchmarkIdleRuleMemory reports the heap a compiled, idle rule costs in
// an engine (target: under 20 KB), for a mix of building blocks.
func BenchmarkIdleRuleMemory(b *testing.B) {
	kinds := []string{
		"window: {kind: tumbling, size: 10s}\n    aggregates: {m: avg(data.v), p: 'percentile(data.v, 95)'}\n    having: m > 1",
		"threshold: {field: data.v, above: 8, clear_below: 7}",
		"absence: {start: {types: [a]}, end: {types: [b]}, within: 8h}",
		"sequence: {steps: [{types: [a], filter: data.v > 1}, {types: [b]}], within: 10m}",
		"change: {field: data.v, deadband: 0.5}",
	}
	const n = 1000
	var y strings.Builder
	y.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - name: r%d\n    filter: data.v != nil\n    %s\n    emit: {type: out.%d}\n", i, kinds[i%len(kinds)], i)
	}
	src := y.String()
	b.ReportAllocs()
	var perRule float64
	for range b.N {
		before := heapInUse()
		set := mustCompile(b, src)
		e := NewEngine(set, Options{})
		perRule = float64(heapInUse()-before) / n
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perRule, "bytes/rule")
}

// BenchmarkOpenKeyMemory reports the heap one key with an open tumbling
// window costs.
func BenchmarkOpenKeyMemory(b *testing.B) {
	set := mustCompile(b, "rules:\n  - name: avg\n    window: {kind: tumbling, size: 10s}\n    aggregates: {m: avg(data.v)}\n    emit: {type: out}\n")
	const keys = 100_000
	evs := make([]event.Event, keys)
	for i := range evs {
		evs[i] = event.Event{ID: "x", Source: "/s", Type: "in", Subject: "key-" + strconv.Itoa(i), Data: []byte(`{"v":1}`)}
	}
	var perKey float64
	for range b.N {
		before := heapInUse()
		e := NewEngine(set, Options{})
		for i := range evs {
			evs[i].Time = time.Unix(int64(i), 0)
			e.Process(&evs[i], func(Derived) {})
		}
		perKey = float64(heapInUse()-before) / keys
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perKey, "bytes/key")
}

// BenchmarkAbsence100kKeys sets 100,000 absence timers, then moves the
// watermark past all their deadlines at once: the time that takes is the
// worst lateness of a timer, in processing time, beyond the clock's tick.
func BenchmarkAbsence100kKeys(b *testing.B) {
	set := mustCompile(b, "rules:\n  - name: shift\n    absence: {start: {types: [start]}, end: {types: [end]}, within: 8h}\n    emit: {type: late.shift}\n")
	const keys = 100_000
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]event.Event, keys)
	for i := range evs {
		evs[i] = event.Event{ID: "s" + strconv.Itoa(i), Source: "/s", Type: "start", Subject: "driver-" + strconv.Itoa(i),
			Time: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	var worst time.Duration
	fired := 0
	for range b.N {
		e := NewEngine(set, Options{})
		for i := range evs {
			e.Process(&evs[i], func(Derived) {})
		}
		start := time.Now()
		e.AdvanceTo(t0.Add(9*time.Hour), func(Derived) { fired++ })
		worst = max(worst, time.Since(start))
	}
	if fired != keys*b.N {
		b.Fatalf("%d absences fired, want %d", fired, keys*b.N)
	}
	b.ReportMetric(float64(worst.Milliseconds()), "ms-all-due")
	b.ReportMetric(float64(worst.Nanoseconds())/keys, "ns/timer")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkSnapshot100kAbsences checkpoints an engine holding 100,000
// pending absences (each with the event that started it) and restores the
// checkpoint into a new engine: the snapshot is taken under the engine's
// lock, so its time is how long events wait once per checkpoint interval.
func BenchmarkSnapshot100kAbsences(b *testing.B) {
	set := mustCompile(b, "rules:\n  - name: shift\n    absence: {start: {types: [start]}, end: {types: [end]}, within: 8h}\n    emit: {type: late.shift}\n")
	const keys = 100_000
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	e := NewEngine(set, Options{})
	for i := range keys {
		e.Process(&event.Event{ID: "s" + strconv.Itoa(i), Source: "/s", Type: "start", Subject: "driver-" + strconv.Itoa(i),
			Time: t0.Add(time.Duration(i) * time.Millisecond), Data: []byte(`{"driver":"d"}`)}, func(Derived) {})
	}
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	var snapshot, restore time.Duration
	for range b.N {
		start := time.Now()
		snap, _ := e.Snapshot()
		snapshot += time.Since(start)
		size = len(snap)
		start = time.Now()
		if n, err := NewEngine(set, Options{}).Restore(snap); err != nil || n != 1 {
			b.Fatalf("restore: %d rules, %v", n, err)
		}
		restore += time.Since(start)
	}
	b.ReportMetric(float64(size)/keys, "B/key")
	b.ReportMetric(float64(snapshot.Milliseconds())/float64(b.N), "ms-snapshot")
	b.ReportMetric(float64(restore.Milliseconds())/float64(b.N), "ms-restore")
}

// BenchmarkFiftyRulesOneStream: the 50 rules of the side-by-side benchmark
// (configs/bench/rules.yaml: thresholds, changes, rates, spikes and
// windows, all reading data.v) on readings of 100 devices whose v moves
// from 20.0 to 29.9 and back as the load generator's does, so that the
// under-thresholds start and clear and the windows close.
func BenchmarkFiftyRulesOneStream(b *testing.B) {
	spec, err := os.ReadFile("../configs/bench/rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	set := mustCompile(b, string(spec))
	const keys, steps = 100, 100
	evs := make([]event.Event, keys*steps) // device i's reading s is evs[s*keys+i]
	for s := range steps {
		for i := range keys {
			id := "bench-" + strconv.Itoa(i)
			evs[s*keys+i] = event.Event{ID: id + "-" + strconv.Itoa(s), Source: "/gw/devices/" + id, Type: "bench.reading", Subject: id,
				Data: []byte(fmt.Sprintf(`{"p":%d,"s":%d,"t":1764000000123456,"v":%d.%d,"x":"xxxxxx"}`, i, s, 20+s/10, s%10))}
		}
	}
	derived := runStream(b, set, evs, 100*time.Microsecond, 0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(derived)/float64(b.N), "derived/event")
}

// runStream processes b.N events through an engine on set, cycling through
// evs, each step later in event time than the one before; every tick
// events (0: never) the engine's clock advances. It returns the number of
// derived events.
func runStream(b *testing.B, set *RuleSet, evs []event.Event, step time.Duration, tick int) int {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var now time.Time
	e := NewEngine(set, Options{Now: func() time.Time { return now }})
	derived := 0
	emit := func(Derived) { derived++ }
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := &evs[i%len(evs)]
		ev.Time = t0.Add(time.Duration(i) * step)
		now = ev.Time
		e.Process(ev, emit)
		if tick > 0 && i%tick == tick-1 {
			e.Advance(emit)
		}
	}
	return derived
}
