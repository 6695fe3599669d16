package devices

import "strings"

// MatchTopic reports whether an MQTT topic name matches a topic filter that
// may contain the wildcards '+' (one level) and '#' (this level and all
// below, last level only). It does not allocate.
func MatchTopic(filter, topic string) bool {
	// Wildcards never match topics beginning with '$' [MQTT-4.7.2-1].
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := cutLevel(filter)
		if fl == "#" {
			return true
		}
		tl, trest, tmore := cutLevel(topic)
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a" itself.
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// FilterCovers reports whether every topic that filter sub can match is
// also matched by filter allowed: a device asking to subscribe to sub is
// within what it is allowed.
func FilterCovers(allowed, sub string) bool {
	if len(sub) > 0 && sub[0] == '$' && len(allowed) > 0 && (allowed[0] == '+' || allowed[0] == '#') {
		return false // as in MatchTopic: wildcards do not reach $SYS
	}
	for {
		al, arest, amore := cutLevel(allowed)
		if al == "#" {
			return true
		}
		sl, srest, smore := cutLevel(sub)
		switch {
		case sl == "#":
			return false // only '#' covers '#'
		case al != "+" && al != sl:
			return false // literal level must match exactly ('+' is covered only by '+')
		}
		if !amore || !smore {
			return amore == smore || (amore && arest == "#")
		}
		allowed, sub = arest, srest
	}
}

// cutLevel splits the first level off a topic or filter.
func cutLevel(s string) (level, rest string, more bool) {
	return strings.Cut(s, "/")
}

// ValidFilter reports whether s is a syntactically valid MQTT topic filter.
func ValidFilter(s string) bool {
	if s == "" {
		return false
	}
	for {
		l, rest, more := cutLevel(s)
		if strings.ContainsAny(l, "+#") && l != "+" && l != "#" {
			return false
		}
		if l == "#" && more {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}
