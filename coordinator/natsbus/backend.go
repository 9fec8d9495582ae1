// Package natsbus is the coordinator's NATS backend: it publishes each
// step's snapshot (in chunks that samplers pull), offers batches of probe
// indices to the samplers' queue group, collects their answers with
// deadlines, sends late or lost batches again, drops duplicates and
// anything invalid, optionally checks answers by recomputing them
// (Options.Verify), and hands each probe's quotient to the same accumulator
// the in-process backend feeds. It carries no math.
//
// Every number on the wire is bounded before it is used: deadlines come
// from the coordinator's own clock (a sampler's reported time only feeds
// statistics), are clamped, and back off; a batch is sent a bounded number
// of times; the dispatch loop waits only in one select that also watches
// cancellation, so nothing that arrives can keep it from stopping.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// Options configure the backend.
type Options struct {
	Subjects protocol.Subjects
	Run      string           // run id, a subject token; default a random one
	Setup    *model.Setup     // the residual the samplers evaluate
	Probe    sampler.Settings // how they draw probes
	Width    int              // values per probe result (the plan's width)

	// Batch is the probes per work request; 0 sizes batches from the
	// samplers seen (about four batches per sampler per call), within the
	// max payload.
	Batch int
	// Timeout is the first deadline of a batch before any result has been
	// seen; later deadlines adapt to the observed time per probe. Every
	// deadline doubles with each attempt and is clamped to [1 s, 1 h].
	Timeout time.Duration
	// MaxAttempts bounds how often one batch goes out and comes back
	// without an answer (late, lost, or a sampler's error) before the call
	// fails (default 5).
	MaxAttempts int
	// AckWait is how long a sent batch may go unacknowledged before it is
	// taken as lost (default 5 s): samplers acknowledge at once.
	AckWait time.Duration
	// WaitSamplers bounds how long the backend waits while no sampler
	// answers discovery (default 5 minutes), saying so as it waits.
	WaitSamplers time.Duration
	// Verify is the fraction of batches recomputed in this process and
	// compared bit for bit (0: none). Every instance's first batch is
	// checked too when Verify > 0.
	Verify float64
	// VerifyKey keys the choice of checked batches; random when empty.
	VerifyKey []byte
	// Eval configures the evaluator of the checks.
	Eval model.Options
	Log  hclog.Logger
}

// Stats count what the backend saw. Rejected results are counted by reason
// and never averaged.
type Stats struct {
	Batches int64 // work requests sent, every offer counted
	// Redispatched counts batches sent again after a deadline, a lost
	// acknowledgement, a sampler's error or its departure.
	Redispatched int64
	// Declined counts offers that a busy sampler declined (then offered again).
	Declined int64
	// Lost counts batches taken as lost: not acknowledged within AckWait,
	// or held by an instance that left.
	Lost int64
	// NoResponders counts offers the server could not deliver: no sampler
	// in the queue group.
	NoResponders  int64
	Results       int64 // results accepted
	Duplicates    int64 // results of batches already answered (also in Rejected)
	SamplerErrors int64
	Rejected      map[protocol.Reason]int64
	// Verified counts batches recomputed in this process (--verify),
	// Mismatches those whose bits differed, Quarantined the instances
	// excluded for it.
	Verified, Mismatches, Quarantined int64
	// CoordinatorSeconds is the time the coordinator spent encoding,
	// publishing, serving chunks, decoding and accumulating: all but
	// waiting and verifying.
	CoordinatorSeconds float64
	// SamplerSeconds is the samplers' compute time reported in accepted
	// results (each clamped to the coordinator's own measure of it).
	SamplerSeconds float64
	// VerifySeconds is the time spent recomputing batches.
	VerifySeconds float64
	ChunkBytes    int64
	Samplers      int
}

// Backend is the NATS implementation of coordinator.Backend.
type Backend struct {
	nc   *nats.Conn
	opt  Options
	log  hclog.Logger
	subs []*nats.Subscription

	results chan *nats.Msg
	codec   protocol.Codec
	res     protocol.Result
	disc    *discovery

	// The snapshot being served; chunk requests read it under mu.
	mu      sync.RWMutex
	workID  uint64
	ref     protocol.SnapshotRef
	chunks  [][]byte
	encoded []byte
	snap    protocol.Snapshot

	statsMu    sync.Mutex
	stats      Stats
	chunkNanos atomic.Int64
	chunkBytes atomic.Int64

	perProbe   float64         // seconds per probe, moving average, by the coordinator's clock
	doneRanges map[[2]int]bool // batches answered for the served snapshot
	nonce      uint64

	ver         *verifier
	trusted     map[string]bool // instances whose answers passed a check
	quarantined map[string]bool
}

// Deadline bounds.
const (
	minDeadline = time.Second
	maxDeadline = time.Hour
)

