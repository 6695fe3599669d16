package gps

// lineKind is what a quick look at a line says, before parsing it.
type lineKind int

const (
	lineSentence    lineKind = iota // looks like NMEA with a correct checksum
	lineGarbage                     // not NMEA at all
	lineBadChecksum                 // NMEA with a missing or wrong checksum
)

// checkSentence checks a line's shape and checksum without allocating:
// "$", printable ASCII, "*" and two hex digits that are the XOR of every
// byte between "$" and "*". go-nmea checks the checksum too, but reports it
// only as text; this tells the two kinds of bad line apart for the
// counters.
func checkSentence(line []byte) lineKind {
	if len(line) < 2 || line[0] != '$' {
		return lineGarbage
	}
	var sum byte
	for i := 1; i < len(line); i++ {
		c := line[i]
		if c < 0x20 || c > 0x7e {
			return lineGarbage
		}
		if c == '*' {
			return checkSum(sum, line[i+1:])
		}
		sum ^= c
	}
	return lineBadChecksum
}

func checkSum(sum byte, hex []byte) lineKind {
	if len(hex) != 2 {
		return lineBadChecksum
	}
	hi, ok1 := unhex(hex[0])
	lo, ok2 := unhex(hex[1])
	if !ok1 || !ok2 || hi<<4|lo != sum {
		return lineBadChecksum
	}
	return lineSentence
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
