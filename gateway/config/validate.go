package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config/yamlpos"
	"github.com/flowgate/flowgate/rules"
	"github.com/flowgate/flowgate/uplink"
)

// checker collects positioned problems.
type checker struct {
	doc  *yamlpos.Doc
	errs yamlpos.Errors
}

func (k *checker) errorf(path, format string, args ...any) {
	k.errs = append(k.errs, k.doc.Errorf(path, format, args...))
}

// validate checks every value and every cross-reference, collecting all
// problems rather than stopping at the first.
func (c *Config) validate() yamlpos.Errors {
	k := &checker{doc: c.src.main}
	c.validateGateway(k)
	c.validateBroker(k)
	c.validateDevices(k)
	c.validateIngest(k)
	c.validateRules(k)
	c.validateRoutes(k)
	c.validateUplink(k)
	c.validateSensors(k)
	return k.errs
}

func (c *Config) validateGateway(k *checker) {
	if !devices.ValidID(c.Gateway.ID) {
		k.errorf("gateway.id", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", c.Gateway.ID)
	}
	if c.Gateway.ShutdownTimeout <= 0 {
		k.errorf("gateway.shutdown_timeout", "must be positive")
	}
	if c.Gateway.ReloadCheck < 0 {
		k.errorf("gateway.reload_check", "must not be negative (0 turns the file check off)")
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		k.errorf("log.level", "%q must be one of debug, info, warn, error", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		k.errorf("log.format", "%q must be text or json", c.Log.Format)
	}
	checkAddr(k, "http.listen", c.HTTP.Listen)
	if c.HTTP.Pprof && !loopback(c.HTTP.Listen) {
		k.errorf("http.pprof", "needs http.listen on a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT), not %q: profiles show the gateway's internals", c.HTTP.Listen)
	}
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateDevices(k *checker) {
	ids, users, cns := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, d := range c.Devices {
		src := c.src.devices[i]
		dk := &checker{doc: src.doc}
		p := src.path
		switch {
		case !devices.ValidID(d.ID):
			dk.errorf(p+".id", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", d.ID)
		case ids[d.ID]:
			dk.errorf(p+".id", "duplicate device id %q", d.ID)
		case users[d.Username]:
			dk.errorf(p+".username", "duplicate username %q", d.Username)
		}
		ids[d.ID], users[d.Username] = true, true
		c.validateCredentials(dk, p, d, cns)
		if !strings.HasSuffix(d.TopicPrefix, "/") || strings.ContainsAny(d.TopicPrefix, "+#") || strings.HasPrefix(d.TopicPrefix, "$") {
			dk.errorf(p+".topic_prefix", "topic_prefix %q must end with '/' and have no wildcards or leading '$'", d.TopicPrefix)
		} else if devices.InternalTopic(d.TopicPrefix) {
			dk.errorf(p+".topic_prefix", "topic_prefix %q is in the gateway's internal topics (flowgate/…): the device could publish there", d.TopicPrefix)
		}
		for j, f := range d.Subscribe {
			if !devices.ValidFilter(f) {
				dk.errorf(fmt.Sprintf("%s.subscribe[%d]", p, j), "%q is not a valid MQTT topic filter", f)
			}
		}
		k.errs = append(k.errs, dk.errs...)
	}
	c.validatePrefixes(k)
}

// validatePrefixes refuses a device whose topic prefix is another's or
// lies within it (devices/ and devices/plant1/): either could publish
// into the other's topics. The error is at the topic_prefix, or at the
// device when its prefix is the default.
func (c *Config) validatePrefixes(k *checker) {
	order := make([]int, 0, len(c.Devices))
	ids := map[string]bool{}
	for i, d := range c.Devices {
		if devices.ValidID(d.ID) && !ids[d.ID] { // a duplicate id is reported as such
			order = append(order, i)
		}
		ids[d.ID] = true
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(c.Devices[a].TopicPrefix, c.Devices[b].TopicPrefix) })
	var open []int // the devices whose prefixes hold the current one, outermost first
	for _, i := range order {
		d := c.Devices[i]
		for len(open) > 0 && !strings.HasPrefix(d.TopicPrefix, c.Devices[open[len(open)-1]].TopicPrefix) {
			open = open[:len(open)-1]
		}
		if len(open) > 0 {
			o := c.Devices[open[len(open)-1]]
			src := c.src.devices[i]
			path := src.path + ".topic_prefix"
			if !src.doc.Has(path) {
				path = src.path
			}
			dk := &checker{doc: src.doc}
			dk.errorf(path, "device %q's topic prefix %q lies within device %q's %q: each device needs a prefix of its own", d.ID, d.TopicPrefix, o.ID, o.TopicPrefix)
			k.errs = append(k.errs, dk.errs...)
		}
		open = append(open, i)
	}
}

func (c *Config) validateIngest(k *checker) {
	in := c.Ingest
	if in.MaxPayloadBytes <= 0 || in.MaxPayloadBytes > c.Broker.MaxPacketBytes {
		k.errorf("ingest.max_payload_bytes", "must be positive and at most broker.max_packet_bytes (%d)", c.Broker.MaxPacketBytes)
	}
	if t := in.DeadLetterTopic; !validTopicName(t) || strings.ContainsAny(strings.ReplaceAll(t, "{device}", "d"), "{}") {
		k.errorf("ingest.dead_letter_topic", "%q must be a topic name without wildcards, where {device} is the only placeholder", t)
	}
	if len(in.Topics) == 0 {
		k.errorf("ingest", "topics: declare at least one topic that devices publish readings on")
	}
	for i, t := range in.Topics {
		p := fmt.Sprintf("ingest.topics[%d]", i)
		if !devices.ValidFilter(t.Match) {
			k.errorf(p+".match", "%q is not a valid MQTT topic filter", t.Match)
		}
		if !devices.ValidID(t.Type) { // a type becomes a topic level and a CloudEvents type
			k.errorf(p+".type", "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", t.Type)
		}
	}
}

func (c *Config) validateRoutes(k *checker) {
	types := map[string]bool{}
	for _, t := range c.Ingest.Topics {
		types[t.Type] = true
	}
	c.ruleTypes(types)
	types[TypeDeviceOnline], types[TypeDeviceOffline] = true, true
	cat := c.catalogIf(c.Library.Catalog != nil && c.catalogOK)
	names := map[string]bool{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" || names[r.Name] {
			k.errorf(p+".name", "%q must be present and unique", r.Name)
		}
		names[r.Name] = true
		for j, t := range r.Types {
			switch _, catalogued := cat.Entry(t); {
			case !types[t]:
				k.errorf(fmt.Sprintf("%s.types[%d]", p, j), "no ingest topic or rule produces event type %q", t)
			case cat != nil && !catalogued:
				k.errorf(fmt.Sprintf("%s.types[%d]", p, j), "event type %q is not in catalog_file (it has %s)", t, listOrNone(cat.Names()))
			}
		}
		if strings.TrimSpace(r.Filter) != "" {
			if ce := rules.CheckFilter(r.Filter); ce != nil {
				pos := k.doc.ValuePos(p+".filter", ce.Offset)
				k.errs = append(k.errs, yamlpos.Error{File: k.doc.File, Pos: pos, Msg: "filter: " + ce.Msg})
			}
		}
		c.validateRouteTargets(k, p, r)
	}
}

func (c *Config) validateRouteTargets(k *checker, p string, r Route) {
	if len(r.To) == 0 {
		k.errorf(p+".to", "route %q: to must name uplink, local or both", r.Name)
	}
	local, up := false, false
	for j, to := range r.To {
		switch to {
		case ToUplink:
			up = true
		case ToLocal:
			local = true
		default:
			k.errorf(fmt.Sprintf("%s.to[%d]", p, j), "route destination %q must be uplink or local", to)
		}
	}
	switch {
	case local && !validTopicName(strings.NewReplacer("{type}", "t", "{subject}", "s").Replace(r.LocalTopic)):
		k.errorf(p+".local_topic", "route %q: local_topic %q must be a topic name without wildcards", r.Name, r.LocalTopic)
	case !local && r.LocalTopic != "":
		k.errorf(p+".local_topic", "route %q: local_topic is set but to does not include local", r.Name)
	case !up && r.Class != "":
		k.errorf(p+".class", "route %q: class is set but to does not include uplink", r.Name)
	case r.Class != "" && !slices.ContainsFunc(c.Uplink.Classes, func(cl Class) bool { return cl.Name == r.Class }):
		k.errorf(p+".class", "route %q: class %q is not one of uplink.classes (%s)", r.Name, r.Class, c.classNames())
	}
}

// classNames lists the uplink's classes for messages.
func (c *Config) classNames() string {
	var names []string
	for _, cl := range c.Uplink.Classes {
		names = append(names, cl.Name)
	}
	return strings.Join(names, ", ")
}

// validateUplink lets the uplink judge its own options, so that check and
// run can never disagree, and points its verdict at the key in the file.
func (c *Config) validateUplink(k *checker) {
	if c.Uplink.URL == "" {
		k.errorf("uplink", "url is required: the cloud MQTT broker, e.g. mqtt://broker.example.com:1883")
		return
	}
	// The uplink reads a zero as "use the default"; in the file, a zero
	// that is written down is a mistake.
	u := c.Uplink
	for _, z := range []struct {
		key  string
		zero bool
	}{{"keep_alive", u.KeepAlive == 0}, {"connect_timeout", u.ConnectTimeout == 0},
		{"queue_size", u.QueueSize == 0}, {"max_inflight", u.MaxInflight == 0},
		{"commit_interval", u.CommitInterval == 0}, {"reconnect_min", u.ReconnectMin == 0},
		{"reconnect_max", u.ReconnectMax == 0}, {"stall_timeout", u.StallTimeout == 0}} {
		if z.zero {
			k.errorf("uplink."+z.key, "must be positive")
			return
		}
	}
	if u.StoreDir == "" {
		k.errorf("uplink.store_dir", "must name the outbox directory (or %q to keep events in memory only)", MemoryStore)
		return
	}
	if fi, err := os.Stat(u.StoreDir); err == nil && !fi.IsDir() {
		k.errorf("uplink.store_dir", "%s is not a directory", u.StoreDir)
		return
	}
	if u.WhenFull == "" {
		k.errorf("uplink.when_full", "must be %s or %s", uplink.DropOldest, uplink.Reject)
		return
	}
	opts := c.UplinkOptions(nil)
	_, err := uplink.New(opts)
	if err == nil {
		err = uplink.CheckTLSFiles(opts)
	}
	var oe *uplink.OptionError
	switch {
	case errors.As(err, &oe):
		k.errorf("uplink."+oe.Key, "%s", oe.Reason)
	case err != nil:
		k.errorf("uplink", "%v", err)
	}
}

func checkAddr(k *checker, path, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		k.errorf(path, "%q must be host:port (e.g. 127.0.0.1:1883 or :1883)", addr)
	}
}

func validTopicName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "+#\x00")
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// sortErrors orders problems by file (the main file first, then the others
// as found), then line and column.
func sortErrors(main string, errs yamlpos.Errors) {
	order := map[string]int{main: 0}
	for _, e := range errs {
		if _, ok := order[e.File]; !ok {
			order[e.File] = len(order)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			return order[a.File] < order[b.File]
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Col < b.Pos.Col
	})
}
