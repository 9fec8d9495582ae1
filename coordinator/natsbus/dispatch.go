package natsbus

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"ntkbus/coordinator"
	"ntkbus/protocol"
)

// peer is what the backend knows of one identity (one credential).
type peer struct {
	id          string
	inProcess   bool
	trusted     bool            // answered a checked batch right
	quarantined protocol.Reason // mismatch or implausible: no more work in this run
	strikes     int             // failures at this base point (step): silence, errors, refused answers
	why         string          // the last strike's reason
	perProbe    float64         // seconds per probe by the coordinator's clock, moving average (0: unknown)
	pulled      bool
	held        int                  // live assignments
	replicas    map[string]time.Time // instance names that pulled, and when: they only size batches
	workers     map[string]time.Time // instance names given a batch, and when: they set the chunk quota
	inErrors    int                  // errors of an in-process sampler at this base point
	givenBack   int                  // batches given back at this base point
}

// Limits of what one identity can make the backend hold.
const (
	maxStrikes  = 2   // failures of one call before an identity gets no more of its batches
	maxHeld     = 64  // batches one identity may hold at once (one per replica)
	maxReplicas = 256 // replica names remembered per identity
	maxCopies   = 8   // holders of one batch
)

// peer returns the state of identity id, made on first sight; nil when
// maxPeers are tracked already.
func (b *Backend) peer(id string) *peer {
	if p := b.peers[id]; p != nil {
		return p
	}
	if len(b.peers) >= maxPeers {
		return nil
	}
	p := &peer{id: id, replicas: map[string]time.Time{}, workers: map[string]time.Time{}}
	b.peers[id] = p
	return p
}

// excluded says why p gets no work now, or "".
func (p *peer) excluded() string {
	switch {
	case p.inProcess:
		return ""
	case p.quarantined != "":
		return fmt.Sprintf("quarantined for the run: caught forging (%s)", p.quarantined)
	case p.strikes >= maxStrikes:
		return "no more batches of this step: " + p.why
	}
	return ""
}

// assignment is one batch given to one identity.
type assignment struct {
	token    uint64
	bt       *batch
	p        *peer
	instance string
	at, beat time.Time // given; last sign of life
	done     int       // probes its holder says it has computed
	live     bool
}

// Batch states.
const (
	waiting  = iota // to be given out (again)
	out             // held by at least one live assignment
	answered        // its answer taken, being checked (--verify)
	done            // taken (and checked, if chosen)
)

type batch struct {
	lo, hi  int
	state   int
	holders []*assignment // the live ones
	sends   int           // assignments made
	from    *peer         // whose answer was taken
	result  []float64     // that answer, held until its check is done
	gen     int           // bumped when a taken answer is thrown out
}

// call is the state of one Probes call.
type call struct {
	w        *coordinator.Work
	lo, hi   int
	next     int // the first probe not yet in a batch
	batches  []*batch
	byLo     map[int]*batch
	tokens   map[uint64]*assignment
	done     int
	exp      protocol.ResultExpect
	emit     func(j int, d []float64) error
	checks   []verifyJob // answers waiting for the verifier
	maxBatch int
	// toldNone: a pull was answered "none" since work was last announced,
	// so work that comes back is announced again.
	toldNone bool
	// lastSign is when a sampler that may get work last asked for it or
	// answered: with none for WaitSamplers while nothing is held, the call
	// ends with an error that says what was measured.
	lastSign time.Time
	lastPull time.Time // the last pull of a sampler that may get work
	warned   time.Time
}

func (b *Backend) newCall(w *coordinator.Work, lo, hi int, emit func(j int, d []float64) error) *call {
	maxBatch := max(1, (b.maxPayload()-1024)/(8*b.opt.Width))
	now := time.Now()
	// Strikes last as long as the base point: the calls of one estimate
	// (its rounds) or of one training step share them.
	newWork := w.ID != b.strikesFor
	b.strikesFor = w.ID
	for _, p := range b.peers {
		p.held = 0
		if newWork {
			p.strikes, p.why, p.inErrors, p.givenBack = 0, "", 0, 0
		}
	}
	return &call{w: w, lo: lo, hi: hi, next: lo, byLo: map[int]*batch{}, tokens: map[uint64]*assignment{}, emit: emit,
		exp:      protocol.ResultExpect{Run: b.opt.Run, Step: int64(w.Step), Width: b.opt.Width, Lo: lo, Probes: hi, MaxBatch: maxBatch},
		maxBatch: maxBatch, lastSign: now, warned: now}
}

