package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/flowgate/flowgate/devices"
)

// deviceView is one device in GET /api/devices: what it is and whether it
// is online. It is built field by field from the registry, so a password
// hash can never slip into it.
type deviceView struct {
	ID          string            `json:"id"`
	Username    string            `json:"username,omitempty"`
	Kind        string            `json:"kind,omitempty"`
	TopicPrefix string            `json:"topic_prefix"`
	Subscribe   []string          `json:"subscribe,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Login       []string          `json:"login,omitempty"` // password, certificate
	CertCN      string            `json:"cert_cn,omitempty"`
	devices.DeviceState
}

// handleDevices serves every registered device with its presence, and the
// anonymous clients connected now.
func (g *Gateway) handleDevices(w http.ResponseWriter, _ *http.Request) {
	reg := g.registry.Load()
	out := struct {
		Online  int64        `json:"online"`
		Devices []deviceView `json:"devices"`
	}{Online: g.presence.tracker.Online(), Devices: []deviceView{}}
	for _, d := range reg.Devices() {
		v := deviceView{ID: d.ID, Username: d.Username, Kind: d.Kind, TopicPrefix: d.TopicPrefix,
			Subscribe: d.Subscribe, Metadata: d.Metadata, CertCN: d.CertCN, DeviceState: g.presence.tracker.State(d.ID)}
		if d.PasswordHash != "" {
			v.Login = append(v.Login, "password")
		}
		if d.CertCN != "" {
			v.Login = append(v.Login, "certificate")
		}
		out.Devices = append(out.Devices, v)
	}
	for _, st := range g.presence.tracker.States() {
		if st.Anonymous {
			out.Devices = append(out.Devices, deviceView{ID: st.ID, TopicPrefix: devices.DefaultPrefix(st.ID),
				Login: []string{"anonymous"}, DeviceState: st})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
