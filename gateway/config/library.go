package config

import "github.com/flowgate/flowgate/gateway/config/yamlpos"

// loadLibrary loads profiles_file and catalog_file. (Placeholder: the
// devices issue fills this in.)
func (c *Config) loadLibrary(dir string, opts yamlpos.Options) yamlpos.Errors { return nil }
