package config

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// sources remembers where every value of a loaded config came from.
type sources struct {
	path    string // the config file
	files   []string
	main    *yamlpos.Doc
	devices []devicePos // one per Config.Devices entry
}

// devicePos is where one device was declared: its document and path.
type devicePos struct {
	doc  *yamlpos.Doc
	path string
}

// Load reads, decodes, defaults and validates the config at path and every
// file it references. lookupEnv resolves ${VAR} (pass os.LookupEnv). The
// error, if any, is a yamlpos.Errors listing every problem found.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, yamlpos.Errors{{File: path, Pos: yamlpos.Pos{Line: 1, Col: 1}, Msg: readError(err)}}
	}
	return Parse(path, data, lookupEnv)
}

// Parse is Load for a config already in memory; path names it in errors and
// anchors relative file references.
func Parse(path string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	opts := yamlpos.Options{LookupEnv: lookupEnv}
	c := Default()
	doc, errs := yamlpos.Decode(path, data, c, opts)
	c.src.main, c.src.path = doc, path
	for i := range c.Devices {
		c.src.devices = append(c.src.devices, devicePos{doc, fmt.Sprintf("devices[%d]", i)})
	}
	if c.DevicesFile != "" && doc != nil {
		errs = append(errs, c.loadDevicesFile(filepath.Dir(path), opts)...)
	}
	if doc == nil {
		return nil, errs
	}
	errs = append(errs, c.loadLibrary(filepath.Dir(path), opts)...)
	c.derive()
	if s := c.Uplink.StoreDir; s != MemoryStore {
		relativeTo(path, &c.Uplink.StoreDir)
	}
	relativeTo(path, &c.Uplink.CAFile, &c.Uplink.CertFile, &c.Uplink.KeyFile)
	c.resolveBrokerFiles(path)
	c.resolveRuleFiles(path)
	errs = append(errs, c.validate()...)
	c.src.files = c.readFiles()
	if err := errs.Err(); err != nil {
		sortErrors(path, errs)
		return nil, errs
	}
	return c, nil
}

// loadDevicesFile appends the devices declared in c.DevicesFile.
func (c *Config) loadDevicesFile(dir string, opts yamlpos.Options) yamlpos.Errors {
	name := c.DevicesFile
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return yamlpos.Errors{c.src.main.Errorf("devices_file", "%q: %s", c.DevicesFile, readError(err))}
	}
	var f devicesFile
	doc, errs := yamlpos.Decode(name, data, &f, opts)
	for i := range f.Devices {
		c.Devices = append(c.Devices, f.Devices[i])
		c.src.devices = append(c.src.devices, devicePos{doc, fmt.Sprintf("devices[%d]", i)})
	}
	return errs
}

// relativeTo makes each non-empty relative file name absolute, relative to
// the directory of the config file at path.
func relativeTo(path string, names ...*string) {
	for _, n := range names {
		if *n != "" && !filepath.IsAbs(*n) {
			*n = filepath.Join(filepath.Dir(path), *n)
		}
	}
}

func readError(err error) string {
	if os.IsNotExist(err) {
		return "file not found"
	}
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// Path is the config file this config was loaded from.
func (c *Config) Path() string { return c.src.path }

// Files are the files this config was read from: the config file, then the
// devices, profiles, catalog and rule files it names, as absolute or
// config-relative paths resolved like the loader does. A change to any of
// them is a reason to reload.
func (c *Config) Files() []string { return c.src.files }

func (c *Config) readFiles() []string {
	files := []string{c.src.path}
	for _, f := range []string{c.DevicesFile, c.ProfilesFile, c.CatalogFile} {
		if f != "" {
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(c.src.path), f)
			}
			files = append(files, f)
		}
	}
	files = append(files, c.Rules.Files...)
	return append(files, c.RuleSet().Files()...)
}
