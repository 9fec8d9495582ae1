package main

import (
	"flag"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
)

// logFlags choose the logger: text for people, JSON for machines.
type logFlags struct {
	level string
	json  bool
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&l.json, "log-json", false, "log as JSON lines")
}

func (l *logFlags) logger(w io.Writer) hclog.Logger {
	if w == nil {
		w = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "coordinator",
		Level:      hclog.LevelFromString(l.level),
		Output:     w,
		JSONFormat: l.json,
	})
}
