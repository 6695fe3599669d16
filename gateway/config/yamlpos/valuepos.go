package yamlpos

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// ValuePos returns the position in the file of byte offset in the decoded
// string value at path, so that a problem found inside a value (a parse
// error in a filter expression, say) can point at the exact character:
//
//	filter: "a > b"
//
// ValuePos("filter", 2) is the position of the >. It accounts for quotes,
// escape sequences and ${VAR} expansion (an offset inside a substituted
// value maps to its ${). An offset past the end of the value maps to just
// after it.
//
// It works for plain and quoted scalars as far as their first line goes;
// for an offset beyond it, for block scalars (| and >) and for non-scalars it
// returns Pos(path). For a value written as an alias it points into the
// anchored text, since that is where the characters are.
func (d *Doc) ValuePos(path string, offset int) Pos {
	e, ok := d.lookup(path)
	if !ok {
		return Pos{}
	}
	n := e.node
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.ScalarNode {
		return e.val
	}
	raw := offset
	if e.from != nil {
		raw = e.from[clamp(offset, 0, len(e.from)-1)]
	}
	col, ok := scalarColumn(sourceLine(d.src, n.Line), n, clamp(raw, 0, len(n.Value)))
	if !ok {
		return e.val
	}
	return Pos{n.Line, col}
}

func clamp(x, lo, hi int) int { return max(lo, min(x, hi)) }

// scalarColumn returns the column in line of byte offset raw in the value
// of scalar n, which starts on that line.
func scalarColumn(line []byte, n *yaml.Node, raw int) (int, bool) {
	first, ok := byteOfColumn(line, n.Column)
	if !ok {
		return 0, false
	}
	start := skipProperties(line, first, n)
	col := n.Column + utf8.RuneCount(line[first:start])
	text := line[start:]
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		return quotedColumn(text, col, raw, doubleQuotedUnit)
	case n.Style&yaml.SingleQuotedStyle != 0:
		return quotedColumn(text, col, raw, singleQuotedUnit)
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return 0, false
	}
	for raw > 0 && raw < len(n.Value) && !utf8.RuneStart(n.Value[raw]) {
		raw--
	}
	if !bytes.HasPrefix(text, []byte(n.Value[:raw])) {
		return 0, false
	}
	return col + utf8.RuneCountInString(n.Value[:raw]), true
}

// byteOfColumn returns the byte index of 1-based character column col.
func byteOfColumn(line []byte, col int) (int, bool) {
	i := 0
	for c := 1; c < col; c++ {
		if i >= len(line) {
			return 0, false
		}
		_, size := utf8.DecodeRune(line[i:])
		i += size
	}
	return i, i <= len(line)
}

// skipProperties skips an anchor (&a) and a tag (!t) before a scalar, which
// yaml.v3 counts as the start of the node.
func skipProperties(line []byte, i int, n *yaml.Node) int {
	if n.Anchor == "" && n.Style&yaml.TaggedStyle == 0 {
		return i
	}
	for i < len(line) && (line[i] == '&' || line[i] == '!') {
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
	}
	return i
}

// unitFunc measures the first unit of a quoted scalar's source text: one
// character or one escape. It returns the bytes and characters the unit
// takes in the source and the bytes it yields in the value; end is true at
// the closing quote, ok false if the text cannot be followed.
type unitFunc func(src []byte) (srcBytes, srcChars, valBytes int, end, ok bool)

// quotedColumn walks the quoted scalar starting at text[0] (the opening
// quote, at column col) to value offset raw.
func quotedColumn(text []byte, col, raw int, unit unitFunc) (int, bool) {
	if len(text) == 0 {
		return 0, false
	}
	i, col := 1, col+1
	for done := 0; done < raw; {
		if i >= len(text) {
			return 0, false // the value goes on to the next line
		}
		srcBytes, srcChars, valBytes, end, ok := unit(text[i:])
		if !ok {
			return 0, false
		}
		if end || done+valBytes > raw {
			break // raw is inside this unit: point at its start
		}
		done += valBytes
		i += srcBytes
		col += srcChars
	}
	return col, true
}

func singleQuotedUnit(src []byte) (int, int, int, bool, bool) {
	if bytes.HasPrefix(src, []byte("''")) {
		return 2, 2, 1, false, true
	}
	if src[0] == '\'' {
		return 1, 1, 0, true, true
	}
	_, size := utf8.DecodeRune(src)
	return size, 1, size, false, true
}

func doubleQuotedUnit(src []byte) (int, int, int, bool, bool) {
	switch {
	case src[0] == '"':
		return 1, 1, 0, true, true
	case src[0] != '\\':
		_, size := utf8.DecodeRune(src)
		return size, 1, size, false, true
	case len(src) < 2:
		return 0, 0, 0, false, false
	}
	if hexLen := escapeHexLen(src[1]); hexLen > 0 {
		if len(src) < 2+hexLen {
			return 0, 0, 0, false, false
		}
		r, err := strconv.ParseUint(string(src[2:2+hexLen]), 16, 32)
		if err != nil || utf8.RuneLen(rune(r)) < 0 {
			return 0, 0, 0, false, false
		}
		return 2 + hexLen, 2 + hexLen, utf8.RuneLen(rune(r)), false, true
	}
	switch src[1] {
	case '0', 'a', 'b', 't', '\t', 'n', 'v', 'f', 'r', 'e', ' ', '"', '/', '\\':
		return 2, 2, 1, false, true
	case 'N', '_':
		return 2, 2, 2, false, true
	case 'L', 'P':
		return 2, 2, 3, false, true
	}
	return 0, 0, 0, false, false
}

// escapeHexLen returns how many hex digits follow \x, \u or \U.
func escapeHexLen(c byte) int {
	switch c {
	case 'x':
		return 2
	case 'u':
		return 4
	case 'U':
		return 8
	}
	return 0
}