// beat is how often holders report progress: often enough that a
// silence of Timeout means several missed reports.
func (b *Backend) beat() time.Duration {
	d := min(b.opt.Timeout/8, 5*time.Second)
	return max(d, protocol.MinBeat*time.Millisecond)
}

// silence is how long a holder may go without a report: Timeout, and at
// least four beats.
func (b *Backend) silence() time.Duration { return max(b.opt.Timeout, 4*b.beat()) }

// tend takes batches back from silent holders, announces work that idle
// samplers may take, and ends a call that nobody works on.
func (b *Backend) tend(c *call, now time.Time) error {
	// Reports still queued are read before anyone is called silent.
	judgeSilence := len(b.results) == 0
	held := false
	for _, bt := range c.batches {
		if bt.state != out {
			continue
		}
		for _, a := range append([]*assignment(nil), bt.holders...) {
			// A sampler of this process is alive while this process is:
			// its silence is this process's load, never a fault.
			if a.p.inProcess || !judgeSilence || now.Sub(a.beat) <= b.silence() {
				held = true
				continue
			}
			b.count(func(s *Stats) { s.Silent++ })
			why := fmt.Sprintf("silent for %v holding probes %d..%d (--timeout %v)", now.Sub(a.beat).Round(time.Second), bt.lo, bt.hi-1, b.opt.Timeout)
			b.log.Warn("sampler silent: its batch goes to another", "sampler", a.p.id, "instance", a.instance, "step", c.w.Step, "lo", bt.lo, "hi", bt.hi,
				"silent", now.Sub(a.beat).Round(time.Millisecond), "timeout", b.opt.Timeout)
			b.drop(c, a)
			b.strike(c, a.p, why)
		}
	}
	if b.assignable(c, now) {
		// Announce work that came back after someone was told "none", and
		// work nobody asked for lately (a lost announcement, a sampler
		// that joined since).
		if (c.toldNone || now.Sub(c.lastPull) > 250*time.Millisecond) && now.Sub(b.announced) > 250*time.Millisecond {
			c.toldNone = false
			if err := b.announce(); err != nil {
				return err
			}
		}
	}
	if len(c.checks) > 0 {
		c.lastSign = now // the verifier is at work
	}
	// Progress reports keep a holder's batch, but only progress that
	// advances is a sign of work: a holder that reports forever and never
	// answers cannot keep a call from ending.
	waited := now.Sub(c.lastSign)
	if waited > b.opt.WaitSamplers {
		return b.giveUp(c)
	}
	if !held && waited > 10*time.Second && now.Sub(c.warned) > 10*time.Second {
		c.warned = now
		b.log.Warn("no sampler asks for work: waiting for samplers", "step", c.w.Step, "waited", waited.Round(time.Second),
			"giving_up_in", (b.opt.WaitSamplers - waited).Round(time.Second), "excluded", b.excludedList(), "start_with", "sampler --nats <url>")
	}
	return nil
}

// giveUp is the error of a call that nobody works on, with what was seen.
func (b *Backend) giveUp(c *call) error {
	msg := fmt.Sprintf("step %d: %d of %d probes done, and for %v (--wait-samplers) no sampler that may get work asked for it, answered or advanced",
		c.w.Step, c.doneProbes(), c.hi-c.lo, b.opt.WaitSamplers)
	if h := c.holders(); len(h) > 0 {
		msg += "; holding batches without advancing: " + strings.Join(h, ", ")
	}
	if ex := b.excludedList(); len(ex) > 0 {
		msg += "; refused: " + strings.Join(ex, "; ")
	}
	if m := b.measured(); m != "" {
		msg += "; measured: " + m
	}
	mismatched := 0
	for _, p := range b.peers {
		if p.quarantined == protocol.ReasonMismatch {
			mismatched++
		}
	}
	if mismatched > 0 && mismatched == b.pulledCount() {
		msg += ": every sampler answered a checked batch with other bits than this process computes; samplers on another BLAS backend or CPU kind than the coordinator cannot be checked bit for bit, so run without --verify there"
	} else {
		msg += ": start samplers with: sampler --nats <url> (or wait longer with --wait-samplers)"
	}
	return errors.New(msg)
}

