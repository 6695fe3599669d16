package config

// Rules is the rules section. (Being filled in.)
type Rules struct {
	Files []string `yaml:"files"`
}
