// Package buildinfo names the build of ntkbus's binaries: the coordinator
// and the sampler report one version, read from the module's build
// information (the version Go stamped, and the commit), so that a
// coordinator and its samplers can be seen to be the same build.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"ntkbus/model"
	"ntkbus/protocol"
)

// Version is the module's version as Go stamped it (a tag, or a
// pseudo-version from the commit), else "devel", with the commit (and
// "+dirty" for a modified tree) when the build recorded it.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return version(bi)
}

func version(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var commit string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if commit != "" {
		v += ", commit " + commit
		if dirty {
			v += "+dirty"
		}
	}
	return v
}

// Line is what a binary's version command prints: its name, the version,
// the wire protocol, Go and the BLAS backend.
func Line(binary string) string {
	return fmt.Sprintf("%s (ntkbus) %s, protocol %d, %s, BLAS %s", binary, Version(), protocol.Version, runtime.Version(), model.BLASBackend())
}
