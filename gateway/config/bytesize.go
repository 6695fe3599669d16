package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes, written in a config as a plain number or
// with a unit: "512MiB", "1GiB", "64kB", "2GB". Binary units (KiB, MiB,
// GiB, TiB) are powers of 1024, decimal ones (kB, MB, GB, TB) of 1000.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{ // longest suffixes first, so "MiB" is not read as "B"
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || s == "" || math.IsNaN(n) || math.IsInf(n, 0):
		return fmt.Errorf("%q is not a size: want bytes, or a number with a unit such as 512MiB or 1GB", text)
	case n < 0:
		return fmt.Errorf("%q is negative", text)
	case n*float64(mult) >= math.MaxInt64:
		return fmt.Errorf("%q is too large", text)
	}
	*b = ByteSize(n * float64(mult))
	return nil
}

// String writes the size in the largest binary unit that divides it.
func (b ByteSize) String() string {
	for i := 3; i >= 0; i-- {
		u := byteUnits[i]
		if b != 0 && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
