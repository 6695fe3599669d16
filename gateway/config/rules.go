package config

import (
	"path/filepath"
	"time"

	"github.com/flowgate/flowgate/rules"
)

// Rules is the rules section: the rule files and the engine's clock.
type Rules struct {
	// Files are rule sets (see configs/rules/), relative to the config
	// file. Rule names must be unique across them.
	Files []string `yaml:"files"`
	// AllowedLateness is how far out of order a source's events may arrive
	// and still be processed in order; the engine holds each source's
	// events back this long. 0 processes events as they come, and one
	// older than its source's newest is late.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// IdleTimeout is how long a quiet source holds back windows.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Tick is how often the engine's clock moves on, closing windows and
	// raising absences that fell due.
	Tick time.Duration `yaml:"tick"`
	// LateTopic is the local topic where events too late to process are
	// published (and counted), never dropped silently.
	LateTopic string `yaml:"late_topic"`
	// CheckpointInterval is how often the rules' state (open windows,
	// pending absences, …) is saved in the store, beside the outbox; it is
	// saved on shutdown too. After a crash at most this much is lost. 0:
	// never saved, rules start empty.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`

	set *rules.RuleSet // compiled by validateRules
}

func defaultRules() Rules {
	return Rules{IdleTimeout: 30 * time.Second, Tick: 250 * time.Millisecond, LateTopic: "flowgate/late",
		CheckpointInterval: time.Second}
}

// RuleSet is the compiled rules, once the config is loaded.
func (c *Config) RuleSet() *rules.RuleSet {
	if c.Rules.set == nil {
		return &rules.RuleSet{}
	}
	return c.Rules.set
}

// EngineOptions maps the rules section onto the engine's options.
func (c *Config) EngineOptions() rules.Options {
	return rules.Options{Source: "/gateways/" + c.Gateway.ID, AllowedLateness: c.Rules.AllowedLateness,
		IdleTimeout: c.Rules.IdleTimeout}
}

// validateRules loads and compiles the rule files, reporting problems at
// their place in those files, and checks the section's own keys.
func (c *Config) validateRules(k *checker) {
	r := &c.Rules
	if r.AllowedLateness < 0 {
		k.errorf("rules.allowed_lateness", "must not be negative")
	}
	if r.IdleTimeout <= 0 {
		k.errorf("rules.idle_timeout", "must be positive")
	}
	if r.Tick <= 0 || r.Tick > time.Minute {
		k.errorf("rules.tick", "must be positive and at most 1m")
	}
	if r.CheckpointInterval < 0 {
		k.errorf("rules.checkpoint_interval", "must not be negative (0 turns checkpoints off)")
	}
	if !validTopicName(r.LateTopic) {
		k.errorf("rules.late_topic", "%q must be a topic name without wildcards", r.LateTopic)
	}
	if len(r.Files) == 0 {
		return
	}
	routes := map[string]bool{}
	for _, rt := range c.Routes {
		routes[rt.Name] = true
	}
	known := rules.Known{Routes: routes}
	if cat := c.catalogIf(c.catalogOK); cat != nil {
		known.Types = func(t string) bool { _, ok := cat.Entry(t); return ok }
	}
	set, errs := rules.LoadFiles(r.Files, known)
	k.errs = append(k.errs, errs...)
	if len(errs) == 0 {
		r.set = set
	}
}

// resolveRuleFiles makes the rule files relative to the config's directory.
func (c *Config) resolveRuleFiles(path string) {
	for i, f := range c.Rules.Files {
		if !filepath.IsAbs(f) {
			c.Rules.Files[i] = filepath.Join(filepath.Dir(path), f)
		}
	}
}

// ruleTypes adds the event types the rules emit to types.
func (c *Config) ruleTypes(types map[string]bool) {
	if c.Rules.set == nil {
		return
	}
	for _, t := range c.Rules.set.Emits() {
		types[t] = true
	}
}
