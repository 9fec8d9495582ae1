// Package worker is the stateless sampler on the NATS bus: a micro service
// in the samplers' queue group that takes work requests (a range of probe
// indices of one step), fetches the step's snapshot in chunks when it does
// not have it, computes the probes with package sampler and answers with
// their quotients. It holds nothing but a cache of the newest snapshot, so
// any instance can serve any request and any instance may die at any time.
//
// Every work request is answered at once, before any computing: accepted
// (with this instance's id) or busy, when the instance already holds more
// requests than the request's Hold allows. The queue group picks members at
// random; declining lets the coordinator offer the batch again until an
// idle instance takes it, so every instance gets an even share.
//
// Nothing a message claims is allocated before it is checked against the
// worker's limits (the snapshot limit and the server's max payload): a
// snapshot is fetched only if its reference is within them, chunk by chunk,
// and a result only if it fits in one message.
package worker

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
)

// Version is the sampler service's version in micro discovery.
const Version = "2.0.0"

// DefaultIdentity names a sampler credential when none is given: the user
// of the deployment's NATS configuration.
const DefaultIdentity = "sampler"

// maxHeld is the most requests an instance holds (one running, the rest
// queued); it declines more, whatever a request's Hold says.
const maxHeld = 4

// fetchParallel is the most chunk requests one fetch keeps in flight.
const fetchParallel = 8

// Options configure a worker.
type Options struct {
	Subjects protocol.Subjects
	ID       string // instance name in discovery metadata and logs
	// Identity is the credential's name in subjects: chunk requests go to
	// <prefix>.snap.<run>.<Identity> with replies on _INBOX_<Identity>.>,
	// which a server's permissions confine to that credential. Default
	// DefaultIdentity.
	Identity     string
	FetchTimeout time.Duration // per snapshot (default 10 s)
	// MaxSnapshot bounds the encoded snapshot this worker fetches (default
	// protocol.DefaultMaxSnapshot).
	MaxSnapshot int
	Eval        model.Options
	Log         hclog.Logger
}

// Worker is one sampler instance on one connection.
type Worker struct {
	nc       *nats.Conn
	svc      micro.Service
	opt      Options
	log      hclog.Logger
	instance string // the micro instance id: results and acks carry it
	ann      *nats.Subscription
	stop     chan struct{}
	done     sync.WaitGroup
	// abort, once closed, makes the request in hand stop between probes
	// without an answer (see Abort).
	abort     chan struct{}
	abortOnce sync.Once

	// The handler (the endpoint's subscription) accepts or declines; the
	// compute goroutine takes accepted requests from jobs. held counts the
	// accepted requests not yet answered.
	mu      sync.Mutex // guards stopped and sends on jobs
	stopped bool
	jobs    chan job
	held    atomic.Int32
	hcodec  protocol.Codec

	// The newest snapshot: fetched by the compute goroutine or prefetched
	// on an announcement, under snapMu.
	snapMu  sync.Mutex
	asm     protocol.Assembler
	fetch   protocol.Codec
	inbox   string // this worker's chunk-reply inbox
	replies chan *nats.Msg
	reqSub  *nats.Subscription
	gen     int
	haveRun string
	haveRef protocol.SnapshotRef
	snap    protocol.Snapshot
	snapErr error

	// Compute state, used by the compute goroutine only.
	codec   protocol.Codec
	cfg     model.Config
	setup   *model.Setup
	points  *model.Collocation
	ev      model.Evaluator
	prober  *sampler.Prober
	plan    *sampler.Plan
	baseRun string
	baseRef protocol.SnapshotRef
	res     protocol.Result
	out     []byte
	masked  int

	statsMu  sync.Mutex
	counts   Counts
	rejected map[protocol.Reason]int64
}

// Counts are a worker's request counters ("nats micro stats" shows them
// as the endpoint's data, with the rejections by reason).
type Counts struct {
	Accepted int64 `json:"accepted"`
	Busy     int64 `json:"busy"`
	Results  int64 `json:"results"`
	Errors   int64 `json:"errors"`
}

type job struct {
	req micro.Request
	wr  protocol.WorkRequest
}

