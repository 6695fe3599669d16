package devices

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Device is one registered MQTT device.
type Device struct {
	ID           string            // stable identity; the subject of its events
	Username     string            // MQTT CONNECT username; defaults to ID
	PasswordHash string            // bcrypt hash of the device's password; empty: no password login
	CertCN       string            // the Common Name of its client certificate; empty: no certificate login
	TopicPrefix  string            // the device may publish only under this prefix; defaults to devices/{id}/
	Subscribe    []string          // topic filters the device may subscribe to, besides its own prefix
	Kind         string            // its profile; empty: its payloads are JSON objects kept as they are
	Metadata     map[string]string // site, vehicle, owner…: master data for enrichment

	// anonymous marks the stand-in device of an anonymous client, which
	// may read the gateway's internal topics (see CanSubscribe).
	anonymous bool
}

// Anonymous reports whether d is the stand-in for an anonymous client.
func (d *Device) Anonymous() bool { return d.anonymous }

// Errors a caller can tell apart.
var (
	ErrUnknownDevice = errors.New("devices: unknown device")
	ErrBadPassword   = errors.New("devices: wrong password")
	ErrClientID      = errors.New("devices: client id does not belong to this device")
	// ErrCertUsername is a client certificate that names one device and a
	// CONNECT username that names another.
	ErrCertUsername = errors.New("devices: username does not match the client certificate's device")
)

// dummyHash is compared against when a username is unknown, so that a
// refusal takes as long whether or not the username exists. It is the hash
// of random bytes nobody kept, at bcrypt's default cost.
var dummyHash = []byte("$2a$10$Gv4qyR9ROFvWrERhrR8weOO0DNLcRaLEnZJqnkO/1rwT0Zc.xYL3q")

// DefaultPrefix is the topic prefix of a device that declares none.
func DefaultPrefix(id string) string { return "devices/" + id + "/" }

// Registry maps credentials to devices and decides what each may do. It is
// immutable after NewRegistry, so it is safe for concurrent use; reloading
// builds a new Registry and swaps it in.
type Registry struct {
	byUsername map[string]*Device
	byCN       map[string]*Device
	byID       map[string]*Device
	anonymous  bool

	// prefixes are the devices' topic prefixes, sorted, and byPrefix the
	// same as a set: an anonymous client's prefix must overlap none.
	prefixes []string
	byPrefix map[string]bool

	// verified caches the credentials that passed bcrypt, so that a device
	// reconnecting in a loop costs a hash lookup rather than ~50 ms of CPU.
	mu       sync.Mutex
	verified map[string][sha256.Size]byte
}

// NewRegistry builds a registry from a list of devices. allowAnonymous lets
// clients without a username connect; see Anonymous.
func NewRegistry(list []Device, allowAnonymous bool) (*Registry, error) {
	r := &Registry{byUsername: make(map[string]*Device, len(list)), anonymous: allowAnonymous,
		verified: make(map[string][sha256.Size]byte), byID: make(map[string]*Device, len(list)),
		byCN: make(map[string]*Device)}
	for i := range list {
		d := list[i]
		if !ValidID(d.ID) {
			return nil, fmt.Errorf("devices: device %d: invalid id %q", i, d.ID)
		}
		if _, dup := r.byID[d.ID]; dup {
			return nil, fmt.Errorf("devices: duplicate device id %q", d.ID)
		}
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
		r.byID[d.ID] = &d
		r.prefixes = append(r.prefixes, d.TopicPrefix)
		if d.CertCN != "" {
			if _, dup := r.byCN[d.CertCN]; dup {
				return nil, fmt.Errorf("devices: duplicate cert_cn %q", d.CertCN)
			}
			r.byCN[d.CertCN] = &d
		}
	}
	if err := r.indexPrefixes(); err != nil {
		return nil, err
	}
	return r, nil
}

// indexPrefixes sorts the topic prefixes and refuses two devices whose
// prefixes nest (one could publish into the other's topics) and a prefix
// in the gateway's internal topics (its owner could publish there, and
// read them without an explicit subscribe entry).
func (r *Registry) indexPrefixes() error {
	slices.Sort(r.prefixes)
	r.byPrefix = make(map[string]bool, len(r.prefixes))
	for i, p := range r.prefixes {
		if InternalTopic(p) {
			return fmt.Errorf("devices: topic prefix %q is in the gateway's internal topics", p)
		}
		// Sorted, a prefix of any later one is a prefix of the next.
		if i > 0 && strings.HasPrefix(p, r.prefixes[i-1]) {
			return fmt.Errorf("devices: topic prefix %q lies within %q of another device", p, r.prefixes[i-1])
		}
		r.byPrefix[p] = true
	}
	return nil
}

// Len is the number of registered devices.
func (r *Registry) Len() int { return len(r.byUsername) }

