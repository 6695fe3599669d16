package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// Library is the event library a config references: profiles_file and
// catalog_file, compiled. Either is nil when its key is absent.
type Library struct {
	Profiles *devices.Profiles
	Catalog  *devices.Catalog
}

// loadLibrary loads profiles_file and catalog_file and checks them, each
// against the other and against the rest of the config: every device's
// kind has a profile, every profile's samples produce what they say, and
// with a catalog, every ingest type is catalogued, every profile with an
// event_type fits its schema, and every SLA class is an uplink class.
func (c *Config) loadLibrary(dir string, opts yamlpos.Options) yamlpos.Errors {
	var errs yamlpos.Errors
	var catOK, profOK bool
	if c.CatalogFile != "" {
		var f devices.CatalogFile
		doc, ferrs := c.decodeLibraryFile(dir, "catalog_file", c.CatalogFile, &f, opts)
		if doc != nil {
			cat, serrs := devices.CompileCatalog(f)
			ferrs = append(ferrs, specErrors(doc, serrs)...)
			catOK = len(ferrs) == 0
			c.catalogOK = catOK
			ferrs = append(ferrs, c.checkSLAClasses(doc, cat)...)
			c.Library.Catalog = cat
		}
		errs = append(errs, ferrs...)
	}
	if c.ProfilesFile != "" {
		var f devices.ProfilesFile
		doc, ferrs := c.decodeLibraryFile(dir, "profiles_file", c.ProfilesFile, &f, opts)
		if doc != nil {
			ps, serrs := devices.CompileProfiles(f)
			ferrs = append(ferrs, specErrors(doc, serrs)...)
			c.Library.Profiles = ps
			if len(ferrs) == 0 {
				ferrs = append(ferrs, specErrors(doc, ps.Check(c.catalogIf(catOK)))...)
			}
		}
		profOK = doc != nil
		errs = append(errs, ferrs...)
	}
	if profOK || c.ProfilesFile == "" {
		errs = append(errs, c.checkKinds()...)
	}
	if catOK {
		errs = append(errs, c.checkIngestTypes()...)
	}
	return errs
}

// catalogIf is the catalog when it compiled cleanly: checking profiles
// against a broken one would only repeat its problems.
func (c *Config) catalogIf(ok bool) *devices.Catalog {
	if ok {
		return c.Library.Catalog
	}
	return nil
}

// decodeLibraryFile reads the file named by key (relative to dir) into v.
// The Doc is nil when the file could not be read.
func (c *Config) decodeLibraryFile(dir, key, name string, v any, opts yamlpos.Options) (*yamlpos.Doc, yamlpos.Errors) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, yamlpos.Errors{c.src.main.Errorf(key, "%q: %s", name, readError(err))}
	}
	return yamlpos.Decode(path, data, v, opts)
}

// specErrors places each problem at its key in doc, or at the nearest key
// above it that is written (a missing key is reported at its parent).
func specErrors(doc *yamlpos.Doc, errs []devices.SpecError) yamlpos.Errors {
	var out yamlpos.Errors
	for _, e := range errs {
		at := e.Path
		for at != "" && !doc.Has(at) {
			at = parentPath(at)
		}
		pos := doc.Pos(at)
		if pos.Line == 0 {
			pos = yamlpos.Pos{Line: 1, Col: 1}
		}
		out = append(out, yamlpos.Error{File: doc.File, Pos: pos, Msg: e.Path + ": " + e.Msg})
	}
	return out
}

// parentPath drops the last step of a yamlpos path: "a.b[2]" → "a.b",
// "a.b" → "a".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// checkKinds checks that every device's kind has a profile.
func (c *Config) checkKinds() yamlpos.Errors {
	var errs yamlpos.Errors
	kinds := c.Library.Profiles.Kinds()
	for i, d := range c.Devices {
		if d.Kind == "" {
			continue
		}
		src := c.src.devices[i]
		switch {
		case c.Library.Profiles == nil:
			errs = append(errs, src.doc.Errorf(src.path+".kind", "kind %q needs a profile: set profiles_file", d.Kind))
		case !slices.Contains(kinds, d.Kind):
			errs = append(errs, src.doc.Errorf(src.path+".kind", "unknown kind %q (profiles_file has %s)", d.Kind, listOrNone(kinds)))
		}
	}
	return errs
}

// checkIngestTypes checks that every ingest type is a raw event type of
// the catalog.
func (c *Config) checkIngestTypes() yamlpos.Errors {
	var errs yamlpos.Errors
	cat := c.Library.Catalog
	for i, t := range c.Ingest.Topics {
		p := fmt.Sprintf("ingest.topics[%d].type", i)
		e, ok := cat.Entry(t.Type)
		switch {
		case !ok:
			errs = append(errs, c.src.main.Errorf(p, "event type %q is not in catalog_file (it has %s)", t.Type, listOrNone(cat.Names())))
		case e.Category != devices.CategoryRaw:
			errs = append(errs, c.src.main.Errorf(p, "event type %q is %s in catalog_file; devices publish raw events", t.Type, e.Category))
		}
	}
	return errs
}

// checkSLAClasses checks that every catalog entry's SLA class is one of
// uplink.classes.
func (c *Config) checkSLAClasses(doc *yamlpos.Doc, cat *devices.Catalog) yamlpos.Errors {
	var errs yamlpos.Errors
	for _, name := range cat.Names() {
		e, _ := cat.Entry(name)
		if e.SLA.Class != "" && !slices.ContainsFunc(c.Uplink.Classes, func(cl Class) bool { return cl.Name == e.SLA.Class }) {
			errs = append(errs, doc.Errorf("events."+name+".sla.class", "%q is not one of uplink.classes (%s)", e.SLA.Class, c.classNames()))
		}
	}
	return errs
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
