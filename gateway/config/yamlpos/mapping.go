package yamlpos

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// pair is one entry of a mapping.
type pair struct {
	name     string
	key, val *yaml.Node
	merged   bool // merged in by <<, so val may be decoded many times
}

// pairs lists the entries of mapping n in order, reporting duplicate and
// non-scalar keys. Merge keys (<<) are flattened into the list: a key
// written in n wins over a merged one, and an earlier merged mapping wins
// over a later one, as the YAML merge key specification says.
func (d *decoder) pairs(n *yaml.Node) []pair {
	seen := map[string]*yaml.Node{}
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if !d.enter(key, key) { // keys of an aliased mapping count as visits too
			break
		}
		d.leave()
		name, isMerge, ok := d.keyName(key)
		switch {
		case !ok:
		case isMerge:
			merged = append(merged, d.mergeSource(val, true)...)
		case seen[name] != nil:
			d.errorf(key, "duplicate key %q (first at line %d)", name, seen[name].Line)
		default:
			seen[name] = key
			own = append(own, pair{name: name, key: key, val: val})
		}
	}
	for _, p := range merged {
		if seen[p.name] == nil {
			seen[p.name] = p.key
			p.merged = true
			own = append(own, p)
		}
	}
	return own
}

// keyName returns the text of a mapping key, following an alias, and
// whether it is the merge key <<.
func (d *decoder) keyName(key *yaml.Node) (name string, isMerge, ok bool) {
	n := key
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(key, "mapping keys must be strings, got %s", describe(n))
		return "", false, false
	}
	return n.Value, n.ShortTag() == "!!merge", true
}

// mergeSource returns the entries that `<<: site` merges in: those of a
// mapping or, if seq is true, of a sequence of mappings.
func (d *decoder) mergeSource(site *yaml.Node, seq bool) []pair {
	n, done, ok := d.open(site)
	if !ok {
		return nil
	}
	defer done()
	switch {
	case n.Kind == yaml.MappingNode:
		return d.pairs(n)
	case n.Kind == yaml.SequenceNode && seq:
		var out []pair
		for _, item := range n.Content {
			out = append(out, d.mergeSource(item, false)...)
		}
		return out
	}
	d.errorf(site, "merge key << needs a mapping or a sequence of mappings, got %s", describe(n))
	return nil
}

// decodePair records where the entry p of the mapping at path is and
// decodes its value into v. A merged value counts as visited through an
// alias: `- <<: *big` repeated would otherwise decode big many times
// without limit.
func (d *decoder) decodePair(p pair, v reflect.Value, path string) {
	sub := join(path, p.name)
	d.record(sub, p.key, p.val)
	if p.merged {
		d.inAlias++
		defer func() { d.inAlias-- }()
	}
	d.decodeValue(p.val, v, sub)
}

// field is where a key's value goes in a struct.
type field struct {
	index []int // for fieldByIndex; more than one step through inline structs
}

// structInfo maps the keys a struct type takes to its fields.
type structInfo struct {
	byName map[string]field
	names  []string // in declaration order, for "known: ..." in messages
	err    error    // the type cannot be decoded into
}

// structInfo returns (and caches) the keys that struct type t takes.
func (d *decoder) structInfo(t reflect.Type) (*structInfo, error) {
	if info, ok := d.types[t]; ok {
		return info, info.err
	}
	info := &structInfo{byName: map[string]field{}}
	info.err = info.add(t, nil, map[reflect.Type]bool{t: true})
	d.types[t] = info
	return info, info.err
}

// add adds the fields of struct type t, reached through the field indexes
// in prefix, to info. inlined holds the struct types being inlined, to
// reject a type that inlines itself through a pointer.
func (info *structInfo) add(t reflect.Type, prefix []int, inlined map[reflect.Type]bool) error {
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, skip := parseTag(f)
		if skip {
			continue
		}
		idx := append(prefix[:len(prefix):len(prefix)], i)
		if inline {
			if err := info.addInline(f, idx, inlined); err != nil {
				return err
			}
			continue
		}
		if _, dup := info.byName[name]; dup {
			return fmt.Errorf("yamlpos: Go type %s has two fields for key %q", t, name)
		}
		info.byName[name] = field{index: idx}
		info.names = append(info.names, name)
	}
	return nil
}

func (info *structInfo) addInline(f reflect.StructField, idx []int, inlined map[reflect.Type]bool) error {
	t := f.Type
	if t.Kind() == reflect.Pointer {
		if !f.IsExported() {
			return fmt.Errorf("yamlpos: cannot inline unexported pointer field %s", f.Name)
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("yamlpos: field %s is ,inline but is not a struct", f.Name)
	}
	if inlined[t] {
		return fmt.Errorf("yamlpos: Go type %s inlines itself", t)
	}
	inlined[t] = true
	defer delete(inlined, t)
	return info.add(t, idx, inlined)
}

// parseTag returns the key a struct field takes, whether it is inlined, and
// whether to skip it.
func parseTag(f reflect.StructField) (name string, inline, skip bool) {
	tag := f.Tag.Get("yaml")
	if tag == "-" {
		return "", false, true
	}
	name, opts, _ := strings.Cut(tag, ",")
	for _, opt := range strings.Split(opts, ",") {
		inline = inline || opt == "inline"
	}
	// An unexported embedded struct can still be inlined: its exported
	// fields are settable.
	if !f.IsExported() && !(f.Anonymous && inline) {
		return "", false, true
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, inline, false
}

// fieldByIndex returns the field of struct v at index, allocating inline
// struct pointers on the way.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}
