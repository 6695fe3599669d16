package load

import (
	"testing"
)

// FuzzParseStamp: any message a broker delivers, however wrapped or
// damaged, parses without panicking, and a stamp it finds is in range.
func FuzzParseStamp(f *testing.F) {
	f.Add(appendPayload(nil, stamp{1, 2, 3}, 64))
	f.Add([]byte(`{"data":{"p":1,"s":2,"t":3}}`))
	f.Add([]byte(`"p":"s":"t":`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, ok := parseStamp(msg)
		if ok && (s.pub < 0 || s.seq < 0 || s.usec < 0) {
			t.Errorf("%+v from %q", s, msg)
		}
	})
}

// FuzzProcFiles: /proc files are outside input too.
func FuzzProcFiles(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmRSS:\t 12 kB\n"))
	f.Add([]byte("1 (x) S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseVmRSS(b); err == nil && n < 0 {
			t.Errorf("negative RSS %d", n)
		}
		if n, err := parseStatTicks(b); err == nil && n < 0 {
			t.Errorf("negative ticks %d", n)
		}
	})
}
