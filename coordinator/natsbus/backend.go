// Package natsbus is the coordinator's NATS backend: it publishes each
// step's snapshot (in chunks that samplers pull), hands batches of probe
// indices to the samplers that ask for work, follows their progress,
// gives a batch to another sampler when its holder falls silent, drops
// duplicates and anything invalid or implausible, optionally checks
// answers by recomputing them (Options.Verify), and hands each probe's
// quotient to the same accumulator the in-process backend feeds. It
// carries no math: the plausibility bound comes from the coordinator
// (Options.Check).
//
// Work is pulled, not pushed: an idle sampler asks for a batch, a busy one
// is never asked, so each batch normally crosses the bus once. While a
// sampler computes, it reports progress every beat; there is no deadline
// on a batch, only on silence. A slow sampler keeps its batch (and gets
// smaller ones, sized by its measured speed); when a batch's holders run
// far behind their measured speed, an idle sampler computes a copy and the
// first answer wins, so a run finishes while one honest sampler remains.
//
// Every message's sender is the identity its subject names, which the
// server's permissions tie to one credential (SamplerPermissions): strikes,
// trust and quarantine go by that identity, never by a name a message
// gives itself.
//
// Every number on the wire is bounded before it is used: times come from
// the coordinator's own clock (a sampler's reported time only feeds
// statistics), a batch fits the server's max payload, and the dispatch loop
// waits only in one select that also watches cancellation, so nothing that
// arrives can keep it from stopping.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// Checker bounds what a probe's result can hold at a base point
// (coordinator.Plausibility): a result it refuses cannot have come from
// the kernel, so its sender is quarantined as a forger. At is called once
// per base point before any Check of it.
type Checker interface {
	At(w *coordinator.Work) error
	Check(j int, d []float64) error
}

// Options configure the backend.
type Options struct {
	Subjects protocol.Subjects
	Run      string           // run id, a subject token; default a random one
	Setup    *model.Setup     // the residual the samplers evaluate
	Probe    sampler.Settings // how they draw probes
	Width    int              // values per probe result (the plan's width)

	// Batch is the probes per batch; 0 sizes each batch when a sampler
	// asks: a share of what is left that shrinks towards the end of a call,
	// at most about BatchSeconds of that sampler's measured work, within the
	// max payload.
	Batch int
	// BatchSeconds is the work one batch should hold at its sampler's
	// measured speed (default 20 s); slow samplers get smaller batches.
	BatchSeconds float64
	// Timeout is how long a sampler holding a batch may stay silent (no
	// progress report; samplers report every Timeout/8) before the batch
	// goes to another and the silent sampler gets a strike (default 60 s).
	// It never limits how long a batch may take.
	Timeout time.Duration
	// WaitSamplers bounds how long a call waits while no sampler that may
	// still get work asks for it (default 5 minutes), saying so as it waits.
	WaitSamplers time.Duration
	// Verify is the fraction of batches recomputed in this process and
	// compared bit for bit (0: none). Every identity's first batch is
	// checked too when Verify > 0.
	Verify float64
	// VerifyKey keys the choice of checked batches; random when empty.
	VerifyKey []byte
	// InProcess are the identities of samplers this process runs: it
	// vouches for them, so they are never struck, excluded or checked.
	InProcess []string
	// Check bounds every result before it is taken (nil: no bound).
	Check Checker
	// Eval configures the evaluator of the checks.
	Eval model.Options
	Log  hclog.Logger
}

// Stats count what the backend saw. Rejected results are counted by reason
// and never averaged.
type Stats struct {
	Pulls int64 // pull requests served
	Idle  int64 // pulls answered "none": nothing to give the sampler then
	// Batches counts assignments sent (a batch given to a sampler); a
	// batch normally goes out once.
	Batches int64
	// Redispatched counts batches given out again after their holder fell
	// silent, failed, or was caught forging; Copies the extra holders of a
	// batch whose holders ran far behind their measured speed.
	Redispatched, Copies int64
	// Silent counts holders that fell silent for Timeout.
	Silent        int64
	Progress      int64 // progress reports taken
	Results       int64 // results accepted
	Duplicates    int64 // results of batches already answered (also in Rejected)
	SamplerErrors int64
	Rejected      map[protocol.Reason]int64
	// Verified counts batches recomputed in this process (--verify),
	// Mismatches those whose bits differed, Quarantined the identities
	// excluded for a mismatch or an implausible result.
	Verified, Mismatches, Quarantined int64
	// Retracted counts probes handed on and then taken back because their
	// sender was caught forging (Retracted).
	Retracted int64
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
	Samplers      int // identities that asked for work
}

