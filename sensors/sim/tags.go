package sim

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Tag is an RFID tag that appears at a reader After the reader started,
// stays in its field For, and comes back Every (once if Every is 0).
type Tag struct {
	UID   []byte
	After time.Duration
	For   time.Duration
	Every time.Duration
}

// Tags is a simulated RFID reader with a schedule of tags.
type Tags struct {
	tags  []Tag
	now   func() time.Time
	start time.Time
}

// NewTags starts a simulated reader at now().
func NewTags(tags []Tag, now func() time.Time) *Tags {
	return &Tags{tags: tags, now: now, start: now()}
}

// ReadUID returns the UID of the first scheduled tag in the field now, or
// nil when there is none, as mfrc522.Reader does.
func (t *Tags) ReadUID() ([]byte, error) {
	d := t.now().Sub(t.start)
	for _, tag := range t.tags {
		if tag.present(d) {
			return tag.UID, nil
		}
	}
	return nil, nil
}

func (tag *Tag) present(d time.Duration) bool {
	d -= tag.After
	if d < 0 {
		return false
	}
	if tag.Every > 0 {
		d %= tag.Every
	}
	return d < tag.For
}

// Close does nothing: there is no hardware to stop.
func (t *Tags) Close() error { return nil }

func (t *Tags) String() string { return "sim-rfid" }

// ParseUID reads a tag UID written in hex, with or without ':' or '-'
// between bytes: 4, 7 or 10 bytes, the three UID sizes of ISO 14443A.
func ParseUID(s string) ([]byte, error) {
	clean := strings.NewReplacer(":", "", "-", "").Replace(s)
	uid, err := hex.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("sim: tag %q is not hex", s)
	}
	switch len(uid) {
	case 4, 7, 10:
		return uid, nil
	}
	return nil, fmt.Errorf("sim: tag %q is %d bytes; ISO 14443A UIDs are 4, 7 or 10", s, len(uid))
}