// Start registers the worker as an instance of the samplers' micro service
// on nc (which may still be connecting) and starts serving.
func Start(nc *nats.Conn, opt Options) (*Worker, error) {
	if opt.Subjects.Prefix == "" {
		opt.Subjects.Prefix = protocol.DefaultPrefix
	}
	if opt.FetchTimeout == 0 {
		opt.FetchTimeout = 10 * time.Second
	}
	if opt.MaxSnapshot <= 0 {
		opt.MaxSnapshot = protocol.DefaultMaxSnapshot
	}
	if opt.Identity == "" {
		opt.Identity = DefaultIdentity
	}
	if err := protocol.ValidIdentity(opt.Identity); err != nil {
		return nil, err
	}
	w := &Worker{nc: nc, opt: opt, stop: make(chan struct{}), abort: make(chan struct{}), jobs: make(chan job, maxHeld), rejected: map[protocol.Reason]int64{}}
	w.log = opt.Log
	if w.log == nil {
		w.log = hclog.NewNullLogger()
	}
	// Chunk replies come to this worker's own inbox under its credential's
	// prefix, which the server lets no other credential read.
	w.inbox = protocol.Inbox(opt.Identity) + "." + strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix)
	w.replies = make(chan *nats.Msg, 2*fetchParallel)
	var err error
	if w.reqSub, err = nc.ChanSubscribe(w.inbox+".*.*", w.replies); err != nil {
		return nil, fmt.Errorf("subscribe to the chunk inbox: %w", err)
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:         protocol.ServiceName,
		Version:      Version,
		Description:  "ntkbus NTK probe sampler",
		Metadata:     map[string]string{"instance": opt.ID, "blas": model.BLASBackend()},
		StatsHandler: func(*micro.Endpoint) any { return w.statsData() },
	})
	if err != nil {
		w.reqSub.Unsubscribe()
		return nil, fmt.Errorf("register sampler service: %w", err)
	}
	w.svc = svc
	w.instance = svc.Info().ID
	if w.opt.ID == "" {
		w.opt.ID = w.instance
	}
	w.log = w.log.With("sampler", w.opt.ID)
	err = svc.AddEndpoint("probe", micro.HandlerFunc(w.handle),
		micro.WithEndpointSubject(opt.Subjects.Work()),
		micro.WithEndpointQueueGroup(opt.Subjects.QueueGroup()))
	if err != nil {
		svc.Stop()
		w.reqSub.Unsubscribe()
		return nil, fmt.Errorf("add probe endpoint: %w", err)
	}
	// Announcements of new snapshots: prefetch while idle, newest only.
	latest := make(chan protocol.Announce, 1)
	var acodec protocol.Codec
	w.ann, err = nc.Subscribe(opt.Subjects.AnnounceAll(), func(m *nats.Msg) {
		var a protocol.Announce
		if err := acodec.UnmarshalAnnounce(m.Data, &a); err != nil {
			w.rejectMsg("announcement", err)
			return
		}
		if err := a.Validate(w.limits()); err != nil {
			w.rejectMsg("announcement", err)
			return
		}
		select {
		case <-latest:
		default:
		}
		latest <- a
	})
	if err != nil {
		svc.Stop()
		w.reqSub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to announcements: %w", err)
	}
	w.done.Add(2)
	go func() {
		defer w.done.Done()
		for {
			select {
			case a := <-latest:
				if w.snapMu.TryLock() {
					w.ensureSnapshotLocked(a.Run, a.Snap)
					w.snapMu.Unlock()
				}
			case <-w.stop:
				return
			}
		}
	}()
	go w.compute()
	w.log.Info("sampler serving", "subject", opt.Subjects.Work(), "queue", opt.Subjects.QueueGroup(), "id", w.instance, "identity", opt.Identity)
	return w, nil
}

// Instance is the worker's micro instance id, which its answers carry.
func (w *Worker) Instance() string { return w.instance }

