// Package natsbus is the coordinator's NATS backend: it publishes each
// step's snapshot (in chunks that samplers pull), sends batches of probe
// indices to the samplers' queue group, collects their results with
// deadlines, re-sends late batches, drops duplicates and anything invalid,
// and hands each probe's quotient to the same accumulator the in-process
// backend feeds. It carries no math.
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
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
	// seen; later deadlines adapt to the observed time per probe.
	Timeout time.Duration
	// MaxAttempts bounds how often one batch is sent after sampler errors.
	MaxAttempts int
	// WaitSamplers bounds how long Probes waits for a first sampler (0: until ctx ends).
	WaitSamplers time.Duration
	Log          hclog.Logger
}

// Stats count what the backend saw. Rejected results are counted by reason
// and never averaged.
type Stats struct {
	Batches      int64
	Redispatched int64
	// NoResponders counts batches the server could not deliver: sent to
	// an instance that had left (then sent on to another at once).
	NoResponders  int64
	Results       int64
	Duplicates    int64
	SamplerErrors int64
	Rejected      map[protocol.Reason]int64
	// CoordinatorSeconds is the time the coordinator spent encoding,
	// publishing, serving chunks, decoding and accumulating: all but waiting.
	CoordinatorSeconds float64
	// SamplerSeconds is the samplers' compute time reported in accepted results.
	SamplerSeconds float64
	ChunkBytes     int64
	Samplers       int
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
	serr    protocol.SamplerError

	// The snapshot being served; chunk requests read it under mu.
	mu      sync.RWMutex
	workID  uint64
	ref     protocol.SnapshotRef
	chunks  [][]byte
	encoded []byte
	snap    protocol.Snapshot

	statsMu      sync.Mutex
	stats        Stats
	chunkNanos   atomic.Int64
	chunkBytes   atomic.Int64
	perProbe     float64         // seconds per probe, moving average
	doneRanges   map[[2]int]bool // batches answered for the served snapshot
	samplers     int
	instances    []string        // sampler instances (micro ids) known, sorted
	gone         map[string]bool // instances the server could not deliver to
	samplersSeen time.Time
	nonce        uint64
	turn         int // rotates ties between equally loaded instances
}

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
	if opt.Timeout == 0 {
		opt.Timeout = 60 * time.Second
	}
	if opt.MaxAttempts == 0 {
		opt.MaxAttempts = 5
	}
	b := &Backend{nc: nc, opt: opt, results: make(chan *nats.Msg, 4096)}
	b.log = opt.Log
	if b.log == nil {
		b.log = hclog.NewNullLogger()
	}
	b.log = b.log.Named("natsbus").With("run", opt.Run)
	b.stats.Rejected = map[protocol.Reason]int64{}
	sub, err := nc.ChanSubscribe(opt.Subjects.Results(opt.Run), b.results)
	if err != nil {
		return nil, fmt.Errorf("subscribe to results: %w", err)
	}
	sub.SetPendingLimits(-1, -1)
	b.subs = append(b.subs, sub)
	sub, err = nc.Subscribe(opt.Subjects.Snapshot(opt.Run), b.serveChunk)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("subscribe to snapshot requests: %w", err)
	}
	b.subs = append(b.subs, sub)
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
	s.Samplers = b.samplers
	return s
}

// Close unsubscribes. The connection is the caller's.
func (b *Backend) Close() error {
	for _, s := range b.subs {
		s.Unsubscribe()
	}
	return nil
}