// LogFields are the counters as key/value pairs for a log line.
func (s Stats) LogFields() []any {
	return []any{"batches", s.Batches, "results", s.Results, "pulls", s.Pulls, "idle_pulls", s.Idle,
		"progress_reports", s.Progress, "redispatched", s.Redispatched, "retracted", s.Retracted, "copies", s.Copies, "silent", s.Silent,
		"coordinator_seconds", s.CoordinatorSeconds, "sampler_seconds", s.SamplerSeconds, "samplers", s.Samplers}
}

// Backend is the NATS implementation of coordinator.Backend.
type Backend struct {
	nc   *nats.Conn
	opt  Options
	log  hclog.Logger
	subs []*nats.Subscription

	// Pulls and results reach the dispatch loop through these; between
	// calls, pulls are answered "none" at once.
	pulls   chan arrival
	results chan arrival
	active  atomic.Bool
	quit    chan struct{} // closed by Close

	codec protocol.Codec
	res   protocol.Result

	// The snapshot being served; chunk requests read it under mu.
	mu      sync.RWMutex
	workID  uint64
	ref     protocol.SnapshotRef
	chunks  [][]byte
	encoded []byte
	snap    protocol.Snapshot
	checkAt uint64 // the Work.ID Options.Check was last set to
	// checking is closed when Options.Check is ready for checkAt (it is
	// set beside the dispatch, while the samplers fetch and compute);
	// checkErr is what setting it said.
	checking chan struct{}
	checkErr error

	// Chunks served per identity for the served snapshot, and how many
	// copies of it each may have (see chunkQuota), under chunkMu.
	chunkMu sync.Mutex
	served  map[string]int
	quota   map[string]int
	inProc  map[string]bool

	floodMu sync.Mutex
	flood   map[string]*bucket

	statsMu    sync.Mutex
	stats      Stats
	chunkNanos atomic.Int64
	chunkBytes atomic.Int64

	peers      map[string]*peer
	strikesFor uint64 // the Work.ID the peers' strikes count for
	nonce      uint64
	doneRanges map[[2]int]bool // batches answered for the served snapshot
	announced  time.Time
	ver        *verifier

	// What was emitted for the served Work, by identity, and what must be
	// taken back from it (see Retracted).
	emitted   map[string][][2]int
	retracted []coordinator.Retraction
	sender    string                  // the identity whose result emit is being given (Sender)
	onCaught  func(id, reason string) // told of each quarantine at once (NotifyRetraction)
	held      atomic.Int64            // probes received and held for checks (Held)
	audit     coordinator.Audit       // identities refused and quarantined
}

// arrival is a message with the time it came.
type arrival struct {
	m  *nats.Msg
	at time.Time
}

// maxPeers bounds the identities the backend tracks: beyond it, new ones
// get no work (a deployment has one per sampler credential).
const maxPeers = 4096

// New subscribes to the run's pull, result and snapshot subjects on nc.
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
	if opt.WaitSamplers <= 0 {
		opt.WaitSamplers = 5 * time.Minute
	}
	if opt.BatchSeconds <= 0 {
		opt.BatchSeconds = 20
	}
	b := &Backend{nc: nc, opt: opt, pulls: make(chan arrival, 256), results: make(chan arrival, 1024), quit: make(chan struct{}),
		peers: map[string]*peer{}, doneRanges: map[[2]int]bool{}, emitted: map[string][][2]int{},
		served: map[string]int{}, quota: map[string]int{}, inProc: map[string]bool{}, flood: map[string]*bucket{}}
	b.log = opt.Log
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	b.log = b.log.Named("natsbus").With("run", opt.Run)
	b.stats.Rejected = map[protocol.Reason]int64{}
	for _, id := range opt.InProcess {
		if err := protocol.ValidIdentity(id); err != nil {
			return nil, err
		}
		b.peer(id).inProcess = true
		b.inProc[id] = true
	}
	if opt.Verify != 0 {
		var err error
		if b.ver, err = newVerifier(opt.Verify, opt.VerifyKey, opt.Width); err != nil {
			return nil, err
		}
	}
	subscribe := func(subject string, cb nats.MsgHandler) error {
		sub, err := nc.Subscribe(subject, cb)
		if err != nil {
			b.Close()
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		// Generous bounds, not the flow control: pulls come from idle
		// samplers only, progress every beat from busy ones.
		sub.SetPendingLimits(1<<16, 256<<20)
		b.subs = append(b.subs, sub)
		return nil
	}
	if err := subscribe(opt.Subjects.Results(opt.Run), b.arriveResult); err != nil {
		return nil, err
	}
	if err := subscribe(opt.Subjects.Pull(opt.Run), b.arrivePull); err != nil {
		return nil, err
	}
	if err := subscribe(opt.Subjects.Snapshot(opt.Run), b.serveChunk); err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		b.Close()
		return nil, fmt.Errorf("natsbus: subscribe on the server (is the connection up?): %w", err)
	}
	return b, nil
}