// Authenticate checks a CONNECT's credentials. A device's client id must be
// its id, or begin with its id and '-' (truck-7, truck-7-gps), so that one
// device can neither take over another's session nor pass for it.
//
// An empty username is the anonymous client clientID when the registry
// allows anonymous access; its client id must not be, or begin with, a
// registered device's id, and its prefix (devices/{client id}/) must
// neither contain nor lie within a registered device's topic prefix.
func (r *Registry) Authenticate(clientID, username string, password []byte) (*Device, error) {
	if username == "" {
		if r.anonymous && ValidID(clientID) && !r.claimed(clientID) {
			return Anonymous(clientID), nil
		}
		return nil, ErrUnknownDevice
	}
	d, ok := r.byUsername[username]
	if !ok || d.PasswordHash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, password)
		return nil, ErrUnknownDevice
	}
	if !ownsClientID(d, clientID) {
		return nil, ErrClientID
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

// AuthenticateCert admits the device whose cert_cn is cn, the Common Name
// of a client certificate the TLS handshake has already verified against
// the client CA (and the revocation list). No password is needed. The
// client id must be the device's, as for Authenticate; a username, if the
// client sends one, must be the device's. A cn no device claims is
// ErrUnknownDevice: the caller may then try the password.
func (r *Registry) AuthenticateCert(clientID, username, cn string) (*Device, error) {
	d, ok := r.byCN[cn]
	if !ok || cn == "" {
		return nil, ErrUnknownDevice
	}
	if username != "" && username != d.Username {
		return nil, ErrCertUsername
	}
	if !ownsClientID(d, clientID) {
		return nil, ErrClientID
	}
	return d, nil
}

// ownsClientID reports whether clientID is d's id or in its space
// ({id}-…), so that no device can take over another's session.
func ownsClientID(d *Device, clientID string) bool {
	return clientID == d.ID || strings.HasPrefix(clientID, d.ID+"-")
}

// Devices returns the registered devices, sorted by id. They are shared:
// the caller must not change them.
func (r *Registry) Devices() []*Device {
	out := make([]*Device, 0, len(r.byUsername))
	for _, d := range r.byUsername {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Device returns the registered device with id.
func (r *Registry) Device(id string) (*Device, bool) {
	d, ok := r.byID[id]
	return d, ok
}

// claimed reports whether clientID is a registered device's id or falls in
// a registered device's client id space ({id}-…), or whether its default
// prefix overlaps a registered device's topic prefix (device sensor-1
// publishing under devices/plant1/ claims the anonymous client id plant1).
func (r *Registry) claimed(clientID string) bool {
	if _, ok := r.byID[clientID]; ok {
		return true
	}
	for i := 0; i < len(clientID); i++ {
		if _, ok := r.byID[clientID[:i]]; ok && clientID[i] == '-' {
			return true
		}
	}
	return r.overlaps(DefaultPrefix(clientID))
}

// overlaps reports whether a topic prefix is, contains or lies within a
// registered device's prefix: in O(len(p)) map lookups and one binary
// search, however many devices there are.
func (r *Registry) overlaps(p string) bool {
	for i := 1; i <= len(p); i++ {
		if r.byPrefix[p[:i]] { // p lies within a device's prefix
			return true
		}
	}
	i, _ := slices.BinarySearch(r.prefixes, p) // the first prefix ≥ p: if any lies within p, this one does
	return i < len(r.prefixes) && strings.HasPrefix(r.prefixes[i], p)
}

// ValidID reports whether s can be a device id: non-empty, at most 128
// bytes of letters, digits, '.', '_', ':' and '-'. Ids become topic levels
// and CloudEvents sources, so nothing else is allowed.
func ValidID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
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
// and may subscribe to any topic except the broker's $SYS tree (including
// the gateway's dead letters: anonymous access is for demos and benches).
func Anonymous(clientID string) *Device {
	return &Device{ID: clientID, TopicPrefix: DefaultPrefix(clientID), Subscribe: anySubscription, anonymous: true}
}

// anySubscription is what an anonymous device may subscribe to, shared
// rather than allocated on every ACL check.
var anySubscription = []string{"#", "$flowgate/#"} // "#" does not reach $ topics; dead letters live under $flowgate

// CanPublish reports whether d may publish to topic: only under its prefix.
func (d *Device) CanPublish(topic string) bool {
	return len(topic) > len(d.TopicPrefix) && strings.HasPrefix(topic, d.TopicPrefix)
}

// CanSubscribe reports whether d may subscribe to filter, or receive a
// message on the topic filter: under its own prefix, or within one of its
// allowed filters. The broker asks both when a device subscribes and for
// every message it would deliver.
//
// The gateway's internal topics (flowgate/…, $flowgate/…, and $SYS, which
// no wildcard reaches anyway) are readable by a registered device only
// through an allowed filter that names them literally: "flowgate/catalog"
// or "flowgate/#", never "#" or "+/catalog". So a device allowed "#" may
// subscribe to "#" and gets every device topic, but no dead letters.
func (d *Device) CanSubscribe(filter string) bool {
	if strings.HasPrefix(filter, d.TopicPrefix) {
		return true
	}
	internal := !d.anonymous && InternalTopic(filter)
	for _, allowed := range d.Subscribe {
		if internal && !InternalTopic(allowed) {
			continue
		}
		if FilterCovers(allowed, filter) {
			return true
		}
	}
	return false
}

// InternalTopic reports whether a topic or filter lies in the gateway's
// own tree: its first level is "flowgate" or begins with '$' ($SYS,
// $flowgate).
func InternalTopic(s string) bool {
	first, _, _ := strings.Cut(s, "/")
	return first == "flowgate" || strings.HasPrefix(first, "$")
}

// HashPassword returns the bcrypt hash of password, for the registry.
func HashPassword(password []byte) (string, error) {
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("devices: %w", err)
	}
	return string(h), nil
}