// New subscribes to the run's result and snapshot subjects on nc.
func New(nc *nats.Conn, opt Options) (*Backend, error) {
	if opt.Subjects.Prefix == "" {
		opt.Subjects.Prefix = protocol.DefaultPrefix
	}
	if opt.Run == "" {
		opt.Run = "run" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
	}
	if err := protocol.ValidRunID(opt.Run); err != nil {
		return nil, err
	}
	if opt.Setup == nil || opt.Width <= 0 {
		return nil, errors.New("natsbus: a setup and the probe width are required")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 60 * time.Second
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 5
	}
	if opt.AckWait <= 0 {
		opt.AckWait = 5 * time.Second
	}
	if opt.WaitSamplers <= 0 {
		opt.WaitSamplers = 5 * time.Minute
	}
	b := &Backend{nc: nc, opt: opt, results: make(chan *nats.Msg, 4096), trusted: map[string]bool{}, quarantined: map[string]bool{}}
	b.log = opt.Log
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	b.log = b.log.Named("natsbus").With("run", opt.Run)
	b.stats.Rejected = map[protocol.Reason]int64{}
	if opt.Verify != 0 {
		var err error
		if b.ver, err = newVerifier(opt.Verify, opt.VerifyKey, opt.Width); err != nil {
			return nil, err
		}
	}
	sub, err := nc.ChanSubscribe(opt.Subjects.Results(opt.Run), b.results)
	if err != nil {
		return nil, fmt.Errorf("subscribe to results: %w", err)
	}
	// Answers come only as responses to requests sent (the server's
	// allow_responses), at most two each: the pending limits are generous
	// bounds, not the flow control.
	sub.SetPendingLimits(1<<16, 256<<20)
	b.subs = append(b.subs, sub)
	sub, err = nc.Subscribe(opt.Subjects.Snapshot(opt.Run), b.serveChunk)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("subscribe to snapshot requests: %w", err)
	}
	b.subs = append(b.subs, sub)
	if b.disc, err = newDiscovery(nc); err != nil {
		b.Close()
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		b.Close()
		return nil, fmt.Errorf("natsbus: subscribe on the server (is the connection up?): %w", err)
	}
	return b, nil
}

// Run is the run id.
func (b *Backend) Run() string { return b.opt.Run }

// Stats returns a copy of the counters.
func (b *Backend) Stats() Stats {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	s := b.stats
	s.Rejected = make(map[protocol.Reason]int64, len(b.stats.Rejected))
	for k, v := range b.stats.Rejected {
		s.Rejected[k] = v
	}
	s.CoordinatorSeconds += float64(b.chunkNanos.Load()) / 1e9
	s.ChunkBytes = b.chunkBytes.Load()
	return s
}

// Audit is what the backend refused and checked over its lifetime.
func (b *Backend) Audit() coordinator.Audit {
	s := b.Stats()
	a := coordinator.Audit{Verified: s.Verified, Mismatches: s.Mismatches, Quarantined: s.Quarantined}
	for k, v := range s.Rejected {
		if v != 0 {
			a.Reject(string(k))
			a.Rejected[string(k)] = v
		}
	}
	return a
}

// Close unsubscribes. The connection is the caller's.
func (b *Backend) Close() error {
	for _, s := range b.subs {
		s.Unsubscribe()
	}
	if b.disc != nil {
		b.disc.stop()
	}
	return nil
}

func (b *Backend) count(f func(*Stats)) {
	b.statsMu.Lock()
	f(&b.stats)
	b.statsMu.Unlock()
}

// serveChunk answers a sampler's request for a chunk of the current
// snapshot, only on an inbox of the credential the request names: the
// server lets credential id publish chunk requests only under its own id,
// and read only its own inboxes, so a chunk never goes where the
// requester chooses unless it is the requester's own inbox.
func (b *Backend) serveChunk(m *nats.Msg) {
	start := time.Now()
	defer func() { b.chunkNanos.Add(time.Since(start).Nanoseconds()) }()
	id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if protocol.ValidIdentity(id) != nil || !strings.HasPrefix(m.Reply, protocol.Inbox(id)+".") {
		b.rejectChunk(&protocol.RejectError{Reason: protocol.ReasonReply, Detail: fmt.Sprintf("chunk request of %q asks for the reply on %q, not on its own inbox %s.>", id, m.Reply, protocol.Inbox(id))})
		return // no answer at all
	}
	var req protocol.ChunkRequest
	var c protocol.Codec
	fail := func(err error) {
		b.rejectChunk(err)
		r := nats.NewMsg(m.Reply)
		r.Header.Set(protocol.HeaderError, err.Error())
		m.RespondMsg(r)
	}
	if err := c.UnmarshalChunkRequest(m.Data, &req); err != nil {
		fail(err)
		return
	}
	if err := req.Validate(); err != nil {
		fail(err)
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case req.Run != b.opt.Run:
		fail(&protocol.RejectError{Reason: protocol.ReasonRun, Detail: fmt.Sprintf("chunk of run %s, serving %s", req.Run, b.opt.Run)})
		return
	case b.chunks == nil || req.Step < b.ref.Step:
		fail(&protocol.RejectError{Reason: protocol.ReasonStaleStep, Detail: fmt.Sprintf("no snapshot of step %d (serving step %d)", req.Step, b.ref.Step)})
		return
	case req.Step > b.ref.Step:
		fail(&protocol.RejectError{Reason: protocol.ReasonFutureStep, Detail: fmt.Sprintf("no snapshot of step %d (serving step %d)", req.Step, b.ref.Step)})
		return
	case req.Index >= len(b.chunks):
		fail(&protocol.RejectError{Reason: protocol.ReasonRange, Detail: fmt.Sprintf("chunk %d of %d", req.Index, len(b.chunks))})
		return
	}
	out := c.MarshalChunk(nil, &protocol.Chunk{
		Version: protocol.Version, Run: b.opt.Run, Step: b.ref.Step,
		Index: req.Index, Count: len(b.chunks), Offset: protocol.ChunkOffset(b.ref, req.Index), Size: b.ref.Size, Sum: b.ref.Sum,
		Data: b.chunks[req.Index],
	})
	b.chunkBytes.Add(int64(len(out)))
	m.Respond(out)
}

