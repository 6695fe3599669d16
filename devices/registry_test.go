package devices

import (
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func testRegistry(t *testing.T, anonymous bool) *Registry {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry([]Device{
		{ID: "truck-7", PasswordHash: string(hash), Subscribe: []string{"commands/truck-7/#"}},
		{ID: "door-1", Username: "door", PasswordHash: string(hash), TopicPrefix: "site/a/door-1/"},
	}, anonymous)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuthenticate(t *testing.T) {
	r := testRegistry(t, false)
	for _, c := range []struct {
		client, user, pass string
		wantID             string
		wantErr            error
	}{
		{"truck-7", "truck-7", "s3cret", "truck-7", nil},
		{"truck-7", "truck-7", "s3cret", "truck-7", nil}, // second time from the cache
		{"truck-7-gps", "truck-7", "s3cret", "truck-7", nil},
		{"truck-7", "truck-7", "wrong", "", ErrBadPassword},
		{"door-1", "door", "s3cret", "door-1", nil},
		{"door-1", "door-1", "s3cret", "", ErrUnknownDevice}, // username, not id
		{"x", "nobody", "s3cret", "", ErrUnknownDevice},
		{"door-1", "truck-7", "s3cret", "", ErrClientID},   // another device's client id
		{"truck-70", "truck-7", "s3cret", "", ErrClientID}, // not truck-7's space
		{"truck-7", "", "", "", ErrUnknownDevice},          // anonymous refused by default
	} {
		d, err := r.Authenticate(c.client, c.user, []byte(c.pass))
		if !errors.Is(err, c.wantErr) {
			t.Errorf("Authenticate(%q, %q, %q) error = %v, want %v", c.client, c.user, c.pass, err, c.wantErr)
			continue
		}
		if err == nil && d.ID != c.wantID {
			t.Errorf("Authenticate(%q) = %q, want %q", c.user, d.ID, c.wantID)
		}
	}
}

func TestAnonymous(t *testing.T) {
	r := testRegistry(t, true)
	d, err := r.Authenticate("sensor-9", "", nil)
	if err != nil {
		t.Fatalf("anonymous refused: %v", err)
	}
	if !d.CanPublish("devices/sensor-9/env") || d.CanPublish("devices/truck-7/env") {
		t.Errorf("anonymous device prefix wrong: %q", d.TopicPrefix)
	}
	if d.CanSubscribe("$SYS/#") {
		t.Error("anonymous device may read $SYS")
	}
	// An anonymous client cannot pass for a registered device.
	for _, id := range []string{"truck-7", "truck-7-x", "door-1", "a/b", "+", ""} {
		if _, err := r.Authenticate(id, "", nil); err == nil {
			t.Errorf("anonymous client id %q accepted", id)
		}
	}
}

func TestACL(t *testing.T) {
	r := testRegistry(t, false)
	truck, _ := r.Lookup("c", "truck-7")
	door, _ := r.Lookup("c", "door")
	for _, c := range []struct {
		d     *Device
		topic string
		want  bool
	}{
		{truck, "devices/truck-7/env", true},
		{truck, "devices/truck-7/", false},
		{truck, "devices/truck-70/env", false},
		{truck, "devices/door-1/env", false},
		{door, "site/a/door-1/state", true},
		{door, "devices/door-1/state", false},
	} {
		if got := c.d.CanPublish(c.topic); got != c.want {
			t.Errorf("%s CanPublish(%q) = %v, want %v", c.d.ID, c.topic, got, c.want)
		}
	}
	for _, c := range []struct {
		d      *Device
		filter string
		want   bool
	}{
		{truck, "commands/truck-7/#", true},
		{truck, "commands/truck-7/reboot", true},
		{truck, "commands/#", false},
		{truck, "devices/truck-7/#", true},
		{truck, "devices/+/env", false},
		{door, "commands/truck-7/#", false},
	} {
		if got := c.d.CanSubscribe(c.filter); got != c.want {
			t.Errorf("%s CanSubscribe(%q) = %v, want %v", c.d.ID, c.filter, got, c.want)
		}
	}
}

func TestNewRegistryRejectsDuplicates(t *testing.T) {
	if _, err := NewRegistry([]Device{{ID: "a"}, {ID: "a"}}, false); err == nil {
		t.Error("duplicate ids accepted")
	}
	if _, err := NewRegistry([]Device{{ID: "a", Username: "u"}, {ID: "b", Username: "u"}}, false); err == nil {
		t.Error("duplicate usernames accepted")
	}
	if _, err := NewRegistry([]Device{{}}, false); err == nil {
		t.Error("device without id accepted")
	}
}

// An anonymous client whose prefix (devices/{client id}/) overlaps a
// registered device's custom topic prefix, either way, is refused: it
// could otherwise publish into that device's topics.
func TestAnonymousPrefixOverlap(t *testing.T) {
	r, err := NewRegistry([]Device{
		{ID: "sensor-1", CertCN: "sensor-1", TopicPrefix: "devices/plant1/"},
		{ID: "sensor-2", CertCN: "sensor-2", TopicPrefix: "devices/plant2/line-a/"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{
		"plant1":   false, // devices/plant1/ is sensor-1's prefix
		"plant2":   false, // devices/plant2/ holds sensor-2's
		"plant":    true,  // devices/plant/ is neither
		"plant10":  true,
		"plant1-x": true,
		"viewer":   true,
	} {
		d, err := r.Authenticate(id, "", nil)
		if (err == nil) != want {
			t.Errorf("anonymous client id %q: %v, want admitted %v", id, err, want)
		}
		if err == nil && (d.CanPublish("devices/plant1/x") || d.CanPublish("devices/plant2/line-a/x")) {
			t.Errorf("anonymous %q may publish into a registered device's topics", id)
		}
	}
}

// Topic prefixes that nest, or lie in the gateway's internal topics, are
// refused.
func TestNewRegistryRejectsPrefixes(t *testing.T) {
	for name, list := range map[string][]Device{
		"same":          {{ID: "a", TopicPrefix: "site/x/"}, {ID: "b", TopicPrefix: "site/x/"}},
		"within":        {{ID: "a", TopicPrefix: "site/"}, {ID: "b", TopicPrefix: "site/x/"}},
		"within, later": {{ID: "a", TopicPrefix: "site/x/y/"}, {ID: "m", TopicPrefix: "site/x/a/"}, {ID: "z", TopicPrefix: "site/x/"}},
		"default":       {{ID: "a", TopicPrefix: "devices/b/x/"}, {ID: "b"}},
		"internal":      {{ID: "a", TopicPrefix: "flowgate/a/"}},
		"$":             {{ID: "a", TopicPrefix: "$flowgate/a/"}},
	} {
		if _, err := NewRegistry(list, false); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewRegistry([]Device{{ID: "a", TopicPrefix: "site/x/"}, {ID: "b", TopicPrefix: "site/xy/"}, {ID: "c"}}, false); err != nil {
		t.Errorf("prefixes that do not nest: %v", err)
	}
}
