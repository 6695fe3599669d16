package devices

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Device is one registered MQTT device.
type Device struct {
	ID           string            // stable identity; the subject of its events
	Username     string            // MQTT CONNECT username; defaults to ID
	PasswordHash string            // bcrypt hash of the device's password
	TopicPrefix  string            // the device may publish only under this prefix; defaults to devices/{id}/
	Subscribe    []string          // topic filters the device may subscribe to, besides its own prefix
	Metadata     map[string]string // site, vehicle, owner…: master data for enrichment
}

// Errors a caller can tell apart.
var (
	ErrUnknownDevice = errors.New("devices: unknown device")
	ErrBadPassword   = errors.New("devices: wrong password")
)

// DefaultPrefix is the topic prefix of a device that declares none.
func DefaultPrefix(id string) string { return "devices/" + id + "/" }

// Registry maps credentials to devices and decides what each may do. It is
// immutable after NewRegistry, so it is safe for concurrent use; reloading
// builds a new Registry and swaps it in.
type Registry struct {
	byUsername map[string]*Device
	anonymous  bool

	// verified caches the credentials that passed bcrypt, so that a device
	// reconnecting in a loop costs a hash lookup rather than ~50 ms of CPU.
	mu       sync.Mutex
	verified map[string][sha256.Size]byte
}

// NewRegistry builds a registry from a list of devices. allowAnonymous lets
// clients without a username connect; see Anonymous.
func NewRegistry(list []Device, allowAnonymous bool) (*Registry, error) {
	r := &Registry{byUsername: make(map[string]*Device, len(list)), anonymous: allowAnonymous,
		verified: make(map[string][sha256.Size]byte)}
	ids := make(map[string]bool, len(list))
	for i := range list {
		d := list[i]
		if d.ID == "" {
			return nil, fmt.Errorf("devices: device %d has no id", i)
		}
		if ids[d.ID] {
			return nil, fmt.Errorf("devices: duplicate device id %q", d.ID)
		}
		ids[d.ID] = true
		if d.Username == "" {
			d.Username = d.ID
		}
		if d.TopicPrefix == "" {
			d.TopicPrefix = DefaultPrefix(d.ID)
		}
		if _, dup := r.byUsername[d.Username]; dup {
			return nil, fmt.Errorf("devices: duplicate username %q", d.Username)
		}
		r.byUsername[d.Username] = &d
	}
	return r, nil
}

// Len is the number of registered devices.
func (r *Registry) Len() int { return len(r.byUsername) }

// Authenticate checks a CONNECT's credentials. An empty username is the
// anonymous client clientID when the registry allows anonymous access.
func (r *Registry) Authenticate(clientID, username string, password []byte) (*Device, error) {
	if username == "" {
		if r.anonymous && clientID != "" {
			return Anonymous(clientID), nil
		}
		return nil, ErrUnknownDevice
	}
	d, ok := r.byUsername[username]
	if !ok || d.PasswordHash == "" {
		return nil, ErrUnknownDevice
	}
	sum := sha256.Sum256(password)
	r.mu.Lock()
	cached, hit := r.verified[username]
	r.mu.Unlock()
	if hit && cached == sum {
		return d, nil
	}
	if bcrypt.CompareHashAndPassword([]byte(d.PasswordHash), password) != nil {
		return nil, ErrBadPassword
	}
	r.mu.Lock()
	r.verified[username] = sum
	r.mu.Unlock()
	return d, nil
}

// Lookup returns the device that authenticated as username (or, for an
// anonymous client, the anonymous device named after its client id).
func (r *Registry) Lookup(clientID, username string) (*Device, bool) {
	if username == "" {
		if r.anonymous {
			return Anonymous(clientID), true
		}
		return nil, false
	}
	d, ok := r.byUsername[username]
	return d, ok
}

// Anonymous is the device an anonymous client is treated as: its client id
// is its identity, it publishes under devices/{client id}/ like any device
// and may subscribe to any topic except the broker's $SYS tree.
func Anonymous(clientID string) *Device {
	return &Device{ID: clientID, TopicPrefix: DefaultPrefix(clientID), Subscribe: []string{"#"}}
}

// CanPublish reports whether d may publish to topic: only under its prefix.
func (d *Device) CanPublish(topic string) bool {
	return len(topic) > len(d.TopicPrefix) && strings.HasPrefix(topic, d.TopicPrefix)
}

// CanSubscribe reports whether d may subscribe to filter: under its own
// prefix, or within one of its allowed filters.
func (d *Device) CanSubscribe(filter string) bool {
	if strings.HasPrefix(filter, d.TopicPrefix) {
		return true
	}
	for _, allowed := range d.Subscribe {
		if FilterCovers(allowed, filter) {
			return true
		}
	}
	return false
}

// HashPassword returns the bcrypt hash of password, for the registry.
func HashPassword(password []byte) (string, error) {
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("devices: %w", err)
	}
	return string(h), nil
}