func (b *Backend) rejectChunk(err error) {
	reason := protocol.ReasonOf(err)
	if reason == "" {
		reason = protocol.ReasonMalformed
	}
	b.count(func(s *Stats) { s.Rejected[reason]++ })
	level := hclog.Warn
	if reason == protocol.ReasonStaleStep {
		level = hclog.Debug // a slow sampler asking for the last step's snapshot
	}
	b.log.Log(level, "chunk request refused", "reason", reason, "error", err)
}

// publish makes w the served snapshot and announces it.
func (b *Backend) publish(w *coordinator.Work) error {
	if b.chunks != nil && b.workID == w.ID && b.ref.Step == int64(w.Step) {
		return nil
	}
	setup := b.opt.Setup
	s := &b.snap
	*s = protocol.Snapshot{
		Version: protocol.Version, Run: b.opt.Run, Step: int64(w.Step),
		Problem: worker.ProblemSpec(setup.Config), Theta: w.Theta,
		Probe: worker.ProbeSettings(b.opt.Probe), Width: b.opt.Width,
	}
	if w.Counts != nil {
		s.Points = protocol.Collocation{Seed: w.PointSeed, Counts: w.Counts}
	} else {
		s.Points = protocol.Collocation{Blocks: worker.BlockPoints(w.Points)}
	}
	// The served chunks alias b.encoded, which is about to be overwritten:
	// stop serving them first (a late request for the old step is refused).
	b.mu.Lock()
	buf := b.encoded[:0]
	b.encoded, b.chunks = nil, nil
	b.mu.Unlock()
	encoded := b.codec.MarshalSnapshot(buf, s)
	ref, chunks := protocol.SplitSnapshot(encoded, s.Step, protocol.ChunkSize(b.maxPayload()))
	b.mu.Lock()
	b.encoded, b.chunks, b.ref, b.workID = encoded, chunks, ref, w.ID
	b.mu.Unlock()
	b.doneRanges = map[[2]int]bool{}
	ann := b.codec.MarshalAnnounce(nil, &protocol.Announce{Version: protocol.Version, Run: b.opt.Run, Snap: ref})
	if err := b.nc.Publish(b.opt.Subjects.Announce(b.opt.Run), ann); err != nil {
		return fmt.Errorf("announce snapshot of step %d: %w", w.Step, err)
	}
	b.log.Debug("snapshot published", "step", w.Step, "bytes", ref.Size, "chunks", ref.Chunks)
	return nil
}

func (b *Backend) maxPayload() int {
	if mp := int(b.nc.MaxPayload()); mp > 0 {
		return mp
	}
	return 1 << 20
}

// allQuarantined fails the run when every sampler discovery sees has been
// quarantined: nothing is left to do the work, and the likeliest cause is
// not a rogue but hardware that computes other bits than this process.
func (b *Backend) allQuarantined() error {
	if len(b.disc.live) == 0 || b.live() > 0 {
		return nil
	}
	return fmt.Errorf("every sampler (%d) answered a checked batch with other bits than this process computes, and is quarantined: samplers on another BLAS backend or CPU kind than the coordinator cannot be checked bit for bit; run without --verify there", len(b.disc.live))
}

// live is the number of instances discovery sees, quarantined ones excepted.
func (b *Backend) live() int {
	n := 0
	for _, id := range b.disc.live {
		if !b.quarantined[id] {
			n++
		}
	}
	return n
}

// discover runs one discovery round, waiting for answers for wait.
func (b *Backend) discover(ctx context.Context, wait time.Duration) error {
	if err := b.disc.ping(); err != nil {
		return fmt.Errorf("discover samplers: %w", err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-b.disc.answers:
			b.disc.add(m)
		case <-timer.C:
			b.disc.close()
			b.count(func(s *Stats) { s.Samplers = len(b.disc.live) })
			return nil
		}
	}
}

