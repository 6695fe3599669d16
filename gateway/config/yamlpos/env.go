package yamlpos

import (
	"fmt"
	"strings"
)

// expand replaces each ${NAME} in s with lookup(NAME) and each $${ with a
// literal ${. It returns the result and a list of problems (unset or badly
// named variables, a ${ without its }).
//
// When s had anything to expand, from maps each byte offset in the result,
// and the offset just past its end, to the offset in s it came from: a
// substituted value maps to its ${, so ValuePos can point into the file.
// Otherwise from is nil, meaning offsets are unchanged.
func expand(s string, lookup func(string) (string, bool)) (out string, from []int, problems []string) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	from = make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			from = append(from, i+1, i+2)
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				problems = append(problems, fmt.Sprintf("%s has no closing } (write $${ for a literal ${)", quote(s[i:])))
				i = len(s)
				break
			}
			val, problem := lookupVar(s[i+2:i+end], lookup)
			if problem != "" {
				problems = append(problems, problem)
			}
			b.WriteString(val)
			for range len(val) {
				from = append(from, i)
			}
			i += end + 1
		default:
			b.WriteByte(s[i])
			from = append(from, i)
			i++
		}
	}
	return b.String(), append(from, len(s)), problems
}

// lookupVar returns the value of environment variable name, or a problem.
func lookupVar(name string, lookup func(string) (string, bool)) (string, string) {
	if !validVarName(name) {
		return "", fmt.Sprintf("invalid environment variable name %s in ${...}", quote(name))
	}
	if lookup == nil {
		return "", fmt.Sprintf("environment variable %q is not set", name)
	}
	val, ok := lookup(name)
	if !ok {
		return "", fmt.Sprintf("environment variable %q is not set", name)
	}
	return val, ""
}

// validVarName reports whether name is a shell-style variable name:
// letters, digits and underscores, not starting with a digit.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