// holders names the identities holding batches, with what they reported.
func (c *call) holders() []string {
	var out []string
	for _, bt := range c.batches {
		for _, a := range bt.holders {
			out = append(out, fmt.Sprintf("%s (probes %d..%d, %d done)", a.p.id, bt.lo, bt.hi-1, a.done))
		}
	}
	sort.Strings(out)
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("%d more", len(out)-8))
	}
	return out
}

func (c *call) doneProbes() int {
	n := 0
	for _, bt := range c.batches {
		if bt.state == done {
			n += bt.hi - bt.lo
		}
	}
	return n
}

func (b *Backend) pulledCount() int {
	n := 0
	for _, p := range b.peers {
		if p.pulled {
			n++
		}
	}
	return n
}

// excludedList names the identities that get no work, and why.
func (b *Backend) excludedList() []string {
	var out []string
	for id, p := range b.peers {
		if why := p.excluded(); why != "" {
			out = append(out, id+" ("+why+")")
		}
	}
	sort.Strings(out)
	return out
}

// measured is what the samplers' speed was, for error messages.
func (b *Backend) measured() string {
	var parts []string
	for id, p := range b.peers {
		if p.perProbe > 0 {
			parts = append(parts, fmt.Sprintf("%s %.3g s per probe", id, p.perProbe))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// assignable reports whether an idle sampler asking now would get a batch.
func (b *Backend) assignable(c *call, now time.Time) bool {
	if c.next < c.hi {
		return true
	}
	for _, bt := range c.batches {
		if bt.state == waiting || b.overdue(bt, now) {
			return true
		}
	}
	return false
}

// nextWake is when tend has something to do at the latest: a holder's
// silence running out, an announcement of work that came back, or a second
// from now. Nothing already past is returned, so the loop never spins.
func (b *Backend) nextWake(c *call, now time.Time) time.Time {
	next := now.Add(time.Second)
	for _, bt := range c.batches {
		for _, a := range bt.holders {
			if t := a.beat.Add(b.silence() + time.Millisecond); !a.p.inProcess && t.After(now) && t.Before(next) {
				next = t
			}
		}
	}
	if c.toldNone && b.assignable(c, now) {
		if t := b.announced.Add(250 * time.Millisecond); t.After(now) && t.Before(next) {
			next = t
		}
	}
	return next
}

// rate is the time per probe expected of p: its own measure, else the
// median of the others', else 0.
func (b *Backend) rate(p *peer) float64 {
	if p != nil && p.perProbe > 0 {
		return p.perProbe
	}
	var rs []float64
	for _, q := range b.peers {
		if q.perProbe > 0 {
			rs = append(rs, q.perProbe)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	sort.Float64s(rs)
	return rs[len(rs)/2]
}

// overdue reports whether every holder of an out batch runs far behind
// what its measured speed promises: then an idle sampler computes a copy,
// and the first answer wins. Slowness is never a strike.
func (b *Backend) overdue(bt *batch, now time.Time) bool {
	if bt.state != out || len(bt.holders) == 0 || len(bt.holders) >= maxCopies {
		return false
	}
	for _, a := range bt.holders {
		expected := b.opt.Timeout
		if r := b.rate(a.p); r > 0 {
			expected = time.Duration(math.Min(r*float64(bt.hi-bt.lo), maxDuration.Seconds()) * float64(time.Second))
		}
		if now.Sub(a.at) < 2*expected+time.Second {
			return false
		}
	}
	return true
}

// maxDuration caps durations computed from measured rates.
const maxDuration = 24 * time.Hour

// replicas counts the sampler replicas that asked for work lately, to
// share what is left among them.
func (b *Backend) replicas(now time.Time) int {
	n := 0
	for _, p := range b.peers {
		if p.excluded() != "" {
			continue
		}
		for name, t := range p.replicas {
			if now.Sub(t) < 30*time.Second {
				n++
			} else {
				delete(p.replicas, name)
			}
		}
	}
	return max(n, 1)
}

// size is the next batch for p: what is left shared among the replicas
// (so batches shrink towards the end of the call), at most BatchSeconds of
// p's measured work, and no more than an eighth of the call while its
// samplers are still arriving.
func (b *Backend) size(c *call, p *peer, now time.Time) int {
	left := c.hi - c.next
	if b.opt.Batch > 0 {
		return min(b.opt.Batch, c.maxBatch, left)
	}
	s := (left + 2*b.replicas(now) - 1) / (2 * b.replicas(now))
	s = min(s, (c.hi-c.lo+7)/8)
	if r := b.rate(p); r > 0 {
		s = min(s, max(1, int(math.Min(b.opt.BatchSeconds/r, float64(c.maxBatch)))))
	}
	return max(1, min(s, c.maxBatch, left))
}

// handlePull serves one pull: a batch, or "none".
func (b *Backend) handlePull(c *call, ar arrival) error {
	m, now := ar.m, time.Now()
	if now.Sub(ar.at) > 2*time.Second {
		// Its sampler may have stopped waiting: a batch sent now could be
		// held by nobody until it counts as silent.
		b.respondNone(m, "")
		return nil
	}
	id, err := protocol.Sender(m.Subject)
	if err != nil || !strings.HasPrefix(m.Reply, protocol.Inbox(id)+".") {
		b.reject(&protocol.RejectError{Reason: protocol.ReasonReply, Detail: fmt.Sprintf("pull of %q asks for the reply on %q, not on its own inbox %s.>", id, m.Reply, protocol.Inbox(id))}, nil, nil)
		return nil // no answer at all
	}
	var pl protocol.Pull
	err = b.codec.UnmarshalPull(m.Data, &pl)
	if err == nil {
		err = pl.Validate()
	}
	if err == nil && pl.Run != b.opt.Run {
		err = &protocol.RejectError{Reason: protocol.ReasonRun, Detail: fmt.Sprintf("pull of run %s, serving %s", pl.Run, b.opt.Run)}
	}
	p := b.peer(id)
	if err != nil {
		b.reject(err, p, nil)
		b.respondNone(m, err.Error())
		return nil
	}
	b.count(func(s *Stats) { s.Pulls++ })
	if p == nil {
		b.respondNone(m, "too many sampler identities")
		return nil
	}
	if !p.pulled {
		p.pulled = true
		b.count(func(s *Stats) { s.Samplers++ })
	}
	if why := p.excluded(); why != "" {
		b.count(func(s *Stats) { s.Idle++ })
		b.respondNone(m, why)
		return nil
	}
	c.lastPull = now
	name := pl.Instance
	if name == "" {
		name = id
	}
	if _, ok := p.replicas[name]; ok || len(p.replicas) < maxReplicas {
		p.replicas[name] = now
	}
	var bt *batch
	if p.held < maxHeld {
		bt = b.pick(c, p, now)
	}
	if bt == nil {
		b.count(func(s *Stats) { s.Idle++ })
		c.toldNone = true
		b.respondNone(m, "")
		return nil
	}
	c.lastSign = now
	b.noteWorker(p, name, now)
	b.nonce++
	a := &assignment{token: b.nonce, bt: bt, p: p, instance: name, at: now, beat: now, live: true}
	c.tokens[a.token] = a
	bt.holders = append(bt.holders, a)
	bt.state = out
	bt.sends++
	p.held++
	req := b.codec.MarshalWorkRequest(nil, &protocol.WorkRequest{
		Version: protocol.Version, Run: b.opt.Run, Step: int64(c.w.Step), Lo: bt.lo, Hi: bt.hi, Snap: b.ref,
		Attempt: bt.sends - 1, Token: a.token, Beat: int(b.beat() / time.Millisecond),
	})
	b.count(func(s *Stats) { s.Batches++ })
	if err := m.Respond(req); err != nil {
		return fmt.Errorf("send work: %w", err)
	}
	return nil
}

// noteWorker records that replica name of p was given a batch, and sets
// p's snapshot quota to the replicas given batches in the last ten minutes.
func (b *Backend) noteWorker(p *peer, name string, now time.Time) {
	if _, ok := p.workers[name]; ok || len(p.workers) < maxHeld {
		p.workers[name] = now
	}
	n := 0
	for w, t := range p.workers {
		if now.Sub(t) > 10*time.Minute {
			delete(p.workers, w)
			continue
		}
		n++
	}
	b.chunkMu.Lock()
	b.quota[p.id] = n
	b.chunkMu.Unlock()
}

// pick chooses p's next batch: one given back, else a new one cut from
// what is left, else a copy of a batch whose holders are overdue.
func (b *Backend) pick(c *call, p *peer, now time.Time) *batch {
	for _, bt := range c.batches {
		if bt.state == waiting {
			return bt
		}
	}
	if c.next < c.hi {
		s := b.size(c, p, now)
		bt := &batch{lo: c.next, hi: c.next + s}
		c.next += s
		c.batches = append(c.batches, bt)
		c.byLo[bt.lo] = bt
		return bt
	}
	var best *batch
	var since time.Time
	for _, bt := range c.batches {
		if !b.overdue(bt, now) || holds(bt, p) {
			continue
		}
		if first := bt.holders[0].at; best == nil || first.Before(since) {
			best, since = bt, first
		}
	}
	if best != nil {
		b.count(func(s *Stats) { s.Copies++ })
		b.log.Debug("batch overdue: an idle sampler computes a copy", "step", c.w.Step, "lo", best.lo, "hi", best.hi, "holders", len(best.holders), "held_for", now.Sub(since).Round(time.Millisecond))
	}
	return best
}

func holds(bt *batch, p *peer) bool {
	for _, a := range bt.holders {
		if a.p == p {
			return true
		}
	}
	return false
}

// drop ends a live assignment; a batch nobody holds any more waits for
// the next pull.
func (b *Backend) drop(c *call, a *assignment) {
	if !a.live {
		return
	}
	a.live = false
	a.p.held--
	bt := a.bt
	for i, h := range bt.holders {
		if h == a {
			bt.holders = append(bt.holders[:i], bt.holders[i+1:]...)
			break
		}
	}
	if bt.state == out && len(bt.holders) == 0 {
		bt.state = waiting
		b.count(func(s *Stats) { s.Redispatched++ })
	}
}

// strike counts a failure against p (never against a sampler of this
// process); at maxStrikes it gets no more batches of this base point (the
// step, or the estimate), and those
// it holds go to others.
func (b *Backend) strike(c *call, p *peer, why string) {
	if p == nil || p.inProcess {
		return
	}
	p.strikes++
	p.why = why
	if p.strikes == maxStrikes {
		b.log.Warn("sampler failed batches of this step; it gets no more of them", "sampler", p.id, "failures", maxStrikes, "last", why)
		b.dropAll(c, p)
	}
}

// dropAll ends p's live assignments.
func (b *Backend) dropAll(c *call, p *peer) {
	for _, bt := range c.batches {
		for _, a := range append([]*assignment(nil), bt.holders...) {
			if a.p == p {
				b.drop(c, a)
			}
		}
	}
}

// spent ends p's assignment that a refused result r names, if any: it
// answered, badly, so the batch goes to another at once.
func (b *Backend) spent(c *call, p *peer, r *protocol.Result) {
	if a := c.tokens[r.Token]; a != nil && a.p == p {
		b.drop(c, a)
	}
}

// handle takes one message on the run's results subject: progress, a
// sampler's error, or a result. Its sender is the identity its subject
// names.
func (b *Backend) handle(c *call, ar arrival) error {
	m := ar.m
	id, err := protocol.Sender(m.Subject)
	if err != nil {
		b.reject(&protocol.RejectError{Reason: protocol.ReasonSender, Detail: err.Error()}, nil, nil)
		return nil
	}
	p := b.peer(id)
	if p == nil {
		b.reject(&protocol.RejectError{Reason: protocol.ReasonSender, Detail: "too many sampler identities"}, nil, nil)
		return nil
	}
	switch m.Header.Get(protocol.HeaderKind) {
	case protocol.KindProgress:
		b.progress(c, p, m, ar.at)
		return nil
	case protocol.KindError:
		return b.samplerError(c, p, m)
	}
	return b.accept(c, p, m.Data, ar.at)
}

// own returns p's assignment with token, or nil; an assignment of another
// identity is a lie, refused and struck.
func (b *Backend) own(c *call, p *peer, token uint64, what string) *assignment {
	a := c.tokens[token]
	if a == nil {
		return nil
	}
	if a.p != p {
		b.reject(&protocol.RejectError{Reason: protocol.ReasonSender, Detail: fmt.Sprintf("%s about a batch given to %s", what, a.p.id)}, p, nil)
		b.strike(c, p, what+" about another sampler's batch")
		return nil
	}
	return a
}

// progress takes a holder's word that it is still at work.
func (b *Backend) progress(c *call, p *peer, m *nats.Msg, at time.Time) {
	var pr protocol.Progress
	if err := b.codec.UnmarshalProgress(m.Data, &pr); err != nil {
		b.reject(err, p, nil)
		b.strike(c, p, "malformed progress")
		return
	}
	if pr.Validate(b.opt.Run, int64(c.w.Step)) != nil {
		return // about another step: nothing to follow
	}
	a := b.own(c, p, pr.Token, "progress")
	if a == nil || !a.live {
		return
	}
	b.count(func(s *Stats) { s.Progress++ })
	a.beat = at
	if d := min(pr.Done, a.bt.hi-a.bt.lo); d > a.done {
		a.done = d
		c.lastSign = a.beat
	}
}

func (b *Backend) samplerError(c *call, p *peer, m *nats.Msg) error {
	var se protocol.SamplerError
	if err := b.codec.UnmarshalSamplerError(m.Data, &se); err != nil {
		b.reject(err, p, nil)
		b.strike(c, p, "malformed error report")
		return nil
	}
	a := b.own(c, p, se.Token, "an error report")
	if a == nil || !a.live {
		return nil // about another call, or a batch answered since
	}
	b.count(func(s *Stats) { s.SamplerErrors++ })
	// A sampler's words go into logs and errors: a line at most.
	code, text := clip(se.Code, 64), clip(se.Message, 1024)
	bt := a.bt
	b.drop(c, a)
	if code == protocol.CodeStopping {
		// A sampler gives a batch back once in a call at no cost (it
		// stops, or its pull gave up before the answer came); giving back
		// again and again would keep batches from others.
		p.givenBack++
		if p.givenBack <= 1 || p.inProcess {
			b.log.Debug("sampler gave its batch back", "sampler", p.id, "step", c.w.Step, "lo", bt.lo, "why", text)
			return nil
		}
	}
	if p.inProcess {
		// This process's own sampler: its error is this process's.
		p.inErrors++
		if code != protocol.CodeSnapshotUnavailable || p.inErrors > 5 {
			return fmt.Errorf("probes %d..%d of step %d: the sampler in this process failed: %s: %s", bt.lo, bt.hi-1, c.w.Step, code, text)
		}
	}
	b.log.Warn("sampler error", "sampler", p.id, "instance", a.instance, "code", code, "step", c.w.Step, "lo", bt.lo, "error", text)
	b.strike(c, p, fmt.Sprintf("answered %s: %s", code, text))
	return nil
}

// accept decodes and validates one result and takes it: emitted at once,
// or held for the call's checks with --verify. Anything not taken is
// counted and logged, and a sampler that sent something wrong is struck.
func (b *Backend) accept(c *call, p *peer, data []byte, at time.Time) error {
	r := &b.res
	if err := b.codec.UnmarshalResult(data, r); err != nil {
		b.reject(err, p, r)
		b.spent(c, p, r)
		b.strike(c, p, "malformed result")
		return nil
	}
	if err := r.Validate(c.exp); err != nil {
		b.reject(err, p, r)
		if reason := protocol.ReasonOf(err); reason != protocol.ReasonStaleStep {
			b.spent(c, p, r)
			b.strike(c, p, "refused result: "+string(reason))
		}
		return nil
	}
	bt := c.byLo[r.Lo]
	if bt == nil || bt.hi != r.Hi {
		if b.doneRanges[[2]int{r.Lo, r.Hi}] {
			b.reject(&protocol.RejectError{Reason: protocol.ReasonDuplicate, Detail: "a batch of an earlier call"}, p, r)
			return nil
		}
		b.reject(&protocol.RejectError{Reason: protocol.ReasonRange, Detail: fmt.Sprintf("probes [%d, %d) were not given out as one batch", r.Lo, r.Hi)}, p, r)
		b.spent(c, p, r)
		b.strike(c, p, "a result of probes never given out")
		return nil
	}
	a := c.tokens[r.Token]
	switch {
	case bt.state == answered || bt.state == done:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonDuplicate, Detail: "the batch is answered"}, p, r)
		if a != nil && a.p == p {
			b.drop(c, a)
		}
		return nil
	case a == nil || a.bt != bt:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonSender, Detail: fmt.Sprintf("probes [%d, %d) answered under an assignment they were not given with", r.Lo, r.Hi)}, p, r)
		b.strike(c, p, "a result under another assignment")
		return nil
	case a.p != p:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonSender, Detail: fmt.Sprintf("the batch was given to %s", a.p.id)}, p, r)
		b.strike(c, p, "a result of another sampler's batch")
		return nil
	case p.quarantined != "":
		b.reject(&protocol.RejectError{Reason: protocol.ReasonQuarantined, Detail: fmt.Sprintf("sampler %s was caught forging earlier in the run", p.id)}, p, r)
		return nil
	}
	if b.opt.Check != nil {
		if err := b.waitCheck(); err != nil {
			return err
		}
		wd := b.opt.Width
		for j := bt.lo; j < bt.hi; j++ {
			if err := b.opt.Check.Check(j, r.D[(j-bt.lo)*wd:(j-bt.lo+1)*wd]); err != nil {
				b.reject(&protocol.RejectError{Reason: protocol.ReasonImplausible, Detail: err.Error()}, p, r)
				if p.inProcess {
					return fmt.Errorf("probe %d of step %d, computed in this process, fails the plausibility bound (a bug: please report it): %w", j, c.w.Step, err)
				}
				b.quarantine(c, p, protocol.ReasonImplausible)
				return nil
			}
		}
	}
	// Taken: every other holder's work on it is moot.
	for _, h := range bt.holders {
		h.live = false
		h.p.held--
	}
	bt.holders = nil
	elapsed := at.Sub(a.at).Seconds()
	per := math.Min(elapsed, maxDuration.Seconds()) / float64(bt.hi-bt.lo)
	if p.perProbe == 0 {
		p.perProbe = per
	} else {
		p.perProbe = 0.7*p.perProbe + 0.3*per
	}
	c.lastSign = at
	b.count(func(s *Stats) {
		s.Results++
		s.SamplerSeconds += math.Min(r.Seconds, elapsed)
	})
	b.doneRanges[[2]int{r.Lo, r.Hi}] = true
	bt.from = p
	if b.ver != nil && !p.inProcess && (!p.trusted || b.ver.chosen(c.w.Step, bt.lo, bt.hi)) {
		// Held until its check: a new slice, which the check reads.
		bt.result = append([]float64(nil), r.D...)
		if err := b.check(c, bt); err != nil {
			return err
		}
		bt.state = answered
		b.held.Add(int64(bt.hi - bt.lo))
		return nil
	}
	return b.finish(c, bt, r.D)
}

