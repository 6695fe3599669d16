package config

import (
	"strings"
	"testing"
)

// TestPprofLoopbackOnly: the profiler is served only on a loopback
// listener; elsewhere the key is refused and named.
func TestPprofLoopbackOnly(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080", "127.0.0.9:1"} {
		c, err := Parse("f.yaml", []byte(minimal+"http: {listen: \""+listen+"\", pprof: true}\n"), noEnv)
		if err != nil || !c.HTTP.Pprof {
			t.Errorf("%s: %v", listen, err)
		}
	}
	for _, listen := range []string{":8080", "0.0.0.0:8080", "192.168.1.2:8080", "example.com:80"} {
		_, err := Parse("f.yaml", []byte(minimal+"http: {listen: \""+listen+"\", pprof: true}\n"), noEnv)
		got := problems(t, err)
		if len(got) != 1 || !strings.HasPrefix(got[0], "f.yaml:6:") || !strings.Contains(got[0], "http.pprof: needs http.listen on a loopback address") {
			t.Errorf("%s: %q", listen, got)
		}
	}
	c, err := Parse("f.yaml", []byte(minimal+"http: {listen: \":8080\"}\n"), noEnv)
	if err != nil || c.HTTP.Pprof {
		t.Errorf("off by default: %v %v", c.HTTP.Pprof, err)
	}
}
