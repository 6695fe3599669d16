package yamlpos

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

const (
	// maxAliasVisits caps the nodes one Decode visits through aliases, so
	// that a small file cannot expand exponentially ("billion laughs").
	// Nodes outside aliases are visited once each, so they need no cap.
	maxAliasVisits = 100_000
	// maxDepth caps how deeply decoding recurses (only recursive Go types
	// can get near it); it matches yaml.v3's own nesting limit.
	maxDepth = 10_000
)

// Decode parses data, the contents of file, and decodes its single YAML
// document into v, which must be a non-nil pointer to a struct. It returns
// every problem it finds, sorted by position, and a Doc that knows where each
// decoded value came from. The Doc is never nil, and v holds everything that
// could be decoded even when there are errors.
//
// An empty document, or one with only comments, leaves v unchanged.
func Decode(file string, data []byte, v any, opts Options) (*Doc, Errors) {
	doc := &Doc{File: file, src: bytes.Clone(data), entries: map[string]*entry{}}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		msg := fmt.Sprintf("yamlpos: Decode needs a non-nil pointer to a struct, got %T", v)
		return doc, Errors{{File: file, Pos: Pos{1, 1}, Msg: msg}}
	}
	root, errs := parse(file, data)
	d := &decoder{
		doc:    doc,
		lookup: opts.LookupEnv,
		errs:   errs,
		active: map[*yaml.Node]bool{},
		types:  map[reflect.Type]*structInfo{},
	}
	if root != nil && len(root.Content) > 0 {
		top := root.Content[0]
		d.record("", nil, top)
		d.decodeValue(top, rv.Elem(), "")
	}
	return doc, d.errs.Sorted()
}

// decoder holds the state of one Decode.
type decoder struct {
	doc    *Doc
	lookup func(string) (string, bool)
	errs   Errors

	inAlias     int // how many aliases decoding is inside
	aliasVisits int // nodes visited while inAlias > 0
	depth       int
	stopped     bool                // aliasVisits ran out
	active      map[*yaml.Node]bool // collections being decoded, to catch alias cycles
	types       map[reflect.Type]*structInfo
}

var nodeType = reflect.TypeFor[yaml.Node]()

// errorf records a problem at node n.
func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, Error{File: d.doc.File, Pos: posOf(n), Msg: fmt.Sprintf(format, args...)})
}

// posOf returns where n is written, clamped to a valid position.
func posOf(n *yaml.Node) Pos {
	return Pos{Line: max(n.Line, 1), Col: max(n.Column, 1)}
}

// label names path in a message.
func label(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// record notes where the value at path is written. key is nil for sequence
// items and the top level.
func (d *decoder) record(path string, key, val *yaml.Node) {
	e := &entry{val: posOf(val), node: val}
	if key != nil {
		e.key = posOf(key)
	}
	d.doc.entries[path] = e
}

// enter counts a visit to n, written at site, and one level of depth, and
// reports whether decoding may go on. Call leave when it returns true.
// Inside an alias every node counts, and a scalar one more per KiB, so that
// repeating a huge string through aliases is limited too.
func (d *decoder) enter(site, n *yaml.Node) bool {
	if d.stopped {
		return false
	}
	if d.inAlias > 0 {
		d.aliasVisits += 1 + len(n.Value)/1024
	}
	if d.aliasVisits > maxAliasVisits {
		d.stopped = true
		d.errorf(site, "aliases expand to more than %d nodes; decoding stopped here", maxAliasVisits)
		return false
	}
	if d.depth >= maxDepth {
		d.errorf(site, "nested more than %d levels deep", maxDepth)
		return false
	}
	d.depth++
	return true
}

func (d *decoder) leave() { d.depth-- }

// deref follows the alias written at site to the node it names. It reports
// false, after recording an error, if that node is being decoded, that is,
// if it contains the alias: `a: &x [*x]` would otherwise never end.
func (d *decoder) deref(site *yaml.Node) (*yaml.Node, bool) {
	n := site
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			d.errorf(site, "alias *%s does not refer to anything", site.Value)
			return nil, false
		}
		n = n.Alias
	}
	if d.active[n] {
		d.errorf(site, "alias *%s refers to a node that contains it", site.Value)
		return nil, false
	}
	return n, true
}