// finish makes bt done and hands its answer d on. What a sampler caught
// later gave is taken back through Retracted.
func (b *Backend) finish(c *call, bt *batch, d []float64) error {
	bt.state = done
	c.done++
	return b.emitBatch(c, bt, d)
}

// check queues bt's held answer for recomputation in this process.
func (b *Backend) check(c *call, bt *batch) error {
	if b.ver.local == nil {
		l, err := coordinator.NewLocal(b.opt.Setup, c.w.Points, b.opt.Probe, 1, b.opt.Eval)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if l.Plan().Width() != b.opt.Width {
			return fmt.Errorf("verify: the in-process plan gives %d values per probe, the samplers %d", l.Plan().Width(), b.opt.Width)
		}
		b.ver.local = l
	}
	c.checks = append(c.checks, verifyJob{bt: bt, gen: bt.gen, w: c.w, got: bt.result})
	return nil
}

// judge takes a check's verdict: a match makes the batch done and its
// sampler trusted; a mismatch quarantines the sampler.
func (b *Backend) judge(c *call, v verdict) error {
	bt := v.bt
	b.count(func(s *Stats) { s.VerifySeconds += v.seconds })
	if v.err != nil {
		return fmt.Errorf("verify probes %d..%d of step %d in this process: %w", bt.lo, bt.hi-1, c.w.Step, v.err)
	}
	if v.gen != bt.gen || bt.state != answered {
		return nil // thrown out meanwhile
	}
	b.count(func(s *Stats) { s.Verified++ })
	if v.match {
		b.held.Add(-int64(bt.hi - bt.lo))
		bt.from.trusted = true
		d := bt.result
		bt.result = nil
		return b.finish(c, bt, d)
	}
	b.count(func(s *Stats) {
		s.Mismatches++
		s.Rejected[protocol.ReasonMismatch]++
	})
	b.refusedFrom(bt.from, protocol.ReasonMismatch)
	b.log.Warn("a sampler's answer differs from this process's computation of the same probes", "sampler", bt.from.id, "step", c.w.Step, "lo", bt.lo, "hi", bt.hi)
	b.quarantine(c, bt.from, protocol.ReasonMismatch)
	return nil
}

