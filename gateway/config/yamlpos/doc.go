// Package yamlpos decodes a YAML configuration file into Go structs strictly,
// remembering the line and column of every value and reporting every problem
// in the file at once.
//
// It exists for `flowgate check -c FILE`, which prints each mistake in a
// configuration the way a compiler does,
//
//	flowgate.yaml:12:5: unknown key "qso" in uplink (known: url, qos, client_id)
//	flowgate.yaml:20:18: routes[1].max_rate: want an integer, got "fast"
//
// so that an operator can fix them all in one pass, and so that the
// Validate methods of the config structs can point at the offending value
// too (see [Doc.Errorf]). yaml.v3's own decoder cannot do this: it reports
// lines without columns, stops at the first syntax problem, and ignores
// unknown keys unless asked. So this package lets yaml.v3 parse the file
// into a [yaml.Node] tree and then walks the tree itself.
//
// # Rules
//
// The target is a pointer to a struct. Keys map to fields by their `yaml`
// tag (untagged exported fields use the lowercased field name; `yaml:"-"`
// skips a field; `yaml:",inline"` merges an embedded or nested struct's keys
// into its parent). A key no field takes is an error, and so is a key
// written twice.
//
// Scalars convert as YAML 1.2's core schema says: booleans are only
// true/false (in any of their three capitalisations), integers are decimal,
// 0x hex or 0o octal and are range-checked against the field's type, and a
// decimal with a leading zero is rejected as ambiguous. A quoted scalar
// converts the same way as a plain one, so `port: "${PORT}"` works. A
// time.Duration takes Go's duration syntax ("10s", "2h45m"). Any type whose
// pointer implements [encoding.TextUnmarshaler] gets the scalar's text. A
// [yaml.Node] field receives a copy of the raw node.
//
// A null (`~`, `null` or nothing at all) leaves the field as it was, so
// callers may set defaults before or after decoding. Pointers are allocated
// only when their key holds a value. Sequences replace a slice; mappings are
// merged into an existing map, where a null value stores the zero value.
//
// Every scalar value (never a key) may use ${NAME}, replaced through
// [Options.LookupEnv] before conversion; $${ writes a literal ${.
//
// Anchors, aliases and merge keys (<<) are supported. Decoding stops with
// an error once aliases have expanded to 100,000 nodes, which defeats
// "billion laughs" documents, and an alias that refers to a node containing
// itself is an error.
//
// Positions are 1-based. Columns count characters, not bytes, as yaml.v3
// does. Input must be UTF-8.
package yamlpos

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pos is a 1-based line and column in a file. The zero Pos means "nowhere".
type Pos struct{ Line, Col int }

// String returns "LINE:COL".
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is one problem at one place in a file.
type Error struct {
	File string
	Pos  Pos
	Msg  string
}

// Error returns "FILE:LINE:COL: MSG", or "LINE:COL: MSG" if File is empty.
func (e Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// Errors is a list of problems sorted by position.
type Errors []Error

// Error returns one problem per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns nil if there are no problems, and e otherwise. Use it to
// avoid the typed-nil trap of returning an empty Errors as an error.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Sorted orders e by position, keeping the order of problems at the same
// place, and drops exact repeats (a mapping merged into several places
// reports its own problems once).
func (e Errors) Sorted() Errors {
	slices.SortStableFunc(e, func(a, b Error) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
	return slices.Compact(e)
}

// Options tune Decode.
type Options struct {
	// LookupEnv resolves ${NAME} in scalar values; os.LookupEnv is the usual
	// choice. If nil, every ${NAME} is an error.
	LookupEnv func(string) (string, bool)
}

// Doc remembers where every decoded value came from, so that later checks
// (a config struct's Validate method) can report problems at the right
// place.
//
// A path names a value the way a message to a user would: field names
// (their yaml tags) and map keys joined by dots, and [i] for the items of a
// sequence, as in "uplink.url", "routes[2].filter" or "labels.site". The
// empty path is the top-level mapping. Only values that were decoded are
// known; unknown keys are not.
type Doc struct {
	File string

	src     []byte            // the file, for ValuePos
	entries map[string]*entry // by path
}

// entry is what Doc knows about one path.
type entry struct {
	key  Pos        // position of the mapping key; zero for sequence items
	val  Pos        // position of the value as written (an alias, perhaps)
	node *yaml.Node // the value as written; ValuePos follows aliases
	from []int      // after ${VAR} expansion: result offset -> offset in node.Value
}

func (d *Doc) lookup(path string) (*entry, bool) {
	if d == nil {
		return nil, false
	}
	e, ok := d.entries[path]
	return e, ok
}

// Has reports whether path was present in the file, even if its value was
// null.
func (d *Doc) Has(path string) bool {
	_, ok := d.lookup(path)
	return ok
}

// Pos returns the position of the value at path, or the zero Pos if the
// path was not in the file.
func (d *Doc) Pos(path string) Pos {
	if e, ok := d.lookup(path); ok {
		return e.val
	}
	return Pos{}
}

// KeyPos returns the position of the key of the mapping entry at path. For
// a sequence item, which has no key, it returns Pos(path).
func (d *Doc) KeyPos(path string) Pos {
	if e, ok := d.lookup(path); ok && e.key.Line > 0 {
		return e.key
	}
	return d.Pos(path)
}

// Errorf returns an Error at the value at path, or at line 1 column 1 if the
// path was not in the file (a required key is missing, say). The message is
// prefixed with the path, so that it always names the key:
//
//	doc.Errorf("uplink.url", "scheme %q is not supported", u.Scheme)
//	// flowgate.yaml:3:8: uplink.url: scheme "ftp" is not supported
func (d *Doc) Errorf(path, format string, args ...any) Error {
	pos := d.Pos(path)
	if pos.Line == 0 {
		pos = Pos{1, 1}
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	var file string
	if d != nil {
		file = d.File
	}
	return Error{File: file, Pos: pos, Msg: msg}
}