// serveChunk answers a sampler's request for a chunk of the current snapshot.
func (b *Backend) serveChunk(m *nats.Msg) {
	start := time.Now()
	defer func() { b.chunkNanos.Add(time.Since(start).Nanoseconds()) }()
	var req protocol.ChunkRequest
	var c protocol.Codec
	fail := func(why string) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set(worker.ErrorHeader, why)
		m.RespondMsg(r)
	}
	if err := c.UnmarshalChunkRequest(m.Data, &req); err != nil {
		fail(err.Error())
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if req.Run != b.opt.Run || req.Step != b.ref.Step || b.chunks == nil {
		fail(fmt.Sprintf("no snapshot of step %d (serving step %d)", req.Step, b.ref.Step))
		return
	}
	if req.Index < 0 || req.Index >= len(b.chunks) {
		fail(fmt.Sprintf("chunk %d of %d", req.Index, len(b.chunks)))
		return
	}
	off := 0
	for _, ch := range b.chunks[:req.Index] {
		off += len(ch)
	}
	out := c.MarshalChunk(nil, &protocol.Chunk{
		Version: protocol.Version, Run: b.opt.Run, Step: b.ref.Step,
		Index: req.Index, Count: len(b.chunks), Offset: off, Size: b.ref.Size, Sum: b.ref.Sum,
		Data: b.chunks[req.Index],
	})
	b.chunkBytes.Add(int64(len(out)))
	m.Respond(out)
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
	maxPayload := int(b.nc.MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	ref, chunks := protocol.SplitSnapshot(encoded, s.Step, protocol.ChunkSize(maxPayload))
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

// countSamplers asks micro discovery how many sampler instances answer.
func (b *Backend) countSamplers(wait time.Duration) int {
	if time.Since(b.samplersSeen) < 5*time.Second && b.samplers > 0 {
		return b.samplers
	}
	inbox := b.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 1024)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return b.samplers
	}
	defer sub.Unsubscribe()
	subject, _ := micro.ControlSubject(micro.PingVerb, protocol.ServiceName, "")
	if err := b.nc.PublishRequest(subject, inbox, nil); err != nil {
		return b.samplers
	}
	ids := map[string]bool{}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-ch:
			var p micro.Ping
			if json.Unmarshal(m.Data, &p) == nil && p.ID != "" && !strings.ContainsAny(p.ID, ".*> \t\r\n") {
				ids[p.ID] = true
			}
		case <-timer.C:
			// An instance that misses one round stays known; one the
			// server could not deliver to is dropped until it answers.
			for id := range ids {
				delete(b.gone, id)
			}
			for _, id := range b.instances {
				if !b.gone[id] {
					ids[id] = true
				}
			}
			b.instances = slices.Sorted(maps.Keys(ids))
			b.samplers, b.samplersSeen = len(ids), time.Now()
			return b.samplers
		}
	}
}

type batch struct {
	lo, hi   int
	instance string // where it was last sent ("" for the queue group)
	attempts int
	deadline time.Time
	sent     time.Time
	done     bool
}