// Stop stops taking work, finishes and answers the request being computed,
// answers the queued ones with CodeStopping (so the coordinator sends them
// elsewhere at once) and returns when that is done.
func (w *Worker) Stop() error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	close(w.stop)
	close(w.jobs)
	w.mu.Unlock()
	err := w.svc.Stop()
	if w.ann != nil {
		w.ann.Unsubscribe()
	}
	w.done.Wait()
	w.reqSub.Unsubscribe()
	return err
}

// Abort stops the worker and abandons the request in hand between two
// probes, without answering it: for samplers inside a coordinator that is
// shutting down, whose answers nobody would read.
func (w *Worker) Abort() error {
	w.abortOnce.Do(func() { close(w.abort) })
	return w.Stop()
}

func (w *Worker) aborted() bool {
	select {
	case <-w.abort:
		return true
	default:
		return false
	}
}

// Stats are the service's request and error counts (as "nats micro stats" shows).
func (w *Worker) Stats() micro.Stats { return w.svc.Stats() }

// Counts are the worker's own counters.
func (w *Worker) Counts() Counts {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.counts
}

// Rejected counts the messages this worker refused, by reason.
func (w *Worker) Rejected() map[protocol.Reason]int64 {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	out := make(map[protocol.Reason]int64, len(w.rejected))
	for k, v := range w.rejected {
		out[k] = v
	}
	return out
}

func (w *Worker) statsData() any {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	rej := make(map[string]int64, len(w.rejected))
	for k, v := range w.rejected {
		rej[string(k)] = v
	}
	return struct {
		Counts
		Held     int32            `json:"held"`
		Rejected map[string]int64 `json:"rejected_by_reason"`
	}{w.counts, w.held.Load(), rej}
}

func (w *Worker) count(f func(*Counts)) {
	w.statsMu.Lock()
	f(&w.counts)
	w.statsMu.Unlock()
}

// rejectMsg counts and logs a refused message.
func (w *Worker) rejectMsg(what string, err error) protocol.Reason {
	reason := protocol.ReasonOf(err)
	if reason == "" {
		reason = protocol.ReasonMalformed
	}
	w.statsMu.Lock()
	w.rejected[reason]++
	w.statsMu.Unlock()
	w.log.Warn(what+" rejected", "reason", reason, "error", err)
	return reason
}

// limits are what a message may make this worker fetch or allocate.
func (w *Worker) limits() protocol.Limits {
	mp := int(w.nc.MaxPayload())
	return protocol.Limits{MaxSnapshot: w.opt.MaxSnapshot, MaxPayload: mp}
}

