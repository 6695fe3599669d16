package gateway

import (
	"slices"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/rules"
)

// This file is the one place that maps config onto component options.

func deviceList(list []config.Device) []devices.Device {
	out := make([]devices.Device, len(list))
	for i, d := range list {
		out[i] = devices.Device{ID: d.ID, Username: d.Username, PasswordHash: d.PasswordHash, CertCN: d.CertCN,
			TopicPrefix: d.TopicPrefix, Subscribe: d.Subscribe, Kind: d.Kind, Metadata: d.Metadata}
	}
	return out
}

func routeList(list []config.Route, classes []config.Class) []rules.Route {
	out := make([]rules.Route, len(list))
	for i, r := range list {
		out[i] = rules.Route{Name: r.Name, Types: r.Types, Filter: r.Filter,
			Uplink: slices.Contains(r.To, config.ToUplink), Class: r.Class, Rank: len(classes) - 1}
		if r.Class != "" {
			out[i].Rank = slices.IndexFunc(classes, func(c config.Class) bool { return c.Name == r.Class })
		}
		if slices.Contains(r.To, config.ToLocal) {
			out[i].Topic = r.LocalTopic
		}
	}
	return out
}

func normalizer(c *config.Config) *devices.Normalizer {
	n := &devices.Normalizer{Source: "/gateways/" + c.Gateway.ID, MaxPayload: c.Ingest.MaxPayloadBytes,
		Profiles: c.Library.Profiles, Catalog: c.Library.Catalog}
	for _, t := range c.Ingest.Topics {
		n.Topics = append(n.Topics, devices.IngestTopic{Filter: t.Match, Type: t.Type})
	}
	return n
}
