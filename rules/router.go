package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/flowgate/flowgate/event"
)

// Route is one route as configured.
type Route struct {
	Name   string
	Types  []string // event types it applies to; empty means all
	Filter string   // expr-lang boolean expression; empty means always
	Uplink bool     // forward matching events to the cloud
	Topic  string   // local topic template ({type}, {subject}); empty means none

	// Class is the uplink class of matching events, and Rank its priority:
	// lower goes first. When routes of several classes match an event, it
	// is forwarded once, in the class of lowest Rank.
	Class string
	Rank  int
}

// Env is what a filter expression sees: the event's attributes and its data.
type Env struct {
	ID      string         `expr:"id"`
	Source  string         `expr:"source"`
	Type    string         `expr:"type"`
	Subject string         `expr:"subject"`
	Topic   string         `expr:"topic"`
	Time    time.Time      `expr:"time"`
	Data    map[string]any `expr:"data"`
}

// CompileError is a route whose filter does not compile.
type CompileError struct {
	Route  int    // index in the list given to NewRouter
	Offset int    // byte offset of the problem inside Filter
	Msg    string // what is wrong
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("rules: route %d: filter: %s (at byte %d)", e.Route, e.Msg, e.Offset)
}

type compiled struct {
	Route
	program *vm.Program // nil when there is no filter
}

// Router is the first Stage: it evaluates each route whose types include the
// event's type and emits the event for every route whose filter holds. An
// event goes to the uplink at most once, in the highest priority class of
// the routes that send it there, and to each local topic at most once,
// however many routes match it.
type Router struct {
	routes []compiled
	byType map[string][]int // routes that name a type
	all    []int            // routes for every type
	byName map[string]int
}

// NewRouter compiles routes once. It returns every compile error, each a
// *CompileError, joined.
func NewRouter(routes []Route) (*Router, error) {
	r := &Router{byType: make(map[string][]int), byName: make(map[string]int)}
	var errs []error
	for i, rt := range routes {
		c := compiled{Route: rt}
		if strings.TrimSpace(rt.Filter) != "" {
			p, err := expr.Compile(rt.Filter, expr.Env(Env{}), expr.AsBool())
			if err != nil {
				errs = append(errs, compileError(i, rt.Filter, err))
				continue
			}
			c.program = p
		}
		r.routes = append(r.routes, c)
		idx := len(r.routes) - 1
		r.byName[rt.Name] = idx
		if len(rt.Types) == 0 {
			r.all = append(r.all, idx)
		}
		for _, t := range rt.Types {
			r.byType[t] = append(r.byType[t], idx)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// CheckFilter compiles one filter expression and returns its error, if any.
func CheckFilter(filter string) *CompileError {
	if _, err := expr.Compile(filter, expr.Env(Env{}), expr.AsBool()); err != nil {
		return compileError(0, filter, err)
	}
	return nil
}

func compileError(i int, src string, err error) *CompileError {
	ce := &CompileError{Route: i, Msg: err.Error()}
	var fe *file.Error
	if errors.As(err, &fe) {
		ce.Msg = fe.Message
		ce.Offset = runeToByte(src, fe.From)
	}
	return ce
}

func runeToByte(s string, runes int) int {
	off := 0
	for i := 0; i < runes && off < len(s); i++ {
		_, n := utf8.DecodeRuneInString(s[off:])
		off += n
	}
	return off
}

// Process implements Stage.
func (r *Router) Process(ev *event.Event, emit func(Output)) {
	r.process(ev, emit, -1)
}

// ProcessRoute is Process through the one route named name, whatever the
// types it lists; its filter still applies. It reports whether a route of
// that name exists; with an unknown name it does nothing.
func (r *Router) ProcessRoute(name string, ev *event.Event, emit func(Output)) bool {
	idx, ok := r.byName[name]
	if ok {
		r.process(ev, emit, idx)
	}
	return ok
}

func (r *Router) process(ev *event.Event, emit func(Output), only int) {
	var (
		env    *Env
		up     *compiled // the matching uplink route of highest priority
		topics []string
	)
	try := func(idx int) {
		rt := &r.routes[idx]
		if rt.program != nil {
			if env == nil {
				env = newEnv(ev)
			}
			ok, err := expr.Run(rt.program, env)
			if err != nil || ok != true {
				return // a filter that fails at run time does not match
			}
		}
		if rt.Uplink && (up == nil || rt.Rank < up.Rank) {
			up = rt
		}
		if rt.Topic != "" {
			if t := expand(rt.Topic, ev); !contains(topics, t) {
				topics = append(topics, t)
				emit(Output{Event: ev, Route: rt.Name, Topic: t})
			}
		}
	}
	if only >= 0 {
		try(only)
	} else {
		for _, idx := range r.byType[ev.Type] {
			try(idx)
		}
		for _, idx := range r.all {
			try(idx)
		}
	}
	if up != nil {
		emit(Output{Event: ev, Route: up.Name, Uplink: true, Class: up.Class})
	}
}

func newEnv(ev *event.Event) *Env {
	env := &Env{ID: ev.ID, Source: ev.Source, Type: ev.Type, Subject: ev.Subject, Topic: ev.Topic, Time: ev.Time}
	if len(ev.Data) > 0 {
		_ = json.Unmarshal(ev.Data, &env.Data) // not an object: data stays nil and field filters are false
	}
	return env
}

// expand replaces {type} and {subject} in a topic template.
func expand(tmpl string, ev *event.Event) string {
	if strings.IndexByte(tmpl, '{') < 0 {
		return tmpl
	}
	if strings.Contains(tmpl, "{type}") {
		tmpl = strings.ReplaceAll(tmpl, "{type}", ev.Type)
	}
	if strings.Contains(tmpl, "{subject}") {
		tmpl = strings.ReplaceAll(tmpl, "{subject}", ev.Subject)
	}
	return tmpl
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