// waitSamplers returns the number of live sampler instances, waiting (and
// saying so) up to WaitSamplers while there are none.
func (b *Backend) waitSamplers(ctx context.Context) (int, error) {
	if time.Since(b.disc.closed) > 5*time.Second || b.live() == 0 {
		if err := b.discover(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
	start, told := time.Now(), time.Time{}
	for b.live() == 0 {
		waited := time.Since(start)
		if waited > b.opt.WaitSamplers {
			return 0, fmt.Errorf("no sampler answered on %s within %v: start samplers with: sampler --nats <url> (or wait longer with --wait-samplers)", b.opt.Subjects.Work(), b.opt.WaitSamplers)
		}
		if time.Since(told) > 10*time.Second {
			b.log.Warn("no sampler answers: waiting for samplers", "service", protocol.ServiceName, "subject", b.opt.Subjects.Work(),
				"giving_up_in", (b.opt.WaitSamplers - waited).Round(time.Second), "start_with", "sampler --nats <url>")
			told = time.Now()
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if err := b.discover(ctx, 500*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return b.live(), nil
}

// Batch states.
const (
	waiting  = iota // to be offered (again)
	out             // offered; an answer may come
	answered        // accepted, being checked (--verify)
	done            // accepted (and checked, if chosen)
)

type batch struct {
	lo, hi   int
	state    int
	attempts int // sends that came back unanswered: late, lost, failed
	declined int // offers declined since the last acceptance
	deadline time.Time
	retryAt  time.Time // a waiting batch is offered from then on
	latest   *offer    // the latest offer of the batch
	from     string    // the instance whose answer was accepted
	result   []float64 // that answer, held until the call's checks are done
	gen      int       // bumped when an accepted answer is thrown out
}

// offer is one send of a batch.
type offer struct {
	bt     *batch
	at     time.Time
	acked  bool
	ackAt  time.Time
	holder string // the instance that acknowledged it
}

// call is the state of one Probes call.
type call struct {
	w        *coordinator.Work
	lo, hi   int
	batches  []*batch
	byLo     map[int]*batch
	offers   map[string]*offer // by reply token
	n        int               // sampler instances
	outCount int
	done     int
	nextDisc time.Time // the next discovery round; discOpen while its window runs
	discEnd  time.Time
	discOpen bool
	noneFrom time.Time // when discovery last saw no sampler (zero: it saw some)
	exp      protocol.ResultExpect
	emit     func(j int, d []float64) error
	checks   []verifyJob // answers waiting for the verifier
	// strikes counts, per sampler instance, the batches it took in this
	// call and failed (an error, a refused answer, a missed deadline);
	// one with maxStrikes takes no more of the call's batches, and its
	// failures stop counting against the batches (MaxAttempts): one rogue
	// cannot use up a batch's attempts.
	strikes map[string]int
	// taken is when an offer was last taken or an answer accepted: with
	// none for WaitSamplers while batches wait, the call ends with an
	// error instead of offering them forever (every offer declined).
	taken time.Time
}

// working reports whether a sampler holds one of the call's batches (took
// its latest offer), or the verifier has an answer to check.
func (c *call) working() bool {
	for _, bt := range c.batches {
		if bt.state == answered || bt.state == out && bt.latest.acked {
			return true
		}
	}
	return len(c.checks) > 0
}

// maxStrikes is how many of a call's batches one sampler instance may
// fail before it gets no more of them.
const maxStrikes = 2

// Probes computes probes [lo, hi) of w on the samplers.
func (b *Backend) Probes(ctx context.Context, w *coordinator.Work, lo, hi int, emit func(j int, d []float64) error) error {
	if hi <= lo {
		return nil
	}
	var busy time.Duration // coordinator time, not waiting
	tick := time.Now()
	account := func() { busy += time.Since(tick) }
	defer func() { b.count(func(s *Stats) { s.CoordinatorSeconds += busy.Seconds() }) }()

	if err := b.publish(w); err != nil {
		return err
	}
	account()
	n, err := b.waitSamplers(ctx)
	if err != nil {
		return err
	}
	tick = time.Now()

	// Batches: about four per sampler, within the max payload.
	size := b.opt.Batch
	maxBatch := max(1, (b.maxPayload()-1024)/(8*b.opt.Width))
	if size <= 0 {
		size = (hi - lo + 4*n - 1) / (4 * n)
	}
	size = min(max(size, 1), maxBatch)
	c := &call{w: w, lo: lo, hi: hi, byLo: map[int]*batch{}, offers: map[string]*offer{}, n: n, emit: emit,
		strikes: map[string]int{}, taken: time.Now(),
		exp:      protocol.ResultExpect{Run: b.opt.Run, Step: int64(w.Step), Width: b.opt.Width, Lo: lo, Probes: hi, MaxBatch: maxBatch},
		nextDisc: time.Now().Add(time.Second)}
	for s := lo; s < hi; s += size {
		bt := &batch{lo: s, hi: min(s+size, hi)}
		c.batches = append(c.batches, bt)
		c.byLo[s] = bt
	}
	if b.ver != nil {
		b.ver.start(ctx)
		defer b.ver.end()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c.done < len(c.batches) {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		if err := b.timeouts(c, now); err != nil {
			return err
		}
		if err := b.offerWaiting(c, now); err != nil {
			return err
		}
		if err := b.discoveryTick(c, now); err != nil {
			return err
		}
		timer.Reset(max(time.Until(b.nextWake(c)), time.Millisecond))
		account()
		var (
			verdicts chan verdict
			checks   chan verifyJob
			next     verifyJob
		)
		if b.ver != nil {
			verdicts = b.ver.out
			if len(c.checks) > 0 {
				checks, next = b.ver.jobs, c.checks[0]
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case checks <- next:
			c.checks = c.checks[1:]
		case <-timer.C:
			tick = time.Now()
		case m := <-b.disc.answers:
			tick = time.Now()
			b.disc.add(m)
		case v := <-verdicts:
			tick = time.Now()
			if err := b.judge(c, v); err != nil {
				return err
			}
		case m := <-b.results:
			tick = time.Now()
			if err := b.handle(c, m); err != nil {
				return err
			}
		}
	}
	if b.ver != nil {
		// Every check passed: hand the held answers over in index order.
		for _, bt := range c.batches {
			if err := b.emitBatch(c, bt, bt.result); err != nil {
				return err
			}
			bt.result = nil
		}
	}
	account()
	return nil
}

// nextWake is the earliest time something is due: a deadline, an
// acknowledgement, a retry, a discovery round.
func (b *Backend) nextWake(c *call) time.Time {
	next := c.nextDisc
	if c.discOpen {
		next = c.discEnd
	}
	for _, bt := range c.batches {
		switch bt.state {
		case out:
			if bt.deadline.Before(next) {
				next = bt.deadline
			}
			if o := bt.latest; !o.acked && o.at.Add(b.opt.AckWait).Before(next) {
				next = o.at.Add(b.opt.AckWait)
			}
		case waiting:
			if c.outCount < 2*max(c.n, 1) && bt.retryAt.Before(next) {
				next = bt.retryAt
			}
		}
	}
	return next
}

// timeouts sends again the batches whose deadline passed and those whose
// latest offer nobody acknowledged in time.
func (b *Backend) timeouts(c *call, now time.Time) error {
	for _, bt := range c.batches {
		if bt.state != out {
			continue
		}
		switch o := bt.latest; {
		case !now.Before(bt.deadline):
			b.log.Warn("batch late, sending it again", "step", c.w.Step, "lo", bt.lo, "hi", bt.hi, "attempt", bt.attempts+2, "holder", b.disc.name(o.holder))
		case !o.acked && !now.Before(o.at.Add(b.opt.AckWait)):
			b.count(func(s *Stats) { s.Lost++ })
			b.log.Warn("batch not acknowledged, sending it again", "step", c.w.Step, "lo", bt.lo, "hi", bt.hi, "waited", b.opt.AckWait)
		default:
			continue
		}
		if err := b.fail(c, bt, "no answer"); err != nil {
			return err
		}
	}
	if now.Sub(c.taken) > b.opt.WaitSamplers && !c.working() {
		return fmt.Errorf("step %d: no sampler took a batch for %v, every offer declined (samplers busy with other runs, or a client that declines everything): wait longer with --wait-samplers, or check the samplers", c.w.Step, b.opt.WaitSamplers)
	}
	return nil
}

// fail is retry for a batch whose latest offer went wrong: the instance
// that took it (if any) gets a strike, and once it has maxStrikes the
// failure no longer counts against the batch.
func (b *Backend) fail(c *call, bt *batch, why string) error {
	if h := bt.latest.holder; bt.latest.acked && h != "" {
		c.strikes[h]++
		if c.strikes[h] > maxStrikes {
			b.count(func(s *Stats) { s.Redispatched++ })
			b.requeue(c, bt, time.Time{})
			return nil
		}
		if c.strikes[h] == maxStrikes {
			b.log.Warn("sampler failed batches of this call; it gets no more of them", "sampler", b.disc.name(h), "step", c.w.Step, "failures", maxStrikes)
		}
	}
	return b.retry(c, bt, why)
}

// retry counts an unanswered send of bt and offers it again, or fails the
// call after MaxAttempts.
func (b *Backend) retry(c *call, bt *batch, why string) error {
	bt.attempts++
	if bt.attempts >= b.opt.MaxAttempts {
		return fmt.Errorf("probes %d..%d of step %d: %s after %d attempts, over the limit of %d", bt.lo, bt.hi-1, c.w.Step, why, bt.attempts, b.opt.MaxAttempts)
	}
	b.count(func(s *Stats) { s.Redispatched++ })
	b.requeue(c, bt, time.Time{})
	return nil
}

// requeue puts an out batch back among the waiting ones, to be offered at
// or after at.
func (b *Backend) requeue(c *call, bt *batch, at time.Time) {
	if bt.state == out {
		c.outCount--
	}
	bt.state, bt.retryAt = waiting, at
}

// offerWaiting offers waiting batches while the window (two per sampler)
// has room. The first n go out with hold 0 (only an idle sampler takes
// one); the next ones with hold 1 (a sampler queues at most one more), and
// only once n batches are acknowledged, so the idle samplers are filled
// before any queues a second.
func (b *Backend) offerWaiting(c *call, now time.Time) error {
	acked, unacked := 0, 0
	for _, bt := range c.batches {
		if bt.state == out {
			if bt.latest.acked {
				acked++
			} else {
				unacked++
			}
		}
	}
	for _, bt := range c.batches {
		if c.outCount >= 2*max(c.n, 1) {
			return nil
		}
		if bt.state != waiting || now.Before(bt.retryAt) {
			continue
		}
		hold := 1
		if acked < c.n {
			if acked+unacked >= c.n {
				return nil // wait until the offers to idle samplers are taken
			}
			hold = 0
		}
		if err := b.offer(c, bt, now, hold); err != nil {
			return err
		}
		if bt.state == out {
			unacked++
		}
	}
	return nil
}

// offer sends bt to the samplers' queue group. A batch declined over and
// over is taken by anyone with room (hold 3); when even that is declined
// again and again (every sampler is full, with other coordinators' work
// too), it waits a quarter of a second before the next round of offers:
// congestion is not a failure, and the wait keeps the offers from spinning.
func (b *Backend) offer(c *call, bt *batch, now time.Time, hold int) error {
	switch {
	case bt.declined > 6*c.n+16:
		bt.declined = 0
		bt.retryAt = now.Add(250 * time.Millisecond)
		b.log.Debug("every sampler declined a batch; offering it again shortly", "step", c.w.Step, "lo", bt.lo, "hi", bt.hi)
		return nil
	case bt.declined > 2*c.n:
		hold = 3
	}
	b.nonce++
	token := strconv.FormatUint(b.nonce, 36)
	o := &offer{bt: bt, at: now}
	c.offers[token] = o
	bt.latest = o
	bt.state = out
	c.outCount++
	bt.deadline = now.Add(b.deadline(bt.hi-bt.lo, bt.attempts))
	req := b.codec.MarshalWorkRequest(nil, &protocol.WorkRequest{
		Version: protocol.Version, Run: b.opt.Run, Step: int64(c.w.Step),
		Lo: bt.lo, Hi: bt.hi, Snap: b.ref, Attempt: bt.attempts, Hold: hold,
	})
	b.count(func(s *Stats) { s.Batches++ })
	if err := b.nc.PublishRequest(b.opt.Subjects.Work(), b.opt.Subjects.ResultsFor(b.opt.Run, token), req); err != nil {
		return fmt.Errorf("send work: %w", err)
	}
	return nil
}

// discoveryTick runs a discovery round every second while batches are out,
// and after each round sends again the batches held by instances that
// have left: a batch whose sampler died does not wait for its deadline.
func (b *Backend) discoveryTick(c *call, now time.Time) error {
	if c.discOpen {
		if now.Before(c.discEnd) {
			return nil
		}
		c.discOpen = false
		b.disc.close()
		b.count(func(s *Stats) { s.Samplers = len(b.disc.live) })
		c.n = max(b.live(), 1)
		for _, bt := range c.batches {
			if o := bt.latest; bt.state == out && o.acked && !b.disc.alive(o.holder, o.ackAt) {
				b.count(func(s *Stats) { s.Lost++ })
				b.log.Warn("sampler left with a batch, sending it again", "sampler", b.disc.name(o.holder), "step", c.w.Step, "lo", bt.lo, "hi", bt.hi)
				b.count(func(s *Stats) { s.Redispatched++ })
				b.requeue(c, bt, time.Time{})
			}
		}
		if err := b.allQuarantined(); err != nil {
			return err
		}
		if b.live() > 0 {
			c.noneFrom = time.Time{}
		} else if c.noneFrom.IsZero() {
			c.noneFrom = now
		} else if now.Sub(c.noneFrom) > b.opt.WaitSamplers {
			return fmt.Errorf("no sampler left on %s for %v: start samplers with: sampler --nats <url> (or wait longer with --wait-samplers)", b.opt.Subjects.Work(), b.opt.WaitSamplers)
		}
		return nil
	}
	if now.Before(c.nextDisc) {
		return nil
	}
	c.nextDisc = now.Add(time.Second)
	if c.outCount == 0 && c.noneFrom.IsZero() {
		return nil
	}
	if err := b.disc.ping(); err != nil {
		return fmt.Errorf("discover samplers: %w", err)
	}
	c.discOpen, c.discEnd = true, now.Add(500*time.Millisecond)
	return nil
}

// handle takes one message on the run's results subject: an
// acknowledgement, a decline, the server's "no responders", a sampler's
// error, or a result.
func (b *Backend) handle(c *call, m *nats.Msg) error {
	o := c.offers[m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]]
	current := o != nil && o.bt.latest == o && o.bt.state == out
	switch {
	case m.Header.Get("Status") == "503" && len(m.Data) == 0:
		// No sampler in the queue group: wait for discovery to see one.
		b.count(func(s *Stats) { s.NoResponders++ })
		b.drop(c, m.Subject, o)
		if current {
			o.bt.declined++
			b.requeue(c, o.bt, time.Now().Add(250*time.Millisecond))
			c.nextDisc = time.Now()
			b.disc.closed = time.Time{}
		}
		return nil
	case m.Header.Get(protocol.HeaderStatus) == protocol.StatusBusy:
		b.count(func(s *Stats) { s.Declined++ })
		b.drop(c, m.Subject, o)
		if current {
			o.bt.declined++
			b.requeue(c, o.bt, time.Time{})
		}
		return nil
	case m.Header.Get(protocol.HeaderStatus) == protocol.StatusAccepted:
		holder := m.Header.Get(protocol.HeaderInstance)
		if o == nil || o.acked || protocol.ValidInstance(holder) != nil {
			return nil
		}
		o.acked, o.ackAt, o.holder = true, time.Now(), holder
		if current && (b.quarantined[holder] || c.strikes[holder] >= maxStrikes) {
			// Its answer would be refused, or it has failed this call's
			// batches: offer the batch again now.
			o.bt.declined++
			b.requeue(c, o.bt, time.Time{})
			return nil
		}
		if current {
			c.taken = time.Now()
		}
		return nil
	case m.Header.Get(micro.ErrorCodeHeader) != "":
		return b.samplerError(c, o, current, m)
	}
	return b.accept(c, o, m.Data)
}

// drop forgets the offer on subject when nobody took it (declined, or
// no one to deliver it to): no answer can come for it any more.
func (b *Backend) drop(c *call, subject string, o *offer) {
	if o != nil && !o.acked {
		delete(c.offers, subject[strings.LastIndexByte(subject, '.')+1:])
	}
}

func (b *Backend) samplerError(c *call, o *offer, current bool, m *nats.Msg) error {
	b.count(func(s *Stats) { s.SamplerErrors++ })
	var se protocol.SamplerError
	if err := b.codec.UnmarshalSamplerError(m.Data, &se); err != nil {
		b.reject(err, nil)
		return nil
	}
	if !current {
		return nil // about another call, or a batch answered since
	}
	// A sampler's words go into logs and errors: a line at most.
	se.Code, se.Message = clip(se.Code, 64), clip(se.Message, 1024)
	bt := o.bt
	if se.Code == protocol.CodeStopping {
		b.log.Debug("sampler stopping, offering its batch again", "sampler", b.disc.name(se.Sampler), "step", c.w.Step, "lo", bt.lo)
		b.requeue(c, bt, time.Time{})
		return nil
	}
	if !o.acked {
		// A sampler takes a batch before it works on it: an error on an
		// offer nobody took is no attempt.
		bt.declined++
		b.requeue(c, bt, time.Time{})
		return nil
	}
	b.log.Warn("sampler error", "sampler", b.disc.name(o.holder), "code", se.Code, "step", c.w.Step, "lo", bt.lo, "error", se.Message)
	return b.fail(c, bt, fmt.Sprintf("the last sampler, %s, answered %s: %s", b.disc.name(o.holder), se.Code, se.Message))
}

// accept decodes and validates one result and takes it: emitted at once,
// or held for the call's checks with --verify. Anything not taken is
// counted and logged; when it came on the batch's latest offer, that offer
// is spent, and the batch is offered again at once.
func (b *Backend) accept(c *call, o *offer, data []byte) error {
	r := &b.res
	// spent ends the batch's latest offer with a refused answer: a
	// failure of the instance that took it (see fail).
	spent := func() error {
		if o == nil || o.bt.latest != o || o.bt.state != out {
			return nil
		}
		if o.acked {
			return b.fail(c, o.bt, "its answer was refused")
		}
		o.bt.declined++
		b.requeue(c, o.bt, time.Time{})
		return nil
	}
	if err := b.codec.UnmarshalResult(data, r); err != nil {
		b.reject(err, r)
		return spent()
	}
	if err := r.Validate(c.exp); err != nil {
		b.reject(err, r)
		return spent()
	}
	bt := c.byLo[r.Lo]
	switch {
	case bt == nil || bt.hi != r.Hi:
		if b.doneRanges[[2]int{r.Lo, r.Hi}] {
			b.reject(&protocol.RejectError{Reason: protocol.ReasonDuplicate, Detail: "a batch of an earlier call"}, r)
			return nil
		}
		b.reject(&protocol.RejectError{Reason: protocol.ReasonRange, Detail: fmt.Sprintf("probes [%d, %d) were not sent as one batch", r.Lo, r.Hi)}, r)
		return nil
	case bt.state == answered || bt.state == done:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonDuplicate, Detail: "the batch is answered"}, r)
		return nil
	case o == nil || o.bt != bt:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonRange, Detail: fmt.Sprintf("probes [%d, %d) answered on the reply subject of another batch", r.Lo, r.Hi)}, r)
		return spent()
	case o.acked && r.Sampler != o.holder:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonSender, Detail: fmt.Sprintf("the answer names sampler %s, the batch was taken by %s", r.Sampler, o.holder)}, r)
		return spent()
	case b.quarantined[r.Sampler]:
		b.reject(&protocol.RejectError{Reason: protocol.ReasonQuarantined, Detail: fmt.Sprintf("sampler %s answered a checked batch wrongly earlier in the run", r.Sampler)}, r)
		return spent()
	}
	if bt.state == out {
		c.outCount--
	}
	c.taken = time.Now()
	elapsed := time.Since(o.at).Seconds()
	b.observe(bt, elapsed)
	b.count(func(s *Stats) {
		s.Results++
		s.SamplerSeconds += math.Min(r.Seconds, elapsed)
	})
	b.doneRanges[[2]int{r.Lo, r.Hi}] = true
	bt.declined = 0
	if b.ver == nil {
		if err := b.emitBatch(c, bt, r.D); err != nil {
			return err
		}
		bt.state = done
		c.done++
		return nil
	}
	bt.result = append(bt.result[:0], r.D...)
	bt.from = r.Sampler
	if !b.trusted[r.Sampler] || b.ver.chosen(c.w.Step, bt.lo, bt.hi) {
		if err := b.check(c, bt); err != nil {
			return err
		}
		bt.state = answered
		return nil
	}
	bt.state = done
	c.done++
	return nil
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
// sampler trusted; a mismatch quarantines the sampler and sends every batch
// it answered in this call again.
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
		b.trusted[bt.from] = true
		bt.state = done
		c.done++
		return nil
	}
	bad := bt.from
	b.count(func(s *Stats) {
		s.Mismatches++
		s.Rejected[protocol.ReasonMismatch]++
		if !b.quarantined[bad] {
			s.Quarantined++
		}
	})
	b.quarantined[bad] = true
	delete(b.trusted, bad)
	b.log.Warn("a sampler's answer differs from this process's computation of the same probes: quarantined for the run, its batches of this step done again",
		"sampler", b.disc.name(bad), "step", c.w.Step, "lo", bt.lo, "hi", bt.hi)
	if err := b.allQuarantined(); err != nil {
		return err
	}
	for _, x := range c.batches {
		if (x.state == answered || x.state == done) && x.from == bad {
			if x.state == done {
				c.done--
			}
			x.gen++
			// A check of the old answer may still be reading it: the
			// next answer goes to a new slice, not over this one.
			x.result = nil
			x.from = ""
			x.state = waiting
			x.retryAt = time.Time{}
			delete(b.doneRanges, [2]int{x.lo, x.hi})
			b.count(func(s *Stats) { s.Redispatched++ })
		}
	}
	return nil
}