// Each identity may send at most floodRate messages a second to the
// dispatch loop (pulls, progress, results, errors), in bursts of twice
// that: an honest sampler sends a few a second per replica, and one
// credential flooding the coordinator cannot crowd out the others' answers.
const floodRate = 2000

type bucket struct {
	tokens float64
	at     time.Time
}

// admit takes a token of the identity a subject names (none: refused).
func (b *Backend) admit(subject string) bool {
	id, err := protocol.Sender(subject)
	if err != nil {
		return true // refused with its reason by the loop
	}
	now := time.Now()
	b.floodMu.Lock()
	defer b.floodMu.Unlock()
	k := b.flood[id]
	if k == nil {
		if len(b.flood) >= maxPeers {
			return false
		}
		k = &bucket{tokens: 2 * floodRate, at: now}
		b.flood[id] = k
	}
	k.tokens = math.Min(2*floodRate, k.tokens+floodRate*now.Sub(k.at).Seconds())
	k.at = now
	if k.tokens < 1 {
		b.count(func(s *Stats) { s.Rejected[protocol.ReasonRate]++ })
		return false
	}
	k.tokens--
	return true
}

// arrivePull hands a pull to the dispatch loop, or answers "none" when no
// call runs.
func (b *Backend) arrivePull(m *nats.Msg) {
	if !b.admit(m.Subject) {
		return
	}
	if !b.active.Load() {
		b.respondNone(m, "")
		return
	}
	select {
	case b.pulls <- arrival{m, time.Now()}:
	default: // hundreds of pulls queued: this one can ask again
		b.respondNone(m, "")
	}
}

// arriveResult hands a sampler's message to the dispatch loop; progress
// reports between calls concern nothing any more and are dropped.
func (b *Backend) arriveResult(m *nats.Msg) {
	if !b.active.Load() && m.Header.Get(protocol.HeaderKind) == protocol.KindProgress || !b.admit(m.Subject) {
		return
	}
	select {
	case b.results <- arrival{m, time.Now()}:
	case <-b.quit:
	}
}

