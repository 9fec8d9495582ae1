package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressEvery is the longest a command stays silent off a terminal
// while it works: a ticker writes a line when nothing else did for this
// long.
const progressEvery = 10 * time.Second

// progress shows long work: a bar with an ETA on a terminal; off a
// terminal (CI logs, files) a log line when the work moves (at most every
// five seconds) and, from a ticker, at least every progressEvery while it
// does not (a long step, a slow batch, a solve), with the elapsed time and
// the ETA. A command's progress and its children (phases inside it: the
// initial probes inside a training run) share one ticker; the innermost
// active one speaks. finish the outermost when the command ends.
type progress struct {
	sh     *progressLines
	w      io.Writer
	tty    bool
	bar    *progressbar.ProgressBar
	log    hclog.Logger
	what   string
	total  int
	begun  bool
	start  time.Time
	first  int // done when the clock started (work resumed part-way)
	done   int
	status string
	last   time.Time // the last line this progress wrote
	said   int       // done at that line
	ended  bool
}

// progressLines is what a progress and its children share: the ticker,
// the active phases and when the last line was written.
type progressLines struct {
	mu     sync.Mutex
	every  time.Duration
	active []*progress
	root   *progress // newProgress's: its finish stops the ticker
	last   time.Time
	stop   chan struct{}
	exited chan struct{}
}

// newProgress starts the progress of a command's work: its clock runs
// from now (so the first update has an ETA), and its ticker until finish.
func newProgress(w io.Writer, log hclog.Logger, what string, total int) *progress {
	sh := &progressLines{every: progressEvery, stop: make(chan struct{}), exited: make(chan struct{})}
	if testProgressEvery > 0 {
		sh.every = testProgressEvery
	}
	p := sh.add(w, log, what, total)
	sh.root = p
	p.begin(0)
	go sh.tick()
	return p
}

// testProgressEvery, when set (by tests), replaces progressEvery.
var testProgressEvery time.Duration

// child returns the progress of a phase inside p's work, which starts at
// its first update, note or begin.
func (p *progress) child(what string, total int) *progress {
	return p.sh.add(p.w, p.log, what, total)
}

func (sh *progressLines) add(w io.Writer, log hclog.Logger, what string, total int) *progress {
	p := &progress{sh: sh, w: w, log: log, what: what, total: total}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

// begin starts p's clock with done units of its work already done (a
// resumed run's steps), and makes it the phase that speaks.
func (p *progress) begin(done int) {
	p.sh.mu.Lock()
	defer p.sh.mu.Unlock()
	p.beginLocked(done)
}

func (p *progress) beginLocked(done int) {
	if p.begun {
		return
	}
	p.begun, p.start, p.first, p.done = true, time.Now(), done, done
	p.sh.active = append(p.sh.active, p)
}

// update sets done of total and a short status.
func (p *progress) update(done int, status string) {
	sh := p.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if p.ended {
		return
	}
	p.beginLocked(0)
	p.done, p.status = done, status
	if p.tty {
		p.render()
		return
	}
	if time.Since(p.last) < 5*time.Second && done < p.total {
		return
	}
	p.line()
}

// note sets the status without moving the work: what a long unit of it is
// doing ("step 12: waiting for probes", "cg 300/1000").
func (p *progress) note(status string) {
	sh := p.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if p.ended {
		return
	}
	p.beginLocked(p.done)
	p.status = status
	if p.tty && p.bar != nil {
		p.bar.Describe(p.describe())
	}
}

// eta is the time the rest of the work takes at the rate of this session.
func (p *progress) eta() string {
	n := p.done - p.first
	if n <= 0 {
		return "-"
	}
	el := time.Since(p.start)
	return roundDuration(time.Duration(float64(el) / float64(n) * float64(p.total-p.done)))
}

// roundDuration writes d to a tenth of a second below ten seconds, else to
// the second.
func roundDuration(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func (p *progress) describe() string {
	if p.first > 0 {
		return fmt.Sprintf("%s %d/%d %s", p.what, p.done, p.total, p.status)
	}
	return strings.TrimSpace(p.what + " " + p.status)
}

// render draws the bar (a terminal).
func (p *progress) render() {
	if p.bar == nil {
		p.bar = progressbar.NewOptions(p.total-p.first,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.what),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
	}
	p.bar.Describe(p.describe())
	p.bar.Set(p.done - p.first)
}

// line writes a log line (off a terminal).
func (p *progress) line() {
	p.last, p.said = time.Now(), p.done
	p.sh.last = p.last
	p.log.Info(p.what, "done", p.done, "of", p.total, "elapsed", roundDuration(time.Since(p.start)), "eta", p.eta(), "status", strings.TrimSpace(p.status))
}

// tick keeps the command from going silent: off a terminal the innermost
// active phase writes a line when no line was written for sh.every; on a
// terminal its bar is redrawn (its elapsed time and ETA move).
func (sh *progressLines) tick() {
	defer close(sh.exited)
	period := min(time.Second, sh.every)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-sh.stop:
			return
		case <-t.C:
		}
		sh.mu.Lock()
		if n := len(sh.active); n > 0 {
			p := sh.active[n-1]
			switch {
			case p.tty && p.bar != nil:
				p.bar.Describe(p.describe())
				p.bar.Set(p.done - p.first)
			case !p.tty && time.Since(sh.last) >= sh.every:
				p.line()
			}
		}
		sh.mu.Unlock()
	}
}

// finish ends p: its bar is completed, or its last line written. The
// outermost progress (newProgress's) also stops the ticker. It may be
// called more than once.
func (p *progress) finish() {
	sh := p.sh
	sh.mu.Lock()
	if !p.ended {
		p.ended = true
		if p.bar != nil {
			p.bar.Finish()
		} else if !p.tty && p.begun && p.done > p.said {
			p.line()
		}
		for i, a := range sh.active {
			if a == p {
				sh.active = append(sh.active[:i], sh.active[i+1:]...)
				break
			}
		}
	}
	root := sh.root == p
	sh.mu.Unlock()
	if root {
		select {
		case <-sh.stop:
		default:
			close(sh.stop)
		}
		<-sh.exited
	}
}

// from restarts p's clock with done units already done (work resumed
// part-way), so that its ETA counts only this session's rate.
func (p *progress) from(done int) *progress {
	p.sh.mu.Lock()
	defer p.sh.mu.Unlock()
	p.start, p.first, p.done = time.Now(), done, done
	return p
}

// resize sets the total once it is known, with done units done before
// this session's clock started.
func (p *progress) resize(total, done int) {
	p.sh.mu.Lock()
	defer p.sh.mu.Unlock()
	p.total, p.first = total, done
}