// Probes computes probes [lo, hi) of w on the samplers.
func (b *Backend) Probes(ctx context.Context, w *coordinator.Work, lo, hi int, emit func(j int, d []float64) error) error {
	if hi <= lo {
		return nil
	}
	var busy time.Duration // coordinator time, not waiting
	tick := time.Now()
	account := func() { busy += time.Since(tick) }
	defer func() {
		b.statsMu.Lock()
		b.stats.CoordinatorSeconds += busy.Seconds()
		b.statsMu.Unlock()
	}()

	if err := b.publish(w); err != nil {
		return err
	}
	account()
	// Wait for samplers.
	n := b.countSamplers(200 * time.Millisecond)
	waited := time.Now()
	for n == 0 {
		if b.opt.WaitSamplers > 0 && time.Since(waited) > b.opt.WaitSamplers {
			return fmt.Errorf("no sampler answered on %s within %v: start samplers with: sampler --nats <url>", b.opt.Subjects.Work(), b.opt.WaitSamplers)
		}
		b.log.Info("waiting for samplers", "service", protocol.ServiceName, "subject", b.opt.Subjects.Work())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		b.samplers = 0
		n = b.countSamplers(500 * time.Millisecond)
	}
	tick = time.Now()

	// Batches: about four per sampler, within the max payload.
	size := b.opt.Batch
	maxPayload := int(b.nc.MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	maxBatch := max(1, (maxPayload-1024)/(8*b.opt.Width))
	if size <= 0 {
		size = (hi - lo + 4*n - 1) / (4 * n)
	}
	size = min(max(size, 1), maxBatch)
	var batches []*batch
	for s := lo; s < hi; s += size {
		batches = append(batches, &batch{lo: s, hi: min(s+size, hi)})
	}
	byLo := make(map[int]*batch, len(batches))
	for _, bt := range batches {
		byLo[bt.lo] = bt
	}
	window := 2 * n
	next, inflight, done := 0, 0, 0
	// Each batch goes to the known instance with the fewest batches in
	// hand (a re-sent one to another instance than before), so no sampler
	// idles while another queues; the queue group takes it when no
	// instance is known. Replies name their request by its token.
	load := make(map[string]int, len(b.instances))
	if b.gone == nil {
		b.gone = map[string]bool{}
	}
	type sent struct {
		bt       *batch
		instance string
	}
	pending := map[string]sent{}
	pick := func(avoid string) string {
		best, bestLoad := "", math.MaxInt
		k := len(b.instances)
		for i := range k {
			id := b.instances[(b.turn+i)%k]
			if !b.gone[id] && id != avoid && load[id] < bestLoad {
				best, bestLoad = id, load[id]
			}
		}
		b.turn++
		return best
	}
	send := func(bt *batch) error {
		// Every request has its own reply subject: a sampler's user may
		// answer each request it received once (allow_responses), so two
		// batches must not share a reply subject.
		b.nonce++
		token := strconv.FormatUint(b.nonce, 36)
		reply := b.opt.Subjects.ResultsFor(b.opt.Run, token)
		subject := b.opt.Subjects.Work()
		bt.instance = pick(bt.instance)
		if bt.instance != "" {
			subject = b.opt.Subjects.WorkTo(bt.instance)
			load[bt.instance]++
		}
		pending[token] = sent{bt, bt.instance}
		bt.attempts++
		bt.sent = time.Now()
		bt.deadline = bt.sent.Add(b.deadline(bt.hi - bt.lo))
		req := b.codec.MarshalWorkRequest(nil, &protocol.WorkRequest{
			Version: protocol.Version, Run: b.opt.Run, Step: int64(w.Step),
			Lo: bt.lo, Hi: bt.hi, Snap: b.ref, Attempt: bt.attempts - 1,
		})
		b.statsMu.Lock()
		b.stats.Batches++
		if bt.attempts > 1 {
			b.stats.Redispatched++
		}
		b.statsMu.Unlock()
		return b.nc.PublishRequest(subject, reply, req)
	}
	exp := protocol.ResultExpect{Run: b.opt.Run, Step: int64(w.Step), Width: b.opt.Width, Probes: hi, MaxBatch: maxBatch}
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for done < len(batches) {
		for inflight < window && next < len(batches) {
			if err := send(batches[next]); err != nil {
				return fmt.Errorf("send work: %w", err)
			}
			next++
			inflight++
		}
		// The earliest deadline among batches in flight.
		var first *batch
		for _, bt := range batches[:next] {
			if !bt.done && (first == nil || bt.deadline.Before(first.deadline)) {
				first = bt
			}
		}
		wait := time.Until(first.deadline)
		if wait <= 0 {
			b.log.Warn("batch late, sending it again", "step", w.Step, "lo", first.lo, "hi", first.hi, "attempt", first.attempts+1)
			if err := send(first); err != nil {
				return fmt.Errorf("re-send work: %w", err)
			}
			continue
		}
		timer.Reset(wait)
		account()
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			tick = time.Now()
			continue
		case m = <-b.results:
		}
		tick = time.Now()
		var from sent
		if i := strings.LastIndexByte(m.Subject, '.'); i >= 0 {
			token := m.Subject[i+1:]
			if s, ok := pending[token]; ok {
				from = s
				delete(pending, token)
				if s.instance != "" {
					load[s.instance]--
				}
			}
		}
		// No subscriber on the subject (the server's 503): the instance has
		// gone since discovery. Send the batch elsewhere at once, without
		// counting the attempt, and discover the samplers again next time.
		if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
			if from.bt == nil || from.bt.done {
				continue
			}
			if from.instance == "" {
				b.log.Warn("no sampler is subscribed to the work subject; waiting for the deadline", "step", w.Step, "lo", from.bt.lo)
				continue
			}
			b.statsMu.Lock()
			b.stats.NoResponders++
			b.statsMu.Unlock()
			b.log.Warn("sampler gone, sending its batch to another", "instance", from.instance, "step", w.Step, "lo", from.bt.lo, "hi", from.bt.hi)
			b.gone[from.instance] = true
			b.samplersSeen = time.Time{}
			from.bt.attempts--
			if err := send(from.bt); err != nil {
				return fmt.Errorf("re-send work: %w", err)
			}
			continue
		}
		// A sampler's error answer.
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			b.statsMu.Lock()
			b.stats.SamplerErrors++
			b.statsMu.Unlock()
			var se protocol.SamplerError
			if b.codec.UnmarshalSamplerError(m.Data, &se) != nil || se.Run != b.opt.Run || se.Step != int64(w.Step) {
				continue // about another run or step, or unreadable
			}
			bt := byLo[se.Lo]
			if bt == nil || bt.done || bt.hi != se.Hi {
				continue
			}
			b.log.Warn("sampler error", "sampler", se.Sampler, "code", se.Code, "step", se.Step, "lo", se.Lo, "error", se.Message)
			if bt.attempts >= b.opt.MaxAttempts {
				return fmt.Errorf("probes %d..%d of step %d failed %d times; last from sampler %s: %s: %s", bt.lo, bt.hi-1, w.Step, bt.attempts, se.Sampler, se.Code, se.Message)
			}
			if err := send(bt); err != nil {
				return fmt.Errorf("re-send work: %w", err)
			}
			continue
		}
		if err := b.accept(m.Data, exp, byLo, emit); err != nil {
			var stop stopError
			if errors.As(err, &stop) {
				return stop.error
			}
			continue
		}
		bt := byLo[b.res.Lo]
		bt.done = true
		done++
		inflight--
		b.observe(bt, b.res.Seconds)
	}
	account()
	return nil
}

