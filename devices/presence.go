package devices

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Presence tracks which devices are online: a device is online while at
// least one of its connections (truck-7, truck-7-gps) is, and it keeps, per
// device, when it was last seen and how many messages it sent. It is safe
// for concurrent use: the broker calls it from every client's goroutine.
//
// Registered devices are kept for the life of the gateway (their number is
// bounded by the registry); an anonymous client is forgotten when it goes
// offline, so churning client ids cannot grow memory.
type Presence struct {
	mu      sync.RWMutex
	devices map[string]*presenceState // by device id
	conns   map[any]*connState        // by the broker's connection handle
	online  atomic.Int64
}

// presenceState is one device's presence.
type presenceState struct {
	id        string
	anonymous bool
	conns     map[*connState]struct{} // its open connections, so that its state needs no scan of all
	handover  bool                    // its last connection was taken over by a new one not yet established
	since     time.Time               // online since, or offline since
	lastSeen  atomic.Int64
	messages  atomic.Uint64
	connects  uint64
}

// connState is one connection of a device.
type connState struct {
	dev      *presenceState
	clientID string
	remote   string
	auth     string
	will     bool // its Will was published
}

// DeviceState is a device's presence at one moment, for /api/devices.
type DeviceState struct {
	ID        string    `json:"id"`
	Anonymous bool      `json:"anonymous,omitempty"`
	Online    bool      `json:"online"`
	Since     time.Time `json:"since,omitzero"` // when it came online or went offline
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Messages  uint64    `json:"messages"`
	Connects  uint64    `json:"connects"`
	Clients   []Client  `json:"clients,omitempty"` // its open connections
}

// Client is one open connection of a device.
type Client struct {
	ClientID string `json:"client_id"`
	Remote   string `json:"remote"`
	Auth     string `json:"auth"` // password, certificate or anonymous
}

// NewPresence returns an empty Presence.
func NewPresence() *Presence {
	return &Presence{devices: map[string]*presenceState{}, conns: map[any]*connState{}}
}

// Connected records that connection conn (any comparable handle, unique
// while the connection lives) of device d is established. It reports
// whether d came online with it.
func (p *Presence) Connected(d *Device, conn any, c Client, now time.Time) (cameOnline bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.devices[d.ID]
	if !ok {
		s = &presenceState{id: d.ID, anonymous: d.anonymous, conns: map[*connState]struct{}{}}
		p.devices[d.ID] = s
	}
	cs := &connState{dev: s, clientID: c.ClientID, remote: c.Remote, auth: c.Auth}
	p.conns[conn] = cs
	s.conns[cs] = struct{}{}
	s.connects++
	s.lastSeen.Store(now.UnixNano())
	cameOnline = len(s.conns) == 1 && !s.handover
	s.handover = false
	if cameOnline {
		s.since = now.UTC()
		p.online.Add(1)
	}
	return cameOnline
}

// WillSent records that the broker published conn's Will.
func (p *Presence) WillSent(conn any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[conn]; ok {
		c.will = true
	}
}

// Gone is what Disconnected reports about a connection that ended.
type Gone struct {
	Device   string // the device's id; "" for a connection Presence never saw
	ClientID string
	Will     bool // its Will was published
	Offline  bool // the device went offline with it
}

// Disconnected records that connection conn ended. takenOver says a new
// connection with the same client id replaced it: the device does not go
// offline in between, even if the new one is not established yet.
func (p *Presence) Disconnected(conn any, takenOver bool, now time.Time) Gone {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[conn]
	if !ok {
		return Gone{}
	}
	delete(p.conns, conn)
	s := c.dev
	delete(s.conns, c)
	s.lastSeen.Store(now.UnixNano())
	g := Gone{Device: s.id, ClientID: c.clientID, Will: c.will}
	switch {
	case len(s.conns) > 0:
	case takenOver:
		s.handover = true
	default:
		g.Offline = true
		s.since = now.UTC()
		p.online.Add(-1)
		if s.anonymous {
			delete(p.devices, s.id)
		}
	}
	return g
}

// Published counts a message from device id, received at now.
func (p *Presence) Published(id string, now time.Time) {
	p.mu.RLock()
	s, ok := p.devices[id]
	p.mu.RUnlock()
	if ok {
		s.messages.Add(1)
		s.lastSeen.Store(now.UnixNano())
	}
}

// Online is the number of devices online.
func (p *Presence) Online() int64 { return p.online.Load() }

// State returns device id's presence; a device never seen is offline with
// zero counters.
func (p *Presence) State(id string) DeviceState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s, ok := p.devices[id]
	if !ok {
		return DeviceState{ID: id}
	}
	return s.stateLocked()
}

// States returns the presence of every device seen, sorted by id.
func (p *Presence) States() []DeviceState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]DeviceState, 0, len(p.devices))
	for _, s := range p.devices {
		out = append(out, s.stateLocked())
	}
	slices.SortFunc(out, func(a, b DeviceState) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// stateLocked is s at this moment; the caller holds Presence's lock. It
// costs s's own connections, not every connection of the gateway.
func (s *presenceState) stateLocked() DeviceState {
	st := DeviceState{ID: s.id, Anonymous: s.anonymous, Online: len(s.conns) > 0 || s.handover, Since: s.since,
		Messages: s.messages.Load(), Connects: s.connects}
	if ns := s.lastSeen.Load(); ns != 0 {
		st.LastSeen = time.Unix(0, ns).UTC()
	}
	for c := range s.conns {
		st.Clients = append(st.Clients, Client{ClientID: c.clientID, Remote: c.remote, Auth: c.auth})
	}
	slices.SortFunc(st.Clients, func(a, b Client) int { return strings.Compare(a.ClientID, b.ClientID) })
	return st
}
