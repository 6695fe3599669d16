package bench

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// goBench is the output of `go test -bench`: for each benchmark (its name
// without the -GOMAXPROCS suffix), each unit's value ("ns/op",
// "events/s"…). A benchmark run more than once keeps its last line.
type goBench map[string]map[string]float64

// parseGoBench reads `go test -bench` output; lines that are not results
// are skipped.
func parseGoBench(r io.Reader) (goBench, error) {
	out := goBench{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		units := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				units = nil
				break
			}
			units[f[i+1]] = v
		}
		if units != nil {
			out[name] = units
		}
	}
	return out, sc.Err()
}

// value is a benchmark's figure in unit, if the output has it.
func (g goBench) value(name, unit string) (float64, bool) {
	v, ok := g[name][unit]
	return v, ok
}
