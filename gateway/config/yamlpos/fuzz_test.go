package yamlpos_test

import (
	"slices"
	"testing"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// FuzzDecode checks that Decode never panics, whatever the file holds, and
// that every problem it reports has a real position.
func FuzzDecode(f *testing.F) {
	for _, tc := range errorCases {
		f.Add(tc.in)
	}
	f.Add(fullConfig)
	f.Add("a: &a [*a]\nb: &b {<<: *b}\n")
	f.Add("uplink: &u\n  <<: [*u, {url: x}]\n")
	f.Add("routes:\n  - filter: \"\\x41\\u00e9 ${PORT} $${X}\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		var c config
		doc, errs := yamlpos.Decode("f.yaml", []byte(in), &c, yamlpos.Options{LookupEnv: testEnv})
		for _, e := range errs {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.File != "f.yaml" {
				t.Errorf("bad error %q at %v", e.Error(), e.Pos)
			}
		}
		sorted := slices.IsSortedFunc(errs, func(a, b yamlpos.Error) int {
			if a.Pos.Line != b.Pos.Line {
				return a.Pos.Line - b.Pos.Line
			}
			return a.Pos.Col - b.Pos.Col
		})
		if !sorted {
			t.Errorf("errors not sorted:\n%v", errs)
		}
		for _, path := range []string{"", "site", "uplink.url", "devices[0].id", "routes[0].filter", "labels.a"} {
			for offset := -1; offset < 8; offset++ {
				if p := doc.ValuePos(path, offset); doc.Has(path) != (p.Line > 0) {
					t.Errorf("ValuePos(%q, %d) = %v, but Has = %v", path, offset, p, doc.Has(path))
				}
			}
		}
	})
}