// handle answers one work request at once: accepted or busy. It runs on
// the endpoint's subscription and never computes.
func (w *Worker) handle(req micro.Request) {
	var wr protocol.WorkRequest
	err := w.hcodec.UnmarshalWorkRequest(req.Data(), &wr)
	if err == nil {
		err = wr.Validate(w.limits())
	}
	if err != nil {
		w.rejectMsg("work request", err)
		w.fail(req, &wr, protocol.CodeBadRequest, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		w.fail(req, &wr, protocol.CodeStopping, errors.New("the sampler is stopping"))
		return
	}
	// Only this goroutine adds to held, so the check and the add agree.
	if held := int(w.held.Load()); held > min(wr.Hold, maxHeld-1) {
		w.count(func(c *Counts) { c.Busy++ })
		req.Respond(nil, micro.WithHeaders(micro.Headers{protocol.HeaderStatus: {protocol.StatusBusy}, protocol.HeaderInstance: {w.instance}}))
		w.log.Trace("work request declined: busy", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "held", held, "hold", wr.Hold)
		return
	}
	w.held.Add(1)
	w.count(func(c *Counts) { c.Accepted++ })
	req.Respond(nil, micro.WithHeaders(micro.Headers{protocol.HeaderStatus: {protocol.StatusAccepted}, protocol.HeaderInstance: {w.instance}}))
	w.log.Debug("work request accepted", "run", wr.Run, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "attempt", wr.Attempt)
	w.jobs <- job{req, wr} // never blocks: held ≤ maxHeld = cap(jobs)
}

// compute serves the accepted requests one at a time.
func (w *Worker) compute() {
	defer w.done.Done()
	for j := range w.jobs {
		select {
		case <-w.stop:
			w.fail(j.req, &j.wr, protocol.CodeStopping, errors.New("the sampler is stopping"))
		default:
			w.serve(j.req, &j.wr)
		}
		w.held.Add(-1)
	}
}

// resultOverhead bounds what a Result message adds to its quotients: the
// map, ten short keys, a run id and a sampler id of at most 64 bytes, seven
// integers and a float of at most 9 bytes, a bin header.
const resultOverhead = 1 + 10*8 + 2*(2+64) + 8*9 + 5

// serve computes and answers one accepted request.
func (w *Worker) serve(req micro.Request, wr *protocol.WorkRequest) {
	start := time.Now()
	if code, err := w.base(wr.Run, wr.Snap); err != nil {
		w.fail(req, wr, code, err)
		return
	}
	width := w.plan.Width()
	n := wr.Hi - wr.Lo
	maxPayload := w.limits().MaxPayload
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	if int64(n)*int64(width)*8+resultOverhead > int64(maxPayload) {
		err := &protocol.RejectError{Reason: protocol.ReasonSize, Detail: fmt.Sprintf("%d probes of %d values do not fit the server's max payload of %d bytes", n, width, maxPayload)}
		w.rejectMsg("work request", err)
		w.fail(req, wr, protocol.CodeBadRequest, err)
		return
	}
	r := &w.res
	r.Version, r.Run, r.Step, r.Lo, r.Hi = protocol.Version, wr.Run, wr.Step, wr.Lo, wr.Hi
	r.Sampler, r.Width, r.Masked = w.instance, width, w.masked
	if cap(r.D) < n*width {
		r.D = make([]float64, n*width)
	}
	r.D = r.D[:n*width]
	for j := wr.Lo; j < wr.Hi; j++ {
		if w.aborted() {
			w.log.Debug("request abandoned: stopping", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi)
			return
		}
		w.prober.Probe(uint32(j), r.D[(j-wr.Lo)*width:(j-wr.Lo+1)*width])
	}
	r.Seconds = min(time.Since(start).Seconds(), protocol.MaxSeconds)
	if w.aborted() {
		return
	}
	w.out = w.codec.MarshalResult(w.out[:0], r)
	if err := req.Respond(w.out); err != nil {
		w.count(func(c *Counts) { c.Errors++ })
		w.log.Warn("result not sent", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "error", err)
		return
	}
	w.count(func(c *Counts) { c.Results++ })
	w.log.Debug("probes done", "run", wr.Run, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "seconds", r.Seconds)
}

// maxMessage bounds the error text a sampler sends.
const maxMessage = 1024

func (w *Worker) fail(req micro.Request, wr *protocol.WorkRequest, code string, err error) {
	if w.aborted() {
		return
	}
	w.count(func(c *Counts) { c.Errors++ })
	msg := err.Error()
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	if code != protocol.CodeStopping {
		w.log.Warn("work request failed", "code", code, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "error", msg)
	}
	run := wr.Run
	if protocol.ValidRunID(run) != nil {
		run = ""
	}
	se := protocol.SamplerError{Version: protocol.Version, Run: run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Sampler: w.instance, Code: code, Message: msg}
	var c protocol.Codec
	req.Error(code, strings.ReplaceAll(msg, "\n", " "), c.MarshalSamplerError(nil, &se))
}

// base makes the snapshot ref of run the prober's base point: fetching it
// if needed, then one forward pass.
func (w *Worker) base(run string, ref protocol.SnapshotRef) (string, error) {
	if w.prober != nil && w.baseRun == run && w.baseRef == ref {
		return "", nil
	}
	w.snapMu.Lock()
	defer w.snapMu.Unlock()
	if err := w.ensureSnapshotLocked(run, ref); err != nil {
		return protocol.CodeSnapshotUnavailable, err
	}
	snap := &w.snap
	if err := snap.Validate(w.limits()); err != nil {
		return protocol.CodeBadSnapshot, err
	}
	if err := checkLayers(snap.Problem.Layers, len(snap.Theta)); err != nil {
		return protocol.CodeBadSnapshot, err
	}
	cfg := Config(snap.Problem)
	if w.setup == nil || !reflect.DeepEqual(cfg, w.cfg) {
		setup, err := model.NewSetup(cfg)
		if err != nil {
			return protocol.CodeBadSnapshot, err
		}
		w.setup, w.cfg, w.ev, w.prober = setup, cfg, nil, nil
	}
	if err := w.setup.CheckTheta(snap.Theta); err != nil {
		return protocol.CodeBadSnapshot, err
	}
	settings, err := Settings(snap.Probe)
	if err != nil {
		return protocol.CodeBadSnapshot, err
	}
	// Points drawn from a seed: no more coordinates than the snapshot
	// limit could carry explicitly.
	total := 0
	for _, c := range snap.Points.Counts {
		total += c
	}
	if len(snap.Points.Blocks) == 0 && int64(total)*int64(max(w.setup.Problem.Dim, 1))*8 > int64(w.opt.MaxSnapshot) {
		return protocol.CodeBadSnapshot, fmt.Errorf("%d points of dimension %d to draw: over the snapshot limit of %d bytes", total, w.setup.Problem.Dim, w.opt.MaxSnapshot)
	}
	pts, err := Points(w.setup, snap, w.points)
	if err != nil {
		return protocol.CodeBadSnapshot, err
	}
	w.points = pts
	// The evaluator's buffers grow with the points and the widths a
	// snapshot names: priced before anything is made for them.
	if err := w.setup.CheckMemory(pts.Counts(), model.Memory{Evaluators: 1}, w.opt.Eval.MaxMemory); err != nil {
		return protocol.CodeBadSnapshot, err
	}
	if w.ev == nil || !sameCounts(w.ev.Layout(), pts) {
		if w.ev, err = w.setup.NewEvaluator(pts, w.opt.Eval); err != nil {
			return protocol.CodeBadSnapshot, err
		}
		w.prober = nil
	} else if err := w.ev.SetPoints(pts); err != nil {
		return protocol.CodeBadSnapshot, err
	}
	if w.prober == nil || w.plan.Settings != settings {
		if w.plan, err = sampler.NewPlan(settings, w.ev.Layout()); err != nil {
			return protocol.CodeBadSnapshot, err
		}
		w.prober = sampler.NewProber(w.ev, w.plan)
	}
	if w.plan.Width() != snap.Width {
		return protocol.CodeBadSnapshot, fmt.Errorf("snapshot says %d values per probe, the problem gives %d", snap.Width, w.plan.Width())
	}
	r0 := w.prober.SetBase(snap.Theta, uint32(snap.Step))
	w.masked = 0
	for _, v := range r0 {
		if v == 0 {
			w.masked++
		}
	}
	w.baseRun, w.baseRef = run, ref
	return "", nil
}

// checkLayers refuses layer widths whose parameter count is not θ's
// length, without overflow, before the model sizes a network from them.
func checkLayers(layers []int, thetaLen int) error {
	if len(layers) == 0 {
		return nil // the problem's default network, checked against θ later
	}
	p := int64(0)
	for l, width := range layers {
		if width < 1 || int64(width) > int64(thetaLen)+1 {
			return fmt.Errorf("layer %d has width %d: θ has %d values", l, width, thetaLen)
		}
		if l > 0 {
			p += int64(layers[l-1])*int64(width) + int64(width) // < 2·(θ+1)², no overflow
			if p > int64(thetaLen) {
				return fmt.Errorf("layers %v need more than the %d values of θ", layers, thetaLen)
			}
		}
	}
	return nil
}

func sameCounts(lay *model.Layout, c *model.Collocation) bool {
	if len(lay.Blocks) != len(c.Blocks) {
		return false
	}
	for i, b := range lay.Blocks {
		if b.Points != c.Blocks[i].Count() {
			return false
		}
	}
	return true
}

// ensureSnapshotLocked makes ref of run the decoded snapshot in hand,
// fetching its chunks from the coordinator, a few in parallel, on this
// worker's own inbox. ref has been checked against the limits, and each
// chunk is checked against ref before it is kept. Only the newest snapshot
// is kept. Callers hold snapMu.
func (w *Worker) ensureSnapshotLocked(run string, ref protocol.SnapshotRef) error {
	if w.haveRun == run && w.haveRef == ref && w.snapErr == nil {
		return nil
	}
	if w.haveRun == run && ref.Step < w.haveRef.Step {
		return fmt.Errorf("snapshot of step %d is older than the one in hand (%d)", ref.Step, w.haveRef.Step)
	}
	if err := ref.Validate(w.limits()); err != nil {
		w.rejectMsg("snapshot reference", err)
		return err
	}
	w.snapErr = w.fetchLocked(run, ref)
	if w.snapErr != nil {
		return w.snapErr
	}
	w.haveRun, w.haveRef = run, ref
	w.log.Debug("snapshot fetched", "run", run, "step", ref.Step, "bytes", ref.Size, "chunks", ref.Chunks)
	return nil
}

func (w *Worker) fetchLocked(run string, ref protocol.SnapshotRef) error {
	w.asm.Start(run, ref)
	w.gen++
	gen := strconv.Itoa(w.gen)
	subject := w.opt.Subjects.SnapshotFrom(run, w.opt.Identity)
	timeout := time.NewTimer(w.opt.FetchTimeout)
	defer timeout.Stop()
	var c protocol.Codec
	next, inFlight := 0, 0
	var chunk protocol.Chunk
	for {
		for inFlight < fetchParallel && next < ref.Chunks {
			req := c.MarshalChunkRequest(nil, &protocol.ChunkRequest{Version: protocol.Version, Run: run, Step: ref.Step, Index: next})
			if err := w.nc.PublishRequest(subject, w.inbox+"."+gen+"."+strconv.Itoa(next), req); err != nil {
				return fmt.Errorf("fetch snapshot of step %d: %w", ref.Step, err)
			}
			next++
			inFlight++
		}
		var m *nats.Msg
		select {
		case m = <-w.replies:
		case <-timeout.C:
			return fmt.Errorf("fetch snapshot of step %d: %d of %d chunks not answered within %v", ref.Step, inFlight, ref.Chunks, w.opt.FetchTimeout)
		case <-w.stop:
			return errors.New("the sampler is stopping")
		}
		// The reply subject names the fetch and the chunk asked for.
		parts := strings.Split(strings.TrimPrefix(m.Subject, w.inbox+"."), ".")
		if len(parts) != 2 || parts[0] != gen {
			continue // a late answer to an earlier fetch
		}
		index, err := strconv.Atoi(parts[1])
		if err != nil {
			continue
		}
		inFlight--
		if e := m.Header.Get(protocol.HeaderError); e != "" {
			return fmt.Errorf("fetch snapshot of step %d: the coordinator says: %s", ref.Step, e)
		}
		if m.Header.Get("Status") == "503" {
			return fmt.Errorf("fetch snapshot of step %d: no coordinator serves run %s", ref.Step, run)
		}
		if err := w.fetch.UnmarshalChunk(m.Data, &chunk); err != nil {
			w.rejectMsg("snapshot chunk", err)
			return fmt.Errorf("snapshot chunk of step %d: %w", ref.Step, err)
		}
		if chunk.Index != index {
			return fmt.Errorf("snapshot chunk of step %d: asked for chunk %d, got %d", ref.Step, index, chunk.Index)
		}
		encoded, err := w.asm.Add(&chunk)
		if err != nil {
			w.rejectMsg("snapshot chunk", err)
			return fmt.Errorf("snapshot chunk of step %d: %w", ref.Step, err)
		}
		if encoded == nil {
			continue
		}
		if err := w.fetch.UnmarshalSnapshot(encoded, &w.snap); err != nil {
			w.rejectMsg("snapshot", err)
			return err
		}
		if w.snap.Run != run || w.snap.Step != ref.Step {
			return fmt.Errorf("fetched snapshot is run %s step %d, wanted %s step %d", w.snap.Run, w.snap.Step, run, ref.Step)
		}
		return nil
	}
}
