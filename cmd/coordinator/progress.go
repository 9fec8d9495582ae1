package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows long work: a bar with an ETA on a terminal, a log line
// every few seconds otherwise (CI logs, files).
type progress struct {
	bar   *progressbar.ProgressBar
	log   hclog.Logger
	what  string
	total int
	last  time.Time
	start time.Time
	// first is done at the first update: a resumed run or study starts
	// part-way, and only the work done since counts toward the rate.
	first int
	seen  bool
}

func newProgress(w io.Writer, log hclog.Logger, what string, total int) *progress {
	p := &progress{log: log, what: what, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// update sets done of total and a short status.
func (p *progress) update(done int, status string) {
	if !p.seen {
		p.first, p.seen, p.start = done, true, time.Now()
	}
	if p.bar != nil {
		p.bar.Describe(p.what + " " + status)
		p.bar.Set(done)
		return
	}
	if time.Since(p.last) < 5*time.Second && done < p.total {
		return
	}
	p.last = time.Now()
	eta := "-"
	if n := done - p.first; n > 0 {
		el := time.Since(p.start)
		eta = (time.Duration(float64(el) / float64(n) * float64(p.total-done))).Round(time.Second).String()
	}
	p.log.Info(p.what, "done", done, "of", p.total, "eta", eta, "status", strings.TrimSpace(status))
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
