package devices

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/profiles")

// goldenNow is the gateway's receive time in the golden cases.
var goldenNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// goldenResult is one payload's outcome in want.json: the canonical
// event (its id replaced by "<id>", which differs every run) or the
// refusal.
type goldenResult struct {
	Payload string          `json:"payload"`
	Event   json.RawMessage `json:"event,omitempty"`
	Reject  *goldenReject   `json:"reject,omitempty"`
}

type goldenReject struct {
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
}

// TestProfilesGolden runs every folder of testdata/profiles: profiles.yaml
// (one kind), an optional catalog.yaml, payloads.txt (one payload per
// line) and want.json (what each payload becomes). go test -run
// TestProfilesGolden -update rewrites want.json; review the diff.
func TestProfilesGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/profiles/*")
	if err != nil || len(dirs) < 10 {
		t.Fatalf("golden cases: %v (%d found)", err, len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			n, d := goldenNormalizer(t, dir)
			payloads := readLines(t, filepath.Join(dir, "payloads.txt"))
			var got []goldenResult
			for _, p := range payloads {
				got = append(got, goldenRun(t, n, d, p))
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			compareGolden(t, filepath.Join(dir, "want.json"), out)
		})
	}
}

// goldenNormalizer builds the normalizer of a case: its profile, its
// catalog if it has one, and a device of the profile's kind.
func goldenNormalizer(t *testing.T, dir string) (*Normalizer, *Device) {
	t.Helper()
	var pf ProfilesFile
	decodeYAML(t, filepath.Join(dir, "profiles.yaml"), &pf)
	ps, errs := CompileProfiles(pf)
	if len(errs) > 0 || len(ps.Kinds()) != 1 {
		t.Fatalf("profiles.yaml: %v (want exactly one kind, got %v)", errs, ps.Kinds())
	}
	kind := ps.Kinds()[0]
	p, _ := ps.Lookup(kind)
	typ := p.EventType
	if typ == "" {
		typ = "reading"
	}
	n := &Normalizer{Source: "/gateways/gw1", MaxPayload: 4096, Profiles: ps,
		Topics: []IngestTopic{{Filter: "devices/+/data", Type: typ}}}
	if _, err := os.Stat(filepath.Join(dir, "catalog.yaml")); err == nil {
		var cf CatalogFile
		decodeYAML(t, filepath.Join(dir, "catalog.yaml"), &cf)
		cat, errs := CompileCatalog(cf)
		if len(errs) > 0 {
			t.Fatalf("catalog.yaml: %v", errs)
		}
		n.Catalog = cat
	}
	// What `flowgate check` says about the case: nothing, unless the case
	// is about a profile that does not fit its catalog entry (check.txt).
	var check bytes.Buffer
	for _, e := range ps.Check(n.Catalog) {
		check.WriteString(e.Error() + "\n")
	}
	if _, err := os.Stat(filepath.Join(dir, "check.txt")); err == nil {
		compareGolden(t, filepath.Join(dir, "check.txt"), check.Bytes())
	} else if check.Len() > 0 {
		t.Fatalf("profile check: %s", check.Bytes())
	}
	d := &Device{ID: "dev-1", Kind: kind, Metadata: map[string]string{"site": "depot-12", "vehicle": "TRK-101"}}
	return n, d
}

func goldenRun(t *testing.T, n *Normalizer, d *Device, payload string) goldenResult {
	t.Helper()
	res := goldenResult{Payload: payload}
	ev, err := n.Normalize(d, "devices/dev-1/data", []byte(payload), goldenNow)
	if err != nil {
		r, ok := AsReject(err)
		if !ok {
			t.Fatalf("%q: error without a reason: %v", payload, err)
		}
		res.Reject = &goldenReject{r.Reason, r.Detail}
		return res
	}
	if ev.ID == "" || !json.Valid(ev.Data) {
		t.Fatalf("%q: id %q, data %s", payload, ev.ID, ev.Data)
	}
	ev.ID = "<id>"
	res.Event = ev.AppendJSON(nil)
	return res
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; got:\n%s", path, got)
	}
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decodeStrict(t, path, data, v)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}