// open starts on the node written at site: it follows an alias, counts
// the visit and marks a collection as being decoded. It returns the node
// and a function to call when done with it, or false if decoding must not
// go on.
func (d *decoder) open(site *yaml.Node) (n *yaml.Node, done func(), ok bool) {
	n, ok = d.deref(site)
	if !ok {
		return nil, nil, false
	}
	alias := site != n
	if alias {
		d.inAlias++
	}
	if !d.enter(site, n) {
		if alias {
			d.inAlias--
		}
		return nil, nil, false
	}
	collection := n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode
	if collection {
		d.active[n] = true
	}
	return n, func() {
		d.leave()
		if collection {
			delete(d.active, n)
		}
		if alias {
			d.inAlias--
		}
	}, true
}

// decodeValue decodes the node written at site, following an alias, into v;
// path names v in messages.
func (d *decoder) decodeValue(site *yaml.Node, v reflect.Value, path string) {
	n, done, ok := d.open(site)
	if !ok {
		return
	}
	defer done()
	d.decodeNode(site, n, v, path)
}

// decodeNode decodes n into v. Problems with n as a whole are reported at
// site, where the value is written.
func (d *decoder) decodeNode(site, n *yaml.Node, v reflect.Value, path string) {
	switch {
	case !v.CanSet():
		d.errorf(site, "%s: yamlpos cannot set a value of Go type %s", label(path), v.Type())
		return
	case isNull(n):
		return
	case v.Type() == nodeType:
		v.Set(reflect.ValueOf(d.copyNode(n)).Elem())
		return
	case v.Kind() == reflect.Pointer:
		d.decodePointer(site, n, v, path)
		return
	}
	if d.decodeSpecial(site, n, v, path) {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(site, n, v, path)
	case reflect.Map:
		d.decodeMap(site, n, v, path)
	case reflect.Slice:
		d.decodeSlice(site, n, v, path)
	default:
		d.decodeScalar(site, n, v, path)
	}
}

// decodePointer allocates *v if needed and decodes n into it. It counts
// depth so that a type like `type P *P` cannot recurse forever.
func (d *decoder) decodePointer(site, n *yaml.Node, v reflect.Value, path string) {
	if !d.enter(site, n) {
		return
	}
	defer d.leave()
	if v.IsNil() {
		v.Set(reflect.New(v.Type().Elem()))
	}
	d.decodeNode(site, n, v.Elem(), path)
}

// isNull reports whether n is a null: `~`, `null` or an empty plain value.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// copyNode returns a deep copy of n, counting its nodes against the visit
// budget. Aliases inside still refer to the original tree.
func (d *decoder) copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, 0, len(n.Content))
	for _, child := range n.Content {
		if !d.enter(child, child) {
			break
		}
		c.Content = append(c.Content, d.copyNode(child))
		d.leave()
	}
	return &c
}

func (d *decoder) decodeStruct(site, n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.mismatch(site, n, path, "a mapping")
		return
	}
	info, err := d.structInfo(v.Type())
	if err != nil {
		d.errorf(site, "%s: %v", label(path), err)
		return
	}
	for _, p := range d.pairs(n) {
		f, ok := info.byName[p.name]
		if !ok {
			d.unknownKey(p, path, info.names)
			continue
		}
		d.decodePair(p, fieldByIndex(v, f.index), path)
	}
}

func (d *decoder) unknownKey(p pair, path string, known []string) {
	where := "in " + path
	if path == "" {
		where = "at top level"
	}
	if len(known) == 0 {
		d.errorf(p.key, "unknown key %q %s (it takes no keys)", p.name, where)
		return
	}
	d.errorf(p.key, "unknown key %q %s (known: %s)", p.name, where, strings.Join(known, ", "))
}

func (d *decoder) decodeMap(site, n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.errorf(site, "%s: yamlpos cannot decode into Go type %s (map keys must be strings)", label(path), t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.mismatch(site, n, path, "a mapping")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(t, len(n.Content)/2))
	}
	for _, p := range d.pairs(n) {
		k := reflect.ValueOf(p.name).Convert(t.Key())
		elem := reflect.New(t.Elem()).Elem()
		if old := v.MapIndex(k); old.IsValid() {
			elem.Set(old)
		}
		d.decodePair(p, elem, path)
		v.SetMapIndex(k, elem)
	}
}

func (d *decoder) decodeSlice(site, n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.mismatch(site, n, path, "a sequence")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		sub := index(path, i)
		d.record(sub, nil, item)
		d.decodeValue(item, s.Index(i), sub)
	}
	v.Set(s)
}

// mismatch reports that the value at path is not what its field wants.
func (d *decoder) mismatch(site, n *yaml.Node, path, want string) {
	d.errorf(site, "%s: want %s, got %s", label(path), want, describe(n))
}

// describe names what n is, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	default:
		return quote(n.Value)
	}
}

// quote quotes s for a message, shortening it if it is long.
func quote(s string) string {
	const maxLen = 60
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
