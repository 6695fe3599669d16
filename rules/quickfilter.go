package rules

import (
	"math"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/flowgate/flowgate/event"
)

// A quickFilter is a rule filter that compares data fields with numbers,
// such as `data.temperature > 30` or `data.v >= 10 and data.v < 20`,
// evaluated on the event's JSON in place. Such filters are most of those
// written; running them through expr first decodes the whole event into
// maps (newEnv), which cost more than everything else fifty rules do with
// an event. A quick filter gives the answer expr gives: a comparison is
// true only when the field is a JSON number (an absent field, a string, a
// boolean or null make it false, as they make expr's comparison fail), and
// its fields share the rule set's lookups (lookupCache). One difference
// remains, in an object that names a key twice: like every field of the
// rules, a quick filter reads the first, where encoding/json keeps the
// last (FuzzQuickFilter leaves such objects out).
type quickFilter []quickCmp

type quickCmp struct {
	f  field
	op string // <, <=, >, >=, ==
	n  float64
}

// quickFilterOf returns the quick form of the filter src, or nil when it is
// not one (expr then runs it).
func (c *compiler) quickFilterOf(src string) quickFilter {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	var q quickFilter
	if !q.add(tree.Node, c) {
		return nil
	}
	return q
}

// add appends the comparisons of n, a comparison or a conjunction of them;
// false if n is anything else.
func (q *quickFilter) add(n ast.Node, c *compiler) bool {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return false
	}
	switch b.Operator {
	case "and", "&&":
		return q.add(b.Left, c) && q.add(b.Right, c)
	case "<", "<=", ">", ">=", "==":
	default:
		return false
	}
	op := b.Operator
	path, okL := dataPath(b.Left)
	num, okR := numberLit(b.Right)
	if !okL || !okR { // the number first: 30 < data.t is data.t > 30
		path, okL = dataPath(b.Right)
		num, okR = numberLit(b.Left)
		op = mirrored[op]
	}
	if !okL || !okR {
		return false
	}
	f := field{path: path, text: "data." + strings.Join(path, ".")}
	*q = append(*q, quickCmp{f: c.share(f), op: op, n: num})
	return true
}

var mirrored = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}

// dataPath is the keys [a b] of data.a.b, or of data["a"]["b"], as
// written: a key may hold dots or spaces.
func dataPath(n ast.Node) ([]string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return nil, false
	}
	key, ok := m.Property.(*ast.StringNode)
	if !ok {
		return nil, false
	}
	if id, ok := m.Node.(*ast.IdentifierNode); ok {
		return []string{key.Value}, id.Value == "data"
	}
	parent, ok := dataPath(m.Node)
	return append(parent, key.Value), ok
}

// numberLit is the value of a number literal, negated or not.
func numberLit(n ast.Node) (float64, bool) {
	switch v := n.(type) {
	case *ast.IntegerNode:
		return float64(v.Value), true
	case *ast.FloatNode:
		return v.Value, true
	case *ast.UnaryNode:
		if x, ok := numberLit(v.Node); ok && v.Operator == "-" {
			return -x, true
		}
	}
	return 0, false
}

// match reports whether ev passes every comparison.
func (q quickFilter) match(ev *event.Event) bool {
	for i := range q {
		if !q[i].match(ev) {
			return false
		}
	}
	return true
}

func (c *quickCmp) match(ev *event.Event) bool {
	v, _, ok := c.f.raw(ev)
	if !ok || len(v) == 0 || v[0] == '"' { // absent, or a string: expr's comparison fails
		return false
	}
	x, ok := c.f.number(ev)
	if !ok || math.IsInf(x, 0) { // not a number, or one encoding/json refuses
		return false
	}
	switch c.op {
	case "<":
		return x < c.n
	case "<=":
		return x <= c.n
	case ">":
		return x > c.n
	case ">=":
		return x >= c.n
	default:
		return x == c.n
	}
}