// emitBatch hands a batch's quotients to emit in index order; a refusal
// that is a duplicate is skipped.
func (b *Backend) emitBatch(c *call, bt *batch, d []float64) error {
	wd := b.opt.Width
	for j := bt.lo; j < bt.hi; j++ {
		if err := c.emit(j, d[(j-bt.lo)*wd:(j-bt.lo+1)*wd]); err != nil {
			if errors.Is(err, coordinator.ErrDuplicate) {
				continue
			}
			return fmt.Errorf("probe %d: %w", j, err)
		}
	}
	return nil
}

// reject counts and logs a refused result (r may be nil or half decoded).
func (b *Backend) reject(err error, r *protocol.Result) {
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
		level = hclog.Debug // late answers to re-sent batches are expected
	}
	if r == nil {
		b.log.Log(level, "message rejected", "reason", reason, "error", err)
		return
	}
	b.log.Log(level, "result rejected", "reason", reason, "sampler", b.disc.name(r.Sampler), "step", r.Step, "lo", r.Lo, "hi", r.Hi, "error", err)
}

// deadline is how long a batch of k probes may take at its attempt-th
// re-send: it may wait behind another batch in its sampler's queue (the
// window holds two per sampler), so four times two batches' observed time
// plus a second; before any result, the configured first timeout. It
// doubles with every attempt, within [1 s, 1 h].
func (b *Backend) deadline(k, attempt int) time.Duration {
	// In seconds, clamped before the conversion: a time per probe pushed
	// up by a slow sampler times a large batch would overflow a Duration.
	secs := b.opt.Timeout.Seconds()
	if b.perProbe > 0 {
		secs = 8*b.perProbe*float64(k) + 1
	}
	secs *= math.Exp2(float64(min(attempt, 16)))
	secs = math.Min(math.Max(secs, minDeadline.Seconds()), maxDeadline.Seconds())
	return time.Duration(secs * float64(time.Second))
}

// observe updates the time per probe from a batch answered elapsed seconds
// after it was sent, by the coordinator's own clock.
func (b *Backend) observe(bt *batch, elapsed float64) {
	per := math.Min(elapsed, maxDeadline.Seconds()) / float64(bt.hi-bt.lo)
	if b.perProbe == 0 {
		b.perProbe = per
	} else {
		b.perProbe = 0.8*b.perProbe + 0.2*per
	}
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
