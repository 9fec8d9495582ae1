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
// every few seconds otherwise (CI logs, files). A resumed run or study
// starts part-way: the bar and the ETA count only the work done since the
// first update.
type progress struct {
	w     io.Writer
	tty   bool
	bar   *progressbar.ProgressBar
	log   hclog.Logger
	what  string
	total int
	last  time.Time
	start time.Time
	first int // done at the first update
	seen  bool
}

func newProgress(w io.Writer, log hclog.Logger, what string, total int) *progress {
	p := &progress{w: w, log: log, what: what, total: total}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

// update sets done of total and a short status.
func (p *progress) update(done int, status string) {
	if !p.seen {
		p.first, p.seen, p.start = done, true, time.Now()
		if p.tty {
			p.bar = progressbar.NewOptions(p.total-p.first,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(p.what),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetWidth(30),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
			)
		}
	}
	if p.bar != nil {
		desc := p.what + " " + status
		if p.first > 0 {
			desc = fmt.Sprintf("%s %d/%d %s", p.what, done, p.total, status)
		}
		p.bar.Describe(desc)
		p.bar.Set(done - p.first)
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
