package gateway

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/rules"
)

// Reloading. The device registry, the routes and the rules change while
// the gateway runs: on SIGHUP (flowgate run), or when a file the config
// reads changes (checked every gateway.reload_check). A reload reads the
// config and every file it names again and checks it exactly as `flowgate
// check` does. If anything is wrong, nothing changes: every problem is
// logged at its file:line:col and what was running keeps running.
// Otherwise the new registry, routes and rules take over together; a rule
// whose definition did not change keeps its state (rules.Engine.Replace).
// Every other section (listeners, uplink, store, sensors) is read at start
// only: a change there is logged as needing a restart.

// ReloadFrom tells the gateway how to read its config again, typically
// config.Load of the file it came from. Without it the gateway does not
// reload. Call it before Run.
func (g *Gateway) ReloadFrom(load func() (*config.Config, error)) { g.load = load }

// errNoReload is returned by Reload on a gateway not told how to reload.
var errNoReload = errors.New("gateway: reload: no config source (see ReloadFrom)")

// Reload reads the config again and applies its registry, routes and rules,
// all or nothing. It returns why it refused, if it did.
func (g *Gateway) Reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.load == nil {
		return errNoReload
	}
	cfg, err := g.load()
	if err == nil {
		err = g.apply(cfg)
	}
	if err != nil {
		g.reloads.WithLabelValues("refused").Inc()
		g.log.Error("reload refused; the registry, routes and rules in force keep running", "err", err)
		return fmt.Errorf("gateway: reload: %w", err)
	}
	g.reloads.WithLabelValues("applied").Inc()
	return nil
}

// apply prepares every reloadable part of cfg, then commits them together.
func (g *Gateway) apply(cfg *config.Config) error {
	var commits []func()
	for _, prepare := range []func(*config.Config) (func(), error){g.prepareRegistry, g.prepareRules} {
		commit, err := prepare(cfg)
		if err != nil {
			return err
		}
		commits = append(commits, commit)
	}
	for _, commit := range commits {
		commit()
	}
	if restart := restartOnly(g.running, cfg); len(restart) > 0 {
		g.log.Warn("config sections changed that apply only at start; restart to apply them", "sections", restart)
	}
	g.running = cfg
	return nil
}

// prepareRegistry builds cfg's device registry: credentials, client
// certificate identities (cert_cn), prefixes and ACLs, and which presence
// events its routes ask for. The broker's TLS files reload by themselves
// when they change (gateway/brokertls); devices already connected keep
// their connection, and are checked against the new registry from their
// next publish or subscription.
func (g *Gateway) prepareRegistry(cfg *config.Config) (func(), error) {
	reg, err := devices.NewRegistry(deviceList(cfg.Devices), cfg.Broker.AllowAnonymous)
	if err != nil {
		return nil, err
	}
	return func() {
		g.registry.Store(reg)
		g.presence.setTypes(cfg.PresenceTypes())
		g.log.Info("device registry reloaded", "devices", reg.Len())
	}, nil
}

// prepareRules builds cfg's routes; the rules are compiled already.
func (g *Gateway) prepareRules(cfg *config.Config) (func(), error) {
	router, err := rules.NewRouter(routeList(cfg.Routes, g.cfg.Uplink.Classes))
	if err != nil {
		return nil, err
	}
	return func() {
		set := cfg.RuleSet()
		kept := g.pipe.flow.Replace(router, set)
		g.log.Info("routes and rules reloaded", "routes", len(cfg.Routes), "rules", set.Len(), "kept_state", kept)
	}, nil
}

// restartOnly names the sections of next that differ from prev and are
// read only at start.
func restartOnly(prev, next *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name string
		a, b any
	}{{"gateway", prev.Gateway, next.Gateway}, {"log", prev.Log, next.Log}, {"broker", prev.Broker, next.Broker},
		{"http", prev.HTTP, next.HTTP}, {"ingest", prev.Ingest, next.Ingest}, {"uplink", prev.Uplink, next.Uplink},
		{"sensors", prev.Sensors, next.Sensors}, {"profiles_file", prev.ProfilesFile, next.ProfilesFile},
		{"catalog_file", prev.CatalogFile, next.CatalogFile},
		{"rules.allowed_lateness", prev.Rules.AllowedLateness, next.Rules.AllowedLateness},
		{"rules.idle_timeout", prev.Rules.IdleTimeout, next.Rules.IdleTimeout},
		{"rules.tick", prev.Rules.Tick, next.Rules.Tick}, {"rules.late_topic", prev.Rules.LateTopic, next.Rules.LateTopic},
		{"rules.checkpoint_interval", prev.Rules.CheckpointInterval, next.Rules.CheckpointInterval}} {
		if !reflect.DeepEqual(s.a, s.b) {
			out = append(out, s.name)
		}
	}
	return out
}

// watchFiles reloads when a file the running config reads changes, every
// gateway.reload_check, once the change has held still for one check (a
// file being copied in place is not read half written). Changes are
// measured from when New read the config. The returned function stops it and waits; it is
// safe to call twice.
func (g *Gateway) watchFiles(wg *sync.WaitGroup) func() {
	every := g.cfg.Gateway.ReloadCheck
	if g.load == nil || every <= 0 {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		seen, settling := g.stamped, map[string]stamp(nil)
		for {
			select {
			case <-t.C:
			case <-stop:
				return
			}
			g.reloadMu.Lock()
			files := g.running.Files()
			g.reloadMu.Unlock()
			now := stamps(files)
			switch {
			case reflect.DeepEqual(now, seen):
				settling = nil
				continue
			case !reflect.DeepEqual(now, settling):
				settling = now // still being written, perhaps: wait until it holds still for a tick
				continue
			}
			g.log.Info("a config file changed; reloading", "files", changed(files, seen, now))
			seen, settling = now, nil
			_ = g.Reload() // logged and counted
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}
}

// stamp is what tells that a file changed: its size and modification
// time, or that it is missing.
type stamp struct {
	size int64
	mod  time.Time
	err  bool
}

func stamps(files []string) map[string]stamp {
	m := make(map[string]stamp, len(files))
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			m[f] = stamp{err: true}
			continue
		}
		m[f] = stamp{size: fi.Size(), mod: fi.ModTime()}
	}
	return m
}

// changed lists the files whose stamps differ (for the log).
func changed(files []string, a, b map[string]stamp) []string {
	return slices.DeleteFunc(slices.Clone(files), func(f string) bool { return a[f] == b[f] })
}

// reloadMetrics counts reloads by result.
func reloadMetrics(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowgate_reloads_total",
		Help: "Reloads of the device registry, routes and rules, by result (applied, refused)."}, []string{"result"})
	c.WithLabelValues("applied")
	c.WithLabelValues("refused")
	reg.MustRegister(c)
	return c
}
