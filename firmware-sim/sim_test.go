package sim

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// The same seed gives the same readings; another seed gives others; every
// reading is a JSON object with the fields the demo's rules use.
func TestEnvironmentIsDeterministic(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	run := func(seed uint64) [][]byte {
		env := newEnvironment(rand.New(rand.NewPCG(seed, 0)))
		var out [][]byte
		for range 50 {
			out = append(out, env.next(now))
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	excursions := 0
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("reading %d differs for the same seed: %s vs %s", i, a[i], b[i])
		}
		var r struct {
			Temperature *float64 `json:"temperature"`
			Humidity    *float64 `json:"humidity"`
			TS          int64    `json:"ts"`
		}
		if err := json.Unmarshal(a[i], &r); err != nil || r.Temperature == nil || r.Humidity == nil || r.TS != now.UnixMilli() {
			t.Fatalf("reading %s: %v", a[i], err)
		}
		if *r.Temperature > 25 {
			excursions++
		}
	}
	if bytes.Equal(a[0], c[0]) && bytes.Equal(a[1], c[1]) {
		t.Error("different seeds gave the same readings")
	}
	if excursions == 0 || excursions == len(a) {
		t.Errorf("%d of %d readings are excursions; want some, not all", excursions, len(a))
	}
}
