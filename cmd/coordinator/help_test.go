package main

import (
	"strings"
	"testing"

	"ntkbus/cmd/internal/buildinfo"
)

// Every flag's help says its default once: where the text names a default
// (one that depends on other flags), the flag package adds none of its own.
// And the coordinator's version is the sampler's (one build, one version).
func TestHelpLinesSayOneDefault(t *testing.T) {
	for _, c := range [][]string{{"snapshot"}, {"exact"}, {"estimate"}, {"spectrum"}, {"train"}, {"predict"},
		{"study", "errors"}, {"study", "throughput"}, {"study", "spectrum"}} {
		code, out, e := runCmd(t, append(c, "-h")...)
		if code != 0 {
			t.Fatalf("%v -h: exit %d: %s", c, code, e)
		}
		var flag string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "  -") {
				flag = line
				continue
			}
			if n := strings.Count(flag+line, "default"); n > 1 && flag != "" {
				t.Errorf("%v: %q says %d defaults:\n%s", c, strings.Fields(flag)[0], n, line)
			}
		}
	}
	if code, out, _ := runCmd(t, "version"); code != 0 || out != buildinfo.Line("coordinator")+"\n" {
		t.Errorf("version: %q", out)
	}
}
