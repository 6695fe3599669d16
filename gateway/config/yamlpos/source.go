package yamlpos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// parse checks that data is UTF-8 without control characters and parses its
// one YAML document into a node tree. It returns a nil tree, and no
// errors, for an empty document.
func parse(file string, data []byte) (root *yaml.Node, errs Errors) {
	if e, bad := checkText(file, data); bad {
		return nil, Errors{e}
	}
	// yaml.v3 panics internally and recovers its own errors; this catches
	// anything else it might throw on hostile input, so that Decode keeps
	// its promise never to panic.
	defer func() {
		if r := recover(); r != nil {
			root, errs = nil, Errors{{File: file, Pos: Pos{1, 1}, Msg: fmt.Sprintf("yaml parser failed: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{syntaxError(file, data, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		errs = append(errs, syntaxError(file, data, err))
	default:
		errs = append(errs, Error{File: file, Pos: posOf(&next), Msg: "a second YAML document starts here; the file must hold only one"})
	}
	return &doc, errs
}

// checkText finds the first byte that is not valid UTF-8 or the first
// character YAML does not allow, which yaml.v3 would reject without saying
// where.
func checkText(file string, data []byte) (Error, bool) {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return Error{File: file, Pos: Pos{1, 1}, Msg: "file is UTF-16; save it as UTF-8"}, true
	}
	body := bytes.TrimPrefix(data, []byte("\uFEFF"))
	line, col := 1, 1
	for i := 0; i < len(body); {
		r, size := utf8.DecodeRune(body[i:])
		var msg string
		switch {
		case r == utf8.RuneError && size == 1:
			msg = fmt.Sprintf("invalid UTF-8 byte 0x%02x", body[i])
		case !allowedChar(r):
			msg = fmt.Sprintf("character %U is not allowed in YAML", r)
		}
		if msg != "" {
			return Error{File: file, Pos: Pos{line, col}, Msg: msg}, true
		}
		if n := breakLen(body[i:]); n > 0 {
			line, col, i = line+1, 1, i+n
			continue
		}
		col, i = col+1, i+size
	}
	return Error{}, false
}

// allowedChar reports whether YAML (and yaml.v3's reader) allows r.
func allowedChar(r rune) bool {
	switch {
	case r == 0x09, r == 0x0A, r == 0x0D, r == 0x85:
		return true
	case 0x20 <= r && r <= 0x7E, 0xA0 <= r && r <= 0xD7FF:
		return true
	case 0xE000 <= r && r <= 0xFFFD, 0x10000 <= r && r <= 0x10FFFF:
		return true
	}
	return false
}

// breakLen returns the length of the line break at the start of b, or 0.
// Like yaml.v3, it counts CR LF, CR, LF, NEL, LS and PS as line breaks.
func breakLen(b []byte) int {
	switch {
	case bytes.HasPrefix(b, []byte("\r\n")):
		return 2
	case len(b) > 0 && (b[0] == '\r' || b[0] == '\n'):
		return 1
	case bytes.HasPrefix(b, []byte("\u0085")):
		return 2
	case bytes.HasPrefix(b, []byte("\u2028")), bytes.HasPrefix(b, []byte("\u2029")):
		return 3
	}
	return 0
}

// splitLines splits data into lines without their line breaks, the way
// yaml.v3 counts them: a leading byte order mark is not part of line 1.
func splitLines(data []byte) [][]byte {
	body := bytes.TrimPrefix(data, []byte("\uFEFF"))
	var lines [][]byte
	start := 0
	for i := 0; i < len(body); {
		n := breakLen(body[i:])
		if n == 0 {
			i++
			continue
		}
		lines = append(lines, body[start:i])
		i += n
		start = i
	}
	return append(lines, body[start:])
}

// sourceLine returns line number line (1-based) of data, or nil if there is
// no such line.
func sourceLine(data []byte, line int) []byte {
	lines := splitLines(data)
	if line < 1 || line > len(lines) {
		return nil
	}
	return lines[line-1]
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the yaml.v3 messages that come from its parser rather
// than its scanner. yaml.v3 reports their line 0-based (the scanner's
// errors are corrected to 1-based), so syntaxError adds one.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

var unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// syntaxError turns a yaml.v3 parse error into an Error. yaml.v3 gives at
// most a line, so the column is 1 except for an unknown anchor, which is
// found in the text.
func syntaxError(file string, data []byte, err error) Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, convErr := strconv.Atoi(m[1])
		if convErr != nil {
			line = 1
		}
		if parserProblems[m[2]] {
			line++
		}
		return Error{File: file, Pos: Pos{max(line, 1), 1}, Msg: m[2]}
	}
	pos := Pos{1, 1}
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("alias *%s refers to an anchor &%s that is not defined before it", m[1], m[1])
		if p, ok := findAlias(data, m[1]); ok {
			pos = p
		}
		return Error{File: file, Pos: pos, Msg: msg}
	}
	return Error{File: file, Pos: pos, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// findAlias returns the position of the first alias *name in data. It does
// not parse, so a *name inside a quoted string or a comment could fool it;
// it only sharpens the position of an error yaml.v3 gives without one.
func findAlias(data []byte, name string) (Pos, bool) {
	for n, text := range splitLines(data) {
		for off := 0; ; {
			i := bytes.Index(text[off:], []byte("*"+name))
			if i < 0 {
				break
			}
			end := off + i + 1 + len(name)
			if end == len(text) || strings.IndexByte(" \t,]}", text[end]) >= 0 {
				return Pos{n + 1, utf8.RuneCount(text[:off+i]) + 1}, true
			}
			off = end
		}
	}
	return Pos{}, false
}
