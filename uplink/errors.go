package uplink

import (
	"errors"
	"fmt"
)

// Errors a caller may need to act on.
var (
	// ErrClosed is returned by Enqueue once Close has begun, and by Run if
	// it is called after Close.
	ErrClosed = errors.New("uplink: closed")

	// ErrUndelivered is wrapped by the error Close returns when events were
	// still awaiting a PUBACK at its deadline, or when Run was not running
	// to deliver them. The message says how many.
	ErrUndelivered = errors.New("uplink: events left undelivered")

	// ErrInvalidEvent is wrapped by the error Enqueue returns for an event
	// that cannot be published: no id or one MQTT cannot carry, a topic the
	// template makes invalid (empty, wildcards, NUL, not UTF-8, too long),
	// or more than an MQTT packet holds (256 MiB).
	ErrInvalidEvent = errors.New("uplink: invalid event")

	// ErrUnknownClass is returned by EnqueueClass for a class not in
	// Options.Classes.
	ErrUnknownClass = errors.New("uplink: unknown class")

	// ErrRunning is returned by Run when the uplink is already running or
	// has already run.
	ErrRunning = errors.New("uplink: Run called twice")
)

// OptionError reports an invalid Options field. Key is the field's name in
// configuration files (snake_case), so that a config loader can point at the
// offending line.
type OptionError struct {
	Key    string // url, topic, keep_alive, ...
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("uplink: %s: %s", e.Key, e.Reason)
}

func optionErr(key, format string, args ...any) error {
	return &OptionError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// errFull is returned by outbox.Append when the outbox holds as many records
// as it may; Enqueue waits for space.
var errFull = errors.New("uplink: queue full")
