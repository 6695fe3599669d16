package devices

import (
	"math"
	"slices"
	"strings"
)

// conversion turns a device's value into the canonical unit of its
// quantity: canonical = (value + pre) * mul.
type conversion struct {
	canon string // the canonical unit the result is in
	pre   float64
	mul   float64
}

// units is the explicit table of the units a profile may name, each with
// the canonical unit it converts to. The canonical units are those of the
// canonical fields: °C, %, hPa, m, m/s and degrees.
var units = map[string]conversion{
	// temperature → degC
	"degC": {"degC", 0, 1},
	"°C":   {"degC", 0, 1},
	"degF": {"degC", -32, 5.0 / 9.0},
	"°F":   {"degC", -32, 5.0 / 9.0},
	"K":    {"degC", -273.15, 1},
	// relative humidity, battery and other ratios → %
	"%":        {"%", 0, 1},
	"%RH":      {"%", 0, 1},
	"fraction": {"%", 0, 100}, // 0..1
	// pressure → hPa
	"hPa":  {"hPa", 0, 1},
	"mbar": {"hPa", 0, 1},
	"Pa":   {"hPa", 0, 0.01},
	"kPa":  {"hPa", 0, 10},
	"inHg": {"hPa", 0, 33.8638866667},
	"mmHg": {"hPa", 0, 1.33322387415},
	"psi":  {"hPa", 0, 68.9475729318},
	// length, altitude → m
	"m":  {"m", 0, 1},
	"cm": {"m", 0, 0.01},
	"km": {"m", 0, 1000},
	"ft": {"m", 0, 0.3048},
	// speed → m/s
	"m/s":   {"m/s", 0, 1},
	"km/h":  {"m/s", 0, 1 / 3.6},
	"mph":   {"m/s", 0, 0.44704},
	"knots": {"m/s", 0, 1852.0 / 3600.0},
	// angles (lat, lon, course) → deg
	"deg": {"deg", 0, 1},
	"rad": {"deg", 0, 180 / math.Pi},
	// electrical, kept as they are
	"V":  {"V", 0, 1},
	"mV": {"V", 0, 0.001},
}

// unitNames lists the units for messages.
func unitNames() string {
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// apply converts v.
func (c conversion) apply(v float64) float64 {
	if c.pre == 0 && c.mul == 1 {
		return v
	}
	return (v + c.pre) * c.mul
}

// identity reports whether c changes nothing.
func (c conversion) identity() bool { return c.pre == 0 && c.mul == 1 }

// round rounds v to d decimals; values too large to scale are kept.
func round(v float64, d int) float64 {
	p := math.Pow10(d)
	if math.Abs(v*p) >= 1<<53 {
		return v
	}
	return math.Round(v*p) / p
}