// respondNone answers a pull with "no batch for you now" (and why, when
// the sampler is excluded).
func (b *Backend) respondNone(m *nats.Msg, why string) {
	if m.Reply == "" {
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(protocol.HeaderStatus, protocol.StatusNone)
	if why != "" {
		r.Header.Set(protocol.HeaderError, why)
	}
	m.RespondMsg(r)
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

// Audit is what the backend refused and checked over its lifetime, and
// from which identities.
func (b *Backend) Audit() coordinator.Audit {
	s := b.Stats()
	b.statsMu.Lock()
	a := b.audit.Clone()
	b.statsMu.Unlock()
	a.Verified, a.Mismatches, a.Quarantined = s.Verified, s.Mismatches, s.Quarantined
	a.Rejected = nil
	for k, v := range s.Rejected {
		// A late copy of a batch already answered, or an answer of a step
		// already done, is what copies and slow samplers send: counted in
		// Stats, refused, but nothing went wrong.
		if v != 0 && k != protocol.ReasonDuplicate && k != protocol.ReasonStaleStep {
			a.Reject(string(k))
			a.Rejected[string(k)] = v
		}
	}
	return a
}

// Retracted returns, and forgets, the probes of w this backend emitted
// (in this Probes call or earlier ones of the same Work) whose sampler has
// since been caught forging: the caller drops them and computes them
// again (coordinator.Collect, coordinator.EstimateAt). A result is handed
// on once it is accepted (and, if chosen for a check, checked), so a
// forger caught later in a call has results out that only this takes
// back.
func (b *Backend) Retracted(w *coordinator.Work) []coordinator.Retraction {
	if w.ID != b.workID {
		return nil
	}
	r := b.retracted
	b.retracted = nil
	return r
}

// NotifyRetraction has f called as soon as an identity is quarantined
// during a Probes call (on that call's goroutine), before Retracted returns
// what it gave.
func (b *Backend) NotifyRetraction(f func(identity, reason string)) { b.onCaught = f }

// Sender is the identity whose result emit is being given, while it is.
func (b *Backend) Sender() string { return b.sender }

// Held is the number of probes received and held until their checks
// (--verify) are done.
func (b *Backend) Held() int { return int(b.held.Load()) }

// Quarantine excludes identity id for the run, as if it had been caught
// forging here (reason mismatch or implausible): a resumed run keeps out
// the samplers caught before. Call it between Probes calls.
func (b *Backend) Quarantine(id, reason string) {
	if protocol.ValidIdentity(id) != nil || b.inProc[id] {
		return
	}
	p := b.peer(id)
	if p == nil || p.quarantined != "" {
		return
	}
	p.quarantined, p.trusted = protocol.Reason(reason), false
	b.statsMu.Lock()
	if b.audit.Quarantines == nil {
		b.audit.Quarantines = map[string]string{}
	}
	if len(b.audit.Quarantines) < coordinator.MaxAuditIdentities {
		b.audit.Quarantines[id] = reason
	}
	b.statsMu.Unlock()
	b.log.Info("sampler stays quarantined: it was caught forging earlier in the run", "sampler", id, "reason", reason)
}

// Close unsubscribes. The connection is the caller's.
func (b *Backend) Close() error {
	b.waitCheck()
	for _, s := range b.subs {
		s.Unsubscribe()
	}
	b.subs = nil
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	return nil
}

func (b *Backend) count(f func(*Stats)) {
	b.statsMu.Lock()
	f(&b.stats)
	b.statsMu.Unlock()
}

// serveChunk answers a sampler's request for a chunk of the current
// snapshot, only on an inbox of the credential the request's subject
// names: the server lets credential id publish chunk requests only under
// its own id, and read only its own inboxes, so a chunk never goes where
// the requester chooses unless it is the requester's own inbox.
func (b *Backend) serveChunk(m *nats.Msg) {
	start := time.Now()
	defer func() { b.chunkNanos.Add(time.Since(start).Nanoseconds()) }()
	id, err := protocol.Sender(m.Subject)
	if err != nil || !strings.HasPrefix(m.Reply, protocol.Inbox(id)+".") {
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
	if b.chunks != nil && req.Run == b.opt.Run && req.Step == b.ref.Step {
		if err := b.chargeChunk(id, len(b.chunks)); err != nil {
			fail(err)
			return
		}
	}
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

// Copies of a snapshot an identity may fetch: one per replica that was
// given a batch lately, and two more (a prefetch, a fetch again after a
// timeout), at most maxHeld+2. A sampler needs one copy per replica and
// step; a client asking over and over is refused until the next snapshot.
const spareCopies = 2

// chargeChunk counts one chunk served to identity id, or refuses it when
// id has had its copies of the served snapshot (of n chunks).
func (b *Backend) chargeChunk(id string, n int) error {
	b.chunkMu.Lock()
	defer b.chunkMu.Unlock()
	if b.inProc[id] {
		return nil
	}
	copies := b.quota[id] + spareCopies
	if b.served[id] >= copies*n {
		return &protocol.RejectError{Reason: protocol.ReasonRate, Detail: fmt.Sprintf("%s has fetched %d copies of this snapshot, as many as its %d busy replicas and %d spare may", id, copies, b.quota[id], spareCopies)}
	}
	if _, ok := b.served[id]; ok || len(b.served) < maxPeers {
		b.served[id]++
	}
	return nil
}

func (b *Backend) rejectChunk(err error) {
	reason := protocol.ReasonOf(err)
	if reason == "" {
		reason = protocol.ReasonMalformed
	}
	b.count(func(s *Stats) { s.Rejected[reason]++ })
	level := hclog.Warn
	if reason == protocol.ReasonStaleStep || reason == protocol.ReasonRate {
		// A slow sampler asking for the last step's snapshot; a replica
		// prefetching before the coordinator has seen it take work.
		level = hclog.Debug
	}
	b.log.Log(level, "chunk request refused", "reason", reason, "error", err)
}

// publish makes w the served snapshot and announces it, and starts
// setting the plausibility bound at w beside the dispatch.
func (b *Backend) publish(w *coordinator.Work) error {
	if b.opt.Check != nil && b.checkAt != w.ID {
		b.waitCheck() // the bound of the last base point is still being set
		b.checkAt, b.checkErr = w.ID, nil
		done := make(chan struct{})
		b.checking = done
		go func() {
			defer close(done)
			if err := b.opt.Check.At(w); err != nil {
				b.checkErr = fmt.Errorf("bound the results of step %d: %w", w.Step, err)
			}
		}()
	}
	if b.chunks != nil && b.workID == w.ID && b.ref.Step == int64(w.Step) {
		return b.announce()
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
	b.emitted = map[string][][2]int{}
	b.chunkMu.Lock()
	clear(b.served)
	b.chunkMu.Unlock()
	b.retracted = nil
	b.log.Debug("snapshot published", "step", w.Step, "bytes", ref.Size, "chunks", ref.Chunks)
	return b.announce()
}

// waitCheck waits until the plausibility bound of the current base point
// is set, and says what setting it said.
func (b *Backend) waitCheck() error {
	if b.checking != nil {
		<-b.checking
	}
	return b.checkErr
}

// announce tells the samplers the run has work, with its snapshot.
func (b *Backend) announce() error {
	ann := b.codec.MarshalAnnounce(nil, &protocol.Announce{Version: protocol.Version, Run: b.opt.Run, Snap: b.ref})
	if err := b.nc.Publish(b.opt.Subjects.Announce(b.opt.Run), ann); err != nil {
		return fmt.Errorf("announce snapshot of step %d: %w", b.ref.Step, err)
	}
	b.announced = time.Now()
	return nil
}

func (b *Backend) maxPayload() int {
	if mp := int(b.nc.MaxPayload()); mp > 0 {
		return mp
	}
	return 1 << 20
}

// Probes computes probes [lo, hi) of w on the samplers.
func (b *Backend) Probes(ctx context.Context, w *coordinator.Work, lo, hi int, emit func(j int, d []float64) error) error {
	if hi <= lo {
		return nil
	}
	var busy time.Duration // coordinator time, not waiting
	tick := time.Now()
	account := func() { busy += time.Since(tick) }
	defer func() { b.count(func(s *Stats) { s.CoordinatorSeconds += busy.Seconds() }) }()

	c := b.newCall(w, lo, hi, emit)
	b.active.Store(true)
	defer b.endCall(c)
	defer b.held.Store(0)
	if err := b.publish(w); err != nil {
		return err
	}
	c.lastSign, c.warned = time.Now(), time.Now()
	if b.ver != nil {
		b.ver.start(ctx)
		defer b.ver.end()
	}
	account()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c.done < len(c.batches) || c.next < c.hi {
		if err := ctx.Err(); err != nil {
			return err
		}
		tick = time.Now()
		if err := b.tend(c, tick); err != nil {
			return err
		}
		timer.Reset(max(time.Until(b.nextWake(c, tick)), time.Millisecond))
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
			tick = time.Now()
			c.checks = c.checks[1:]
		case <-timer.C:
			tick = time.Now()
		case a := <-b.pulls:
			tick = time.Now()
			if err := b.handlePull(c, a); err != nil {
				return err
			}
		case v := <-verdicts:
			tick = time.Now()
			if err := b.judge(c, v); err != nil {
				return err
			}
		case a := <-b.results:
			tick = time.Now()
			if err := b.handle(c, a); err != nil {
				return err
			}
		}
		account()
	}
	return nil
}

// endCall stops taking pulls for the call and answers those that queued.
func (b *Backend) endCall(c *call) {
	b.active.Store(false)
	for {
		select {
		case a := <-b.pulls:
			b.respondNone(a.m, "")
		default:
			return
		}
	}
}

// quarantinedIDs lists the quarantined identities with their reasons.
func (b *Backend) quarantinedIDs() []string {
	var out []string
	for id, p := range b.peers {
		if p.quarantined != "" {
			out = append(out, fmt.Sprintf("%s (%s)", id, p.quarantined))
		}
	}
	sort.Strings(out)
	return out
}