type stopError struct{ error }

// accept decodes and validates one result message and emits its probes.
// It returns an error for anything not accepted (already counted and
// logged), or a stopError when emit fails.
func (b *Backend) accept(data []byte, exp protocol.ResultExpect, byLo map[int]*batch, emit func(int, []float64) error) error {
	r := &b.res
	if err := b.codec.UnmarshalResult(data, r); err != nil {
		return b.reject(err, r)
	}
	if err := r.Validate(exp); err != nil {
		return b.reject(err, r)
	}
	if b.doneRanges[[2]int{r.Lo, r.Hi}] {
		b.statsMu.Lock()
		b.stats.Duplicates++
		b.statsMu.Unlock()
		return errors.New("duplicate")
	}
	bt := byLo[r.Lo]
	if bt == nil || bt.hi != r.Hi {
		return b.reject(&protocol.RejectError{Reason: protocol.ReasonRange, Detail: fmt.Sprintf("probes [%d, %d) were not sent as one batch", r.Lo, r.Hi)}, r)
	}
	for j := r.Lo; j < r.Hi; j++ {
		if err := emit(j, r.D[(j-r.Lo)*r.Width:(j-r.Lo+1)*r.Width]); err != nil {
			if errors.Is(err, coordinator.ErrDuplicate) {
				continue
			}
			return stopError{fmt.Errorf("probe %d: %w", j, err)}
		}
	}
	b.doneRanges[[2]int{r.Lo, r.Hi}] = true
	b.statsMu.Lock()
	b.stats.Results++
	b.stats.SamplerSeconds += r.Seconds
	b.statsMu.Unlock()
	return nil
}

func (b *Backend) reject(err error, r *protocol.Result) error {
	reason := protocol.ReasonOf(err)
	if reason == "" {
		reason = protocol.ReasonMalformed
	}
	b.statsMu.Lock()
	b.stats.Rejected[reason]++
	b.statsMu.Unlock()
	level := hclog.Warn
	if reason == protocol.ReasonStaleStep {
		level = hclog.Debug // late answers to re-sent batches are expected
	}
	b.log.Log(level, "result rejected", "reason", reason, "sampler", r.Sampler, "step", r.Step, "lo", r.Lo, "hi", r.Hi, "error", err)
	return err
}

// deadline is how long a batch of k probes may take: it may wait behind
// another batch in its sampler's queue (the window holds two per sampler),
// so four times two batches' observed time plus a second; before any result,
// the configured first timeout.
func (b *Backend) deadline(k int) time.Duration {
	if b.perProbe == 0 {
		return b.opt.Timeout
	}
	return time.Duration((8*b.perProbe*float64(k) + 1) * float64(time.Second))
}

func (b *Backend) observe(bt *batch, computeSeconds float64) {
	elapsed := time.Since(bt.sent).Seconds()
	per := math.Max(elapsed, computeSeconds) / float64(bt.hi-bt.lo)
	if b.perProbe == 0 {
		b.perProbe = per
	} else {
		b.perProbe = 0.8*b.perProbe + 0.2*per
	}
}
