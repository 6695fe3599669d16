package rules

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// Known is what rules may refer to outside themselves, for checking them:
// the gateway's route names, and the event types the catalog declares.
// A nil field checks nothing.
type Known struct {
	Routes map[string]bool
	Types  func(string) bool
}

// LoadFiles reads, compiles and checks rules files. Every problem is a
// yamlpos.Error at the file, line and column it comes from; all are
// returned, not the first. Rule names must be unique across the files.
func LoadFiles(paths []string, known Known) (*RuleSet, yamlpos.Errors) {
	set := &RuleSet{}
	var errs yamlpos.Errors
	seen := map[string]string{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, yamlpos.Error{File: path, Pos: yamlpos.Pos{Line: 1, Col: 1}, Msg: "rules: " + err.Error()})
			continue
		}
		s, ferrs := Parse(path, data, known)
		errs = append(errs, ferrs...)
		if s == nil {
			continue
		}
		for _, r := range s.rules {
			if other, dup := seen[r.name]; dup {
				errs = append(errs, yamlpos.Error{File: path, Pos: yamlpos.Pos{Line: 1, Col: 1},
					Msg: fmt.Sprintf("rules: rule %q is also defined in %s", r.name, other)})
				continue
			}
			seen[r.name] = path
			set.rules = append(set.rules, r)
		}
	}
	return set, errs
}

// Parse decodes and compiles one rules file already in memory; path names
// it in errors, and files the rules refer to (geofence.file) are relative
// to its directory. The set is nil only when the file could not be decoded.
func Parse(path string, data []byte, known Known) (*RuleSet, yamlpos.Errors) {
	var f File
	doc, errs := yamlpos.Decode(path, data, &f, yamlpos.Options{LookupEnv: os.LookupEnv})
	if len(errs) > 0 {
		return nil, errs
	}
	for i := range f.Rules {
		f.Rules[i].Dir = filepath.Dir(path)
	}
	set, serrs := Compile(f.Rules)
	for _, e := range serrs {
		p := fmt.Sprintf("rules[%d].%s", e.Rule, e.Key)
		if e.Offset > 0 || isExprKey(e.Key) {
			errs = append(errs, yamlpos.Error{File: path, Pos: doc.ValuePos(p, e.Offset), Msg: p + ": " + e.Msg})
			continue
		}
		errs = append(errs, doc.Errorf(p, "%s", e.Msg))
	}
	for i, s := range f.Rules {
		p := fmt.Sprintf("rules[%d].emit", i)
		if known.Routes != nil && s.Emit.Route != "" && !known.Routes[s.Emit.Route] {
			errs = append(errs, doc.Errorf(p+".route", "no route is named %q", s.Emit.Route))
		}
		if known.Types == nil {
			continue
		}
		for _, t := range []struct{ key, typ string }{{"type", s.Emit.Type}, {"clear_type", s.Emit.ClearType},
			{"transition_type", s.Emit.TransitionType}} {
			if t.typ != "" && !known.Types(t.typ) {
				errs = append(errs, doc.Errorf(p+"."+t.key, "event type %q is not in the catalog", t.typ))
			}
		}
	}
	if len(errs) > 0 {
		return set, errs.Sorted()
	}
	return set, nil
}

func isExprKey(key string) bool {
	return key == "filter" || key == "having"
}
