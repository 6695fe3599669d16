package uplinktest

import (
	"os"
	"path/filepath"
	"testing"
)

// CopyStore copies the files of the store directory src into dst, as a
// crash would leave them (Badger's LOCK file left out), so a test can damage
// or reopen a copy.
func CopyStore(t testing.TB, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() { // the outbox's journal
			if err := os.MkdirAll(filepath.Join(dst, e.Name()), 0o700); err != nil {
				t.Fatal(err)
			}
			CopyStore(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
			continue
		}
		if e.Name() == "LOCK" || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// OnlyFile is the one file in dir matching pattern; the test fails if
// there is not exactly one.
func OnlyFile(t testing.TB, dir, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) != 1 {
		t.Fatalf("%s in %s: %v, want one file", pattern, dir, m)
	}
	return m[0]
}
