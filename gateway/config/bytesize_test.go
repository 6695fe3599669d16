package config

import (
	"strings"
	"testing"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "512MiB": 512 << 20, "1GiB": 1 << 30, "1.5KiB": 1536,
		"64kB": 64000, "2 GB": 2e9, "10B": 10, "3TiB": 3 << 40,
	} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || int64(b) != want {
			t.Errorf("%q = %d, %v; want %d", in, b, err, want)
		}
	}
	for in, mention := range map[string]string{
		"": "not a size", "MiB": "not a size", "ten": "not a size", "-1": "negative",
		"1QB": "not a size", "NaN": "not a size", "9999999TiB": "too large",
	} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil || !strings.Contains(err.Error(), mention) {
			t.Errorf("%q: %v, want an error mentioning %q", in, err, mention)
		}
	}
	if s := ByteSize(512 << 20).String(); s != "512MiB" {
		t.Errorf("String = %q", s)
	}
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"1GiB", "0", "1.5KiB", "-3", "1e400", "  7 MB ", "B", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b ByteSize
		if err := b.UnmarshalText([]byte(s)); err == nil && b < 0 {
			t.Fatalf("%q parsed to a negative size %d", s, b)
		}
	})
}
