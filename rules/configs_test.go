package rules

import (
	"path/filepath"
	"testing"
)

// TestShippedRuleSets: every rule set in configs/rules/ compiles, as the
// demo and the documentation promise.
func TestShippedRuleSets(t *testing.T) {
	files, err := filepath.Glob("../configs/rules/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule sets in configs/rules: %v", err)
	}
	set, errs := LoadFiles(files, Known{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if set.Len() < len(files) {
		t.Errorf("%d rules from %d files", set.Len(), len(files))
	}
}