// quarantine excludes p for the run: every batch of the call it answered
// and that is still held for a check is done again by others; what it
// gave the caller in this Work (this call and earlier ones) is taken back
// (Retracted); its live assignments end.
func (b *Backend) quarantine(c *call, p *peer, reason protocol.Reason) {
	if p.quarantined == "" {
		p.quarantined = reason
		b.count(func(s *Stats) { s.Quarantined++ })
		b.statsMu.Lock()
		if b.audit.Quarantines == nil {
			b.audit.Quarantines = map[string]string{}
		}
		if len(b.audit.Quarantines) < coordinator.MaxAuditIdentities {
			b.audit.Quarantines[p.id] = string(reason)
		}
		b.statsMu.Unlock()
		b.log.Warn("sampler quarantined for the run: everything it gave this step or estimate is done again by others", "sampler", p.id, "reason", reason, "step", c.w.Step)
	}
	p.trusted = false
	for _, bt := range c.batches {
		if bt.from != p || bt.state != answered {
			continue
		}
		// Held, never emitted: done again within the call.
		b.held.Add(-int64(bt.hi - bt.lo))
		bt.gen++
		// A check of the old answer may still be reading it: the next
		// answer goes to a new slice, not over this one.
		bt.result, bt.from, bt.state = nil, nil, waiting
		delete(b.doneRanges, [2]int{bt.lo, bt.hi})
		b.count(func(s *Stats) { s.Redispatched++ })
	}
	b.dropAll(c, p)
	if b.onCaught != nil {
		b.onCaught(p.id, string(p.quarantined))
	}
	// What reached the caller in this Work is taken back from it; the
	// caller asks for it again.
	if rs := b.emitted[p.id]; len(rs) > 0 {
		b.retracted = append(b.retracted, coordinator.Retraction{Identity: p.id, Reason: string(p.quarantined), Ranges: rs})
		b.count(func(s *Stats) { s.Retracted += int64(probesIn(rs)) })
	}
	delete(b.emitted, p.id)
	c.toldNone = true // work came back: say so
}

