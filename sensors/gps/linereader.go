package gps

import (
	"bytes"
	"errors"
	"io"
)

// Errors the line reader returns between lines; neither ends the stream.
var (
	// errNoData is a read that returned nothing and no error: a serial
	// port's read timeout. The caller checks its context and deadline.
	errNoData = errors.New("gps: no data")
	// errTooLong is a line longer than the limit; its bytes were dropped.
	errTooLong = errors.New("gps: line too long")
)

// lineReader splits a byte stream into lines without ever holding more
// than a bounded buffer, whatever arrives: a receiver babbling binary at
// the wrong baud rate cannot grow it.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int  // buf[start:end] is read and not yet returned
	max        int  // longest line returned
	discarding bool // inside a line already known to be too long
	skipFirst  bool // drop the next line silently (after a resync)
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: r, buf: make([]byte, 2*max+512), max: max}
}

// next returns the next line without its "\n" or "\r\n"; empty lines are
// skipped. The slice is valid until the next call.
func (l *lineReader) next() ([]byte, error) {
	for {
		line, ok, err := l.cut()
		switch {
		case !ok:
			if err := l.fill(); err != nil {
				return nil, err
			}
		case err != nil || len(line) > 0:
			return line, err
		}
	}
}

// cut takes the next complete line out of the buffer; ok is false when
// there is none. A line dropped after a resync is returned empty.
func (l *lineReader) cut() (line []byte, ok bool, err error) {
	i := bytes.IndexByte(l.buf[l.start:l.end], '\n')
	if i < 0 {
		if l.end-l.start > l.max {
			// No end in sight: drop what we have and the rest of the line.
			l.discarding = true
			l.start, l.end = 0, 0
		}
		return nil, false, nil
	}
	line = bytes.TrimSuffix(l.buf[l.start:l.start+i], []byte{'\r'})
	l.start += i + 1
	switch {
	case l.skipFirst:
		l.skipFirst, l.discarding = false, false
		return nil, true, nil
	case l.discarding || len(line) > l.max:
		l.discarding = false
		return nil, true, errTooLong
	}
	return line, true, nil
}

// fill reads more bytes into the buffer, moving what is left to its start.
func (l *lineReader) fill() error {
	if l.start > 0 {
		l.end = copy(l.buf, l.buf[l.start:l.end])
		l.start = 0
	}
	n, err := l.r.Read(l.buf[l.end:])
	l.end += n
	switch {
	case n > 0:
		return nil
	case err != nil:
		return err
	}
	return errNoData
}

// resync forgets what is buffered and drops the next line, which may begin
// in the middle: for after the port's input buffer was discarded.
func (l *lineReader) resync() {
	l.start, l.end = 0, 0
	l.discarding = false
	l.skipFirst = true
}
