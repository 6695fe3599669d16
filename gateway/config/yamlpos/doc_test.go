package yamlpos_test

import (
	"testing"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

func pos(line, col int) yamlpos.Pos { return yamlpos.Pos{Line: line, Col: col} }

func decodeFull(t *testing.T) *yamlpos.Doc {
	t.Helper()
	var c config
	doc, errs := yamlpos.Decode("cfg.yaml", []byte(fullConfig), &c, yamlpos.Options{LookupEnv: testEnv})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return doc
}

func TestDocPos(t *testing.T) {
	doc := decodeFull(t)
	tests := []struct {
		path     string
		val, key yamlpos.Pos
	}{
		{"", pos(2, 1), pos(2, 1)},
		{"site", pos(2, 7), pos(2, 1)},
		{"uplink", pos(5, 3), pos(4, 1)},
		{"uplink.url", pos(5, 8), pos(5, 3)},
		{"uplink.tls.ca", pos(11, 9), pos(11, 5)},
		{"devices", pos(14, 3), pos(13, 1)},
		{"devices[0]", pos(14, 5), pos(14, 5)},
		{"devices[0].tags[1]", pos(19, 20), pos(19, 20)},
		{"devices[0].params", pos(20, 13), pos(20, 5)},
		{"routes[0].filter", pos(27, 13), pos(27, 5)},
		{"labels.floor", pos(31, 10), pos(31, 3)},
		{"limits.mqtt.burst", pos(33, 28), pos(33, 21)},
		{"limits.empty", pos(34, 9), pos(34, 3)},
		{"uplink.nope", pos(0, 0), pos(0, 0)},
		{"devices[2]", pos(0, 0), pos(0, 0)},
	}
	for _, tc := range tests {
		if got := doc.Pos(tc.path); got != tc.val {
			t.Errorf("Pos(%q) = %v, want %v", tc.path, got, tc.val)
		}
		if got := doc.KeyPos(tc.path); got != tc.key {
			t.Errorf("KeyPos(%q) = %v, want %v", tc.path, got, tc.key)
		}
		if got, want := doc.Has(tc.path), tc.val.Line > 0; got != want {
			t.Errorf("Has(%q) = %v, want %v", tc.path, got, want)
		}
	}
}

func TestDocErrorf(t *testing.T) {
	doc := decodeFull(t)
	if got, want := doc.Errorf("uplink.qos", "must be %d or %d", 0, 1).Error(), "cfg.yaml:7:8: uplink.qos: must be 0 or 1"; got != want {
		t.Errorf("Errorf = %q, want %q", got, want)
	}
	if got, want := doc.Errorf("uplink.password", "is required").Error(), "cfg.yaml:1:1: uplink.password: is required"; got != want {
		t.Errorf("Errorf for a missing key = %q, want %q", got, want)
	}
}

func TestDocValuePos(t *testing.T) {
	in := "" +
		"plain: a > b\n" + // 1
		"double: \"a > b\"\n" + // 2
		"single: 'it''s > b'\n" + // 3
		"escaped: \"\\t\\u00e9\\x41 > b\"\n" + // 4
		"unicode: \"éé > b\"\n" + // 5
		"env: ${PORT} > ${EMPTY}b\n" + // 6
		"anchored: &a !!str a > b\n" + // 7
		"alias: *a\n" + // 8
		"block: |\n  a > b\n" + // 9, 10
		"folded: \"a\n  > b\"\n" + // 11, 12
		"list: [x, \"a > b\"]\n" // 13
	var v struct {
		Plain    string   `yaml:"plain"`
		Double   string   `yaml:"double"`
		Single   string   `yaml:"single"`
		Escaped  string   `yaml:"escaped"`
		Unicode  string   `yaml:"unicode"`
		Env      string   `yaml:"env"`
		Anchored string   `yaml:"anchored"`
		Alias    string   `yaml:"alias"`
		Block    string   `yaml:"block"`
		Folded   string   `yaml:"folded"`
		List     []string `yaml:"list"`
	}
	doc, errs := yamlpos.Decode("f", []byte(in), &v, yamlpos.Options{LookupEnv: testEnv})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		path   string
		offset int
		want   yamlpos.Pos
	}{
		{"plain", 2, pos(1, 10)},
		{"plain", 0, pos(1, 8)},
		{"plain", 5, pos(1, 13)},   // just past the end
		{"plain", 99, pos(1, 13)},  // clamped to the end
		{"plain", -1, pos(1, 8)},   // clamped to the start
		{"double", 2, pos(2, 12)},  // the >, after the opening quote
		{"double", 5, pos(2, 15)},  // the closing quote
		{"single", 5, pos(3, 16)},  // '' is one byte of the value
		{"escaped", 0, pos(4, 11)}, // \t
		{"escaped", 1, pos(4, 13)}, // \u00e9, two bytes in the value
		{"escaped", 2, pos(4, 13)}, // inside \u00e9: its start
		{"escaped", 3, pos(4, 19)}, // \x41
		{"escaped", 5, pos(4, 24)}, // >
		{"unicode", 5, pos(5, 14)}, // é is two bytes but one column
		{"env", 0, pos(6, 6)},      // inside ${PORT}: its ${
		{"env", 3, pos(6, 6)},
		{"env", 5, pos(6, 14)}, // >
		{"env", 7, pos(6, 24)}, // b, after the empty ${EMPTY}
		{"anchored", 2, pos(7, 22)},
		{"alias", 2, pos(7, 22)}, // the text is at the anchor
		{"block", 2, pos(9, 8)},  // block scalars: Pos(path)
		{"folded", 0, pos(11, 10)},
		{"folded", 3, pos(11, 9)}, // beyond the first line: Pos(path)
		{"list[1]", 2, pos(13, 14)},
		{"list", 2, pos(13, 7)},
		{"missing", 2, pos(0, 0)},
	}
	for _, tc := range tests {
		if got := doc.ValuePos(tc.path, tc.offset); got != tc.want {
			t.Errorf("ValuePos(%q, %d) = %v, want %v", tc.path, tc.offset, got, tc.want)
		}
	}
}

func TestDocValuePosAfterBOMAndCRLF(t *testing.T) {
	in := "\uFEFFsite: x\r\nuplink:\r\n  url: \"a > b\"\r\n"
	var c config
	doc, errs := yamlpos.Decode("f", []byte(in), &c, yamlpos.Options{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := doc.ValuePos("uplink.url", 2), pos(3, 11); got != want {
		t.Errorf("ValuePos = %v, want %v", got, want)
	}
}
