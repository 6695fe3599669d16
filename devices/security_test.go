package devices

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func certRegistry(t *testing.T) *Registry {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry([]Device{
		{ID: "cam-1", CertCN: "cam-1.example"},                                    // certificate only
		{ID: "gw-2", Username: "gw2", PasswordHash: string(hash), CertCN: "gw-2"}, // either
		{ID: "dash", PasswordHash: string(hash), Subscribe: []string{"#", "flowgate/catalog"}},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuthenticateCert(t *testing.T) {
	r := certRegistry(t)
	for _, c := range []struct {
		client, user, cn string
		wantID           string
		wantErr          error
	}{
		{"cam-1", "", "cam-1.example", "cam-1", nil},
		{"cam-1-video", "cam-1", "cam-1.example", "cam-1", nil},
		{"cam-1", "gw2", "cam-1.example", "", ErrCertUsername}, // the cert names cam-1, the username gw-2
		{"gw-2", "", "cam-1.example", "", ErrClientID},         // another device's client id
		{"cam-1", "", "nobody", "", ErrUnknownDevice},          // falls back to the password
		{"cam-1", "", "", "", ErrUnknownDevice},
		{"gw-2", "gw2", "gw-2", "gw-2", nil},
	} {
		d, err := r.AuthenticateCert(c.client, c.user, c.cn)
		if !errors.Is(err, c.wantErr) || (err == nil && d.ID != c.wantID) {
			t.Errorf("AuthenticateCert(%q, %q, %q) = %v, %v; want %s, %v", c.client, c.user, c.cn, d, err, c.wantID, c.wantErr)
		}
	}
	// A device without a password cannot log in with one.
	if _, err := r.Authenticate("cam-1", "cam-1", []byte("")); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("password login of a certificate-only device: %v", err)
	}
	if _, err := NewRegistry([]Device{{ID: "a", CertCN: "x"}, {ID: "b", CertCN: "x"}}, false); err == nil {
		t.Error("duplicate cert_cn accepted")
	}
}

func TestInternalTopicsNeedExplicitACL(t *testing.T) {
	r := certRegistry(t)
	dash, _ := r.Device("dash")
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{"#", true},                    // subscribing to everything is allowed…
		{"devices/truck-7/env", true},  // …and delivers device topics
		{"flowgate/deadletter", false}, // …but not the gateway's own
		{"flowgate/#", false},
		{"+/deadletter", true},     // may subscribe, but a delivery is checked on its topic:
		{"flowgate/catalog", true}, // named explicitly in its list
		{"$SYS/broker/uptime", false},
		{"$flowgate/deadletter/x", false},
	} {
		if got := dash.CanSubscribe(c.filter); got != c.want {
			t.Errorf("dash.CanSubscribe(%q) = %v, want %v", c.filter, got, c.want)
		}
	}
	anon := Anonymous("viewer")
	if !anon.CanSubscribe("flowgate/deadletter") || anon.CanSubscribe("$SYS/x") {
		t.Error("an anonymous client (demos) reads dead letters but not $SYS")
	}
	if got := r.Devices(); len(got) != 3 || got[0].ID != "cam-1" || got[2].ID != "gw-2" {
		t.Errorf("Devices() = %v", got)
	}
}

func TestPresence(t *testing.T) {
	p := NewPresence()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := &Device{ID: "truck-7"}
	a, b, c := new(int), new(int), new(int) // connection handles
	if !p.Connected(d, a, Client{ClientID: "truck-7"}, t0) {
		t.Fatal("first connection: not online")
	}
	if p.Connected(d, b, Client{ClientID: "truck-7-gps"}, t0) {
		t.Error("second connection of an online device: online again")
	}
	p.Published("truck-7", t0.Add(time.Second))
	if g := p.Disconnected(a, false, t0.Add(2*time.Second)); g.Offline || g.Device != "truck-7" {
		t.Errorf("one of two connections gone: %+v", g)
	}
	p.WillSent(b)
	if g := p.Disconnected(b, false, t0.Add(3*time.Second)); !g.Offline || !g.Will || g.ClientID != "truck-7-gps" {
		t.Errorf("last connection gone: %+v", g)
	}
	st := p.State("truck-7")
	if st.Online || st.Messages != 1 || st.Connects != 2 || !st.LastSeen.Equal(t0.Add(3*time.Second)) || p.Online() != 0 {
		t.Errorf("state %+v, online %d", st, p.Online())
	}
	// A take-over: the old connection ends before the new one is
	// established; the device stays online throughout.
	p.Connected(d, a, Client{ClientID: "truck-7"}, t0)
	if g := p.Disconnected(a, true, t0); g.Offline {
		t.Error("taken over: offline")
	}
	if p.Connected(d, c, Client{ClientID: "truck-7"}, t0) || !p.State("truck-7").Online || p.Online() != 1 {
		t.Error("take-over completed: reported online again, or not online")
	}
	// Anonymous clients are forgotten once offline.
	anon := Anonymous("viewer-1")
	p.Connected(anon, b, Client{ClientID: "viewer-1", Auth: "anonymous"}, t0)
	p.Disconnected(b, false, t0)
	for _, s := range p.States() {
		if s.ID == "viewer-1" {
			t.Error("an anonymous client is kept after it left")
		}
	}
	if g := p.Disconnected(new(int), false, t0); g.Device != "" {
		t.Errorf("unknown connection: %+v", g)
	}
}

// Each device's state lists its own open connections, sorted, and no
// longer those that ended.
func TestPresenceClients(t *testing.T) {
	p := NewPresence()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	truck, door := &Device{ID: "truck-7"}, &Device{ID: "door-1"}
	gps, main, d1 := new(int), new(int), new(int)
	p.Connected(truck, gps, Client{ClientID: "truck-7-gps", Remote: "192.0.2.1:1", Auth: "password"}, t0)
	p.Connected(door, d1, Client{ClientID: "door-1", Remote: "192.0.2.9:1", Auth: "certificate"}, t0)
	p.Connected(truck, main, Client{ClientID: "truck-7", Remote: "192.0.2.1:2", Auth: "password"}, t0)
	st := p.State("truck-7")
	if len(st.Clients) != 2 || st.Clients[0].ClientID != "truck-7" || st.Clients[1] != (Client{"truck-7-gps", "192.0.2.1:1", "password"}) {
		t.Errorf("truck-7's clients: %+v", st.Clients)
	}
	p.Disconnected(gps, false, t0)
	all := p.States()
	if len(all) != 2 || all[0].ID != "door-1" || len(all[0].Clients) != 1 || all[0].Clients[0].Auth != "certificate" ||
		len(all[1].Clients) != 1 || all[1].Clients[0].ClientID != "truck-7" || !all[1].Online {
		t.Errorf("states: %+v", all)
	}
	p.Disconnected(main, false, t0)
	if st := p.State("truck-7"); st.Online || len(st.Clients) != 0 {
		t.Errorf("truck-7 after its last connection: %+v", st)
	}
}

// BenchmarkPresenceStates is /api/devices on a fleet of 2,000 connected
// devices: it costs each device's own connections, not every connection
// for every device.
func BenchmarkPresenceStates(b *testing.B) {
	p := NewPresence()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		id := fmt.Sprintf("dev-%d", i)
		p.Connected(&Device{ID: id}, new(int), Client{ClientID: id}, t0)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(p.States()) != 2000 {
			b.Fatal("states lost")
		}
	}
}