// probesIn counts the probes of ranges.
func probesIn(rs [][2]int) int {
	n := 0
	for _, r := range rs {
		n += r[1] - r[0]
	}
	return n
}

// emitBatch hands a batch's quotients to emit in index order; a refusal
// that is a duplicate is skipped.
func (b *Backend) emitBatch(c *call, bt *batch, d []float64) error {
	wd := b.opt.Width
	b.sender = ""
	if bt.from != nil {
		b.sender = bt.from.id
	}
	defer func() { b.sender = "" }()
	for j := bt.lo; j < bt.hi; j++ {
		if err := c.emit(j, d[(j-bt.lo)*wd:(j-bt.lo+1)*wd]); err != nil {
			if errors.Is(err, coordinator.ErrDuplicate) {
				continue
			}
			return fmt.Errorf("probe %d: %w", j, err)
		}
	}
	if bt.from != nil {
		b.emitted[bt.from.id] = append(b.emitted[bt.from.id], [2]int{bt.lo, bt.hi})
	}
	return nil
}

// refusedFrom counts a refusal against identity p in the audit.
func (b *Backend) refusedFrom(p *peer, reason protocol.Reason) {
	if p == nil {
		return
	}
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	if b.audit.RefusedFrom == nil {
		b.audit.RefusedFrom = map[string]int64{}
	}
	if _, ok := b.audit.RefusedFrom[p.id]; ok || len(b.audit.RefusedFrom) < coordinator.MaxAuditIdentities {
		b.audit.RefusedFrom[p.id]++
	}
}

// reject counts and logs a refused message (p and r may be nil; r may be
// half decoded).
func (b *Backend) reject(err error, p *peer, r *protocol.Result) {
	reason := protocol.ReasonOf(err)
	if reason == "" {
		reason = protocol.ReasonMalformed
	}
	b.count(func(s *Stats) {
		s.Rejected[reason]++
		if reason == protocol.ReasonDuplicate {
			s.Duplicates++
		}
	})
	level := hclog.Warn
	if reason == protocol.ReasonStaleStep || reason == protocol.ReasonDuplicate {
		level = hclog.Debug // late answers of slow or copied batches are expected
	} else {
		b.refusedFrom(p, reason)
	}
	id := ""
	if p != nil {
		id = p.id
	}
	if r == nil {
		b.log.Log(level, "message refused", "reason", reason, "sampler", id, "error", err)
		return
	}
	b.log.Log(level, "result refused", "reason", reason, "sampler", id, "instance", clip(r.Instance, 64), "step", r.Step, "lo", r.Lo, "hi", r.Hi, "error", err)
}

// clip cuts s to at most n bytes and one line.
func clip(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
