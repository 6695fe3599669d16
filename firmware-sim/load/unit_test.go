package load

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStampRoundTrip(t *testing.T) {
	for _, size := range []int{minPayload, 64, 200} {
		in := stamp{pub: 999, seq: 9999999, usec: 1764000000123456}
		p := appendPayload(nil, in, size)
		if len(p) != size {
			t.Errorf("size %d: payload is %d bytes: %s", size, len(p), p)
		}
		out, ok := parseStamp(p)
		if !ok || out != in {
			t.Errorf("size %d: parsed %+v %v from %s", size, out, ok, p)
		}
	}
	// Wrapped in a CloudEvent, as Flowgate forwards it.
	ev := []byte(`{"specversion":"1.0","id":"x","type":"bench.reading","subject":"bench-3","data":` +
		string(appendPayload(nil, stamp{3, 17, 42}, 64)) + `}`)
	if s, ok := parseStamp(ev); !ok || s != (stamp{3, 17, 42}) {
		t.Errorf("in a CloudEvent: %+v %v", s, ok)
	}
	for _, bad := range []string{``, `{"p":1,"s":2}`, `{"p":-1,"s":2,"t":3}`, `{"p":1,"s":2,"t":99999999999999999999}`} {
		if s, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("%s parsed as %+v", bad, s)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for v := int64(1); v <= 100000; v++ { // 1 µs to 100 ms, uniformly
		h.add(v)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		got := float64(h.quantile(q).Microseconds())
		want := q * 100000
		if math.Abs(got-want)/want > 0.02 {
			t.Errorf("q%v = %v µs, want %v ±2%%", q, got, want)
		}
	}
	if h.quantile(1) != 100*time.Millisecond {
		t.Errorf("max %v", h.quantile(1))
	}
	var small histogram // 1 to 100 µs, where buckets are exact: nearest ranks
	for v := int64(1); v <= 100; v++ {
		small.add(v)
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := small.quantile(q); got != want*time.Microsecond {
			t.Errorf("of 1…100 µs, q%v = %v, want %v µs", q, got, want)
		}
	}
	for v := int64(0); v < 1<<40; v = v*3 + 1 { // every bucket's range holds its value
		lo, w := bucketRange(bucketOf(v))
		if v < lo || v >= lo+w {
			t.Errorf("%d in bucket [%d, %d)", v, lo, lo+w)
		}
	}
}

func TestProcParsers(t *testing.T) {
	status := []byte("Name:\tmosquitto\nVmPeak:\t  9000 kB\nVmRSS:\t    6400 kB\nRssAnon:\t 1 kB\n")
	if n, err := parseVmRSS(status); err != nil || n != 6400<<10 {
		t.Errorf("VmRSS %d %v", n, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); err == nil {
		t.Error("no VmRSS accepted")
	}
	if n, err := parseStatusKB(status, "RssAnon"); err != nil || n != 1<<10 {
		t.Errorf("RssAnon %d %v", n, err)
	}
	if _, err := parseStatusKB(status, "RssFile"); err == nil || !strings.Contains(err.Error(), "no RssFile") {
		t.Errorf("no RssFile: %v", err)
	}
	if n, err := ReadStatus(os.Getpid(), "RssFile"); err != nil || n <= 0 {
		t.Errorf("this process's RssFile %d %v", n, err)
	}
	stat := []byte("42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 5 1000 50")
	if n, err := parseStatTicks(stat); err != nil || n != 281 {
		t.Errorf("ticks %d %v", n, err)
	}
}
