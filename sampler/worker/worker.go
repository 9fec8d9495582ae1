// Package worker is the stateless sampler on the NATS bus. An idle
// sampler pulls: it asks a run's coordinator for a batch (a range of probe
// indices of one step) on a subject that names its credential, fetches the
// step's snapshot in chunks when it does not have it, computes the probes
// with package sampler, says every Beat that it is still at work, and
// publishes the quotients. A busy sampler is never asked for anything, so
// the bus carries one assignment per batch, and a slow batch is never
// mistaken for a lost one. The sampler holds nothing but a cache of the
// newest snapshot, so any instance can serve any batch and any instance
// may die at any time.
//
// Runs are learnt from announcements; a run that answers a pull with
// "none" is not asked again until it announces again (or a few seconds
// pass, in case an announcement was lost).
//
// Nothing a message claims is allocated before it is checked against the
// worker's limits (the snapshot limit and the server's max payload): a
// snapshot is fetched only if its reference is within them, chunk by chunk,
// and a result only if it fits in one message.
package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
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
const Version = "3.0.0"

// DefaultIdentity names a sampler credential when none is given.
const DefaultIdentity = "sampler"

// fetchParallel is the most chunk requests one fetch keeps in flight.
const fetchParallel = 8

// maxRuns bounds the runs a worker remembers from announcements.
const maxRuns = 64

// Pull timing: how long a pull waits for its answer, and how often an idle
// worker asks quiet runs again in case an announcement was lost.
const (
	pullWait  = 5 * time.Second
	idleRetry = 5 * time.Second
)

// Options configure a worker.
type Options struct {
	Subjects protocol.Subjects
	// ID names the instance in logs and in its messages (not an identity:
	// it proves nothing); characters other than letters, digits, - and _
	// become -. Default: the micro instance id.
	ID string
	// Identity is the credential's name in subjects: pulls, chunk
	// requests and results go to subjects ending in it, and answers come to
	// _INBOX_<Identity>.>, which a server's permissions confine to that
	// credential. Default DefaultIdentity.
	Identity string
	// FetchTimeout is how long a snapshot fetch waits without any chunk
	// arriving (default 10 s): a large snapshot on a slow link takes as
	// long as it takes while chunks keep coming.
	FetchTimeout time.Duration
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
	instance string // the micro instance id
	name     string // opt.ID as a subject-safe token
	ann      *nats.Subscription
	stop     chan struct{}
	done     sync.WaitGroup
	// abort, once closed, makes the batch in hand stop between probes
	// without an answer (see Abort).
	abort     chan struct{}
	abortOnce sync.Once
	stopOnce  sync.Once

	// Runs learnt from announcements; wake is signalled by each.
	runsMu sync.Mutex
	runs   map[string]*runState
	wake   chan struct{}

	// Pull answers come to pullBox, chunk answers to inbox.
	pullBox string
	pulls   chan *nats.Msg
	pullSub *nats.Subscription
	pullN   int
	pcodec  protocol.Codec

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
	probed  atomic.Int64 // probes of the batch in hand done, for progress

	statsMu  sync.Mutex
	counts   Counts
	rejected map[protocol.Reason]int64
}

// runState is what a worker knows of one run.
type runState struct {
	ref   protocol.SnapshotRef
	seen  time.Time // last announcement
	quiet bool      // answered "none" since its last announcement
}

// Counts are a worker's counters ("nats micro stats" shows them as the
// service's data, with the rejections by reason).
type Counts struct {
	Pulls   int64 `json:"pulls"`   // pull requests sent
	Batches int64 `json:"batches"` // batches received
	Results int64 `json:"results"` // results sent
	Errors  int64 `json:"errors"`  // batches answered with an error
}

// Start registers the worker as an instance of the samplers' micro service
// on nc (which may still be connecting) and starts pulling work.
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
	w := &Worker{nc: nc, opt: opt, stop: make(chan struct{}), abort: make(chan struct{}), wake: make(chan struct{}, 1),
		runs: map[string]*runState{}, rejected: map[protocol.Reason]int64{}}
	w.log = opt.Log
	if w.log == nil {
		w.log = hclog.NewNullLogger()
	}
	// Answers come to this worker's own inboxes under its credential's
	// prefix, which the server lets no other credential read.
	base := protocol.Inbox(opt.Identity) + "." + strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix)
	w.inbox, w.pullBox = base+".c", base+".p"
	w.replies = make(chan *nats.Msg, 2*fetchParallel)
	w.pulls = make(chan *nats.Msg, 4)
	var err error
	if w.reqSub, err = nc.ChanSubscribe(w.inbox+".*.*", w.replies); err != nil {
		return nil, fmt.Errorf("subscribe to the chunk inbox: %w", err)
	}
	if w.pullSub, err = nc.ChanSubscribe(w.pullBox+".*", w.pulls); err != nil {
		w.reqSub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to the pull inbox: %w", err)
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:         protocol.ServiceName,
		Version:      Version,
		Description:  "ntkbus NTK probe sampler",
		Metadata:     map[string]string{"instance": opt.ID, "identity": opt.Identity, "blas": model.BLASBackend()},
		StatsHandler: func(*micro.Endpoint) any { return w.statsData() },
	})
	if err != nil {
		w.unsubscribe()
		return nil, fmt.Errorf("register sampler service: %w", err)
	}
	w.svc = svc
	// One endpoint, on this worker's own inbox, so that "nats micro stats"
	// shows its counters; it answers nothing else.
	if err := svc.AddEndpoint("stats", micro.HandlerFunc(func(req micro.Request) { req.RespondJSON(w.statsData()) }),
		micro.WithEndpointSubject(base+".stats")); err != nil {
		svc.Stop()
		w.unsubscribe()
		return nil, fmt.Errorf("add the stats endpoint: %w", err)
	}
	w.instance = svc.Info().ID
	if w.opt.ID == "" {
		w.opt.ID = w.instance
	}
	w.name = instanceName(w.opt.ID)
	w.log = w.log.With("sampler", w.opt.ID)
	// Announcements: remember the run, wake the pull loop, and prefetch
	// the snapshot while idle (newest only).
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
		w.learn(a)
		select {
		case <-latest:
		default:
		}
		latest <- a
	})
	if err != nil {
		svc.Stop()
		w.unsubscribe()
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
	go w.loop()
	w.log.Info("sampler pulling work", "announcements", opt.Subjects.AnnounceAll(), "id", w.instance, "identity", opt.Identity)
	return w, nil
}

// instanceName makes a name safe for a subject token.
func instanceName(id string) string {
	b := []byte(id)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "sampler"
	}
	return string(b)
}

func (w *Worker) unsubscribe() {
	w.reqSub.Unsubscribe()
	w.pullSub.Unsubscribe()
}

// learn records an announced run as one that may have work, and wakes the
// pull loop.
func (w *Worker) learn(a protocol.Announce) {
	w.runsMu.Lock()
	r := w.runs[a.Run]
	if r == nil {
		if len(w.runs) >= maxRuns {
			w.forgetOldestLocked()
		}
		r = &runState{}
		w.runs[a.Run] = r
	}
	r.ref, r.seen, r.quiet = a.Snap, time.Now(), false
	w.runsMu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Worker) forgetOldestLocked() {
	oldest := ""
	for id, r := range w.runs {
		if oldest == "" || r.seen.Before(w.runs[oldest].seen) {
			oldest = id
		}
	}
	delete(w.runs, oldest)
}

// nextRun picks a run that may have work: of those not quiet, the one
// announced longest ago, so that no run starves another. "" when none.
func (w *Worker) nextRun() string {
	w.runsMu.Lock()
	defer w.runsMu.Unlock()
	ids := make([]string, 0, len(w.runs))
	for id, r := range w.runs {
		if !r.quiet {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	sort.Slice(ids, func(i, j int) bool { return w.runs[ids[i]].seen.Before(w.runs[ids[j]].seen) })
	return ids[0]
}

// settle marks run quiet (it had nothing for a pull sent at asked), or
// forgets it (nobody serves it). An announcement since the pull was sent
// says there is work after all: the run stays worth asking.
func (w *Worker) settle(run string, asked time.Time, gone bool) {
	w.runsMu.Lock()
	defer w.runsMu.Unlock()
	if gone {
		delete(w.runs, run)
	} else if r := w.runs[run]; r != nil && !r.seen.After(asked) {
		r.quiet = true
	}
}

// unquiet makes every run worth asking again.
func (w *Worker) unquiet() {
	w.runsMu.Lock()
	defer w.runsMu.Unlock()
	for id, r := range w.runs {
		if time.Since(r.seen) > time.Hour {
			delete(w.runs, id) // its coordinator has not spoken for an hour
			continue
		}
		r.quiet = false
	}
}

// Instance is the worker's micro instance id.
func (w *Worker) Instance() string { return w.instance }

// Stop stops pulling, finishes and answers the batch in hand, and returns
// when that is done.
func (w *Worker) Stop() error {
	w.stopOnce.Do(func() { close(w.stop) })
	err := w.svc.Stop()
	if w.ann != nil {
		w.ann.Unsubscribe()
	}
	w.done.Wait()
	w.unsubscribe()
	return err
}

// Abort stops the worker and abandons the batch in hand between two
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

func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
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
		Rejected map[string]int64 `json:"rejected_by_reason"`
	}{w.counts, rej}
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

// loop pulls and serves batches, one at a time, until Stop.
func (w *Worker) loop() {
	defer w.done.Done()
	retry := time.NewTimer(idleRetry)
	defer retry.Stop()
	for !w.stopping() {
		run := w.nextRun()
		if run == "" {
			select {
			case <-w.wake:
			case <-retry.C:
				// Jittered, so idle samplers do not ask in step.
				retry.Reset(idleRetry/2 + rand.N(idleRetry))
				w.unquiet()
			case <-w.stop:
				return
			}
			continue
		}
		asked := time.Now()
		wr, ok, gone := w.pull(run)
		if !ok {
			w.settle(run, asked, gone)
			continue
		}
		if w.stopping() {
			w.fail(wr, protocol.CodeStopping, errors.New("the sampler is stopping"))
			return
		}
		w.serve(wr)
	}
}

// pull asks run's coordinator for a batch. ok is false when there is none
// now; gone when nobody serves the run.
func (w *Worker) pull(run string) (wr *protocol.WorkRequest, ok, gone bool) {
	w.pullN++
	reply := w.pullBox + "." + strconv.Itoa(w.pullN)
	req := w.pcodec.MarshalPull(nil, &protocol.Pull{Version: protocol.Version, Run: run, Instance: w.name})
	w.count(func(c *Counts) { c.Pulls++ })
	if err := w.nc.PublishRequest(w.opt.Subjects.PullFrom(run, w.opt.Identity), reply, req); err != nil {
		w.log.Debug("pull not sent", "run", run, "error", err)
		return nil, false, false
	}
	timeout := time.NewTimer(pullWait)
	defer timeout.Stop()
	for {
		select {
		case m := <-w.pulls:
			if m.Subject != reply {
				w.giveBack(m) // a late answer to an earlier pull
				continue
			}
			if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
				return nil, false, true
			}
			if m.Header.Get(protocol.HeaderStatus) == protocol.StatusNone {
				if e := m.Header.Get(protocol.HeaderError); e != "" {
					w.log.Warn("the coordinator refuses this sampler's pulls", "run", run, "reason", clip(e, 256))
				}
				return nil, false, false
			}
			wr = &protocol.WorkRequest{}
			err := w.pcodec.UnmarshalWorkRequest(m.Data, wr)
			if err == nil {
				err = wr.Validate(w.limits())
			}
			if err == nil && wr.Run != run {
				err = &protocol.RejectError{Reason: protocol.ReasonRun, Detail: fmt.Sprintf("work of run %s for a pull of run %s", wr.Run, run)}
			}
			if err != nil {
				// Not from the coordinator of the run (or broken): the
				// coordinator's own answer may still come.
				w.rejectMsg("work request", err)
				continue
			}
			w.count(func(c *Counts) { c.Batches++ })
			return wr, true, false
		case <-timeout.C:
			return nil, false, false
		case <-w.stop:
			return nil, false, false
		}
	}
}

// giveBack returns the batch of an answer that came after its pull gave
// up, so the coordinator gives it to another at once.
func (w *Worker) giveBack(m *nats.Msg) {
	var wr protocol.WorkRequest
	if len(m.Data) == 0 || w.pcodec.UnmarshalWorkRequest(m.Data, &wr) != nil || wr.Validate(w.limits()) != nil {
		return
	}
	w.fail(&wr, protocol.CodeStopping, errors.New("the batch came after its pull gave up"))
}

// resultOverhead bounds what a Result message adds to its quotients: the
// map, eleven short keys, a run id and an instance name of at most 64
// bytes, eight integers and a float of at most 9 bytes, a bin header.
const resultOverhead = 1 + 11*8 + 2*(2+64) + 9*9 + 5

// serve computes and answers one batch, reporting progress every Beat
// while it holds it.
func (w *Worker) serve(wr *protocol.WorkRequest) {
	start := time.Now()
	w.probed.Store(0)
	beatDone := make(chan struct{})
	var beats sync.WaitGroup
	beats.Add(1)
	go func() {
		defer beats.Done()
		w.heartbeat(wr, beatDone)
	}()
	defer func() {
		close(beatDone)
		beats.Wait()
	}()
	w.log.Debug("batch taken", "run", wr.Run, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "attempt", wr.Attempt)
	if code, err := w.base(wr.Run, wr.Snap); err != nil {
		if w.stopping() {
			code = protocol.CodeStopping
		}
		w.fail(wr, code, err)
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
		w.fail(wr, protocol.CodeBadRequest, err)
		return
	}
	r := &w.res
	r.Version, r.Run, r.Step, r.Lo, r.Hi, r.Token = protocol.Version, wr.Run, wr.Step, wr.Lo, wr.Hi, wr.Token
	r.Instance, r.Width, r.Masked = w.name, width, w.masked
	if cap(r.D) < n*width {
		r.D = make([]float64, n*width)
	}
	r.D = r.D[:n*width]
	for j := wr.Lo; j < wr.Hi; j++ {
		if w.aborted() {
			w.log.Debug("batch abandoned: stopping", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi)
			return
		}
		w.prober.Probe(uint32(j), r.D[(j-wr.Lo)*width:(j-wr.Lo+1)*width])
		w.probed.Add(1)
	}
	r.Seconds = min(time.Since(start).Seconds(), protocol.MaxSeconds)
	if w.aborted() {
		return
	}
	w.out = w.codec.MarshalResult(w.out[:0], r)
	if err := w.nc.Publish(w.opt.Subjects.ResultsFrom(wr.Run, w.opt.Identity), w.out); err != nil {
		w.count(func(c *Counts) { c.Errors++ })
		w.log.Warn("result not sent", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "error", err)
		return
	}
	w.count(func(c *Counts) { c.Results++ })
	w.log.Debug("probes done", "run", wr.Run, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "seconds", r.Seconds)
}

// heartbeat reports the batch's progress every wr.Beat until done closes.
// It runs beside the computation, so a batch that takes long is never
// taken for a lost one while this process runs.
func (w *Worker) heartbeat(wr *protocol.WorkRequest, done chan struct{}) {
	t := time.NewTicker(time.Duration(wr.Beat) * time.Millisecond)
	defer t.Stop()
	var c protocol.Codec
	subject := w.opt.Subjects.ResultsFrom(wr.Run, w.opt.Identity)
	for {
		select {
		case <-done:
			return
		case <-w.abort:
			return
		case <-t.C:
			m := nats.NewMsg(subject)
			m.Header.Set(protocol.HeaderKind, protocol.KindProgress)
			m.Data = c.MarshalProgress(nil, &protocol.Progress{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Token: wr.Token, Done: int(w.probed.Load())})
			if err := w.nc.PublishMsg(m); err != nil {
				w.log.Debug("progress not sent", "error", err)
			}
		}
	}
}

// maxMessage bounds the error text a sampler sends.
const maxMessage = 1024

// fail answers a batch with an error instead of a result.
func (w *Worker) fail(wr *protocol.WorkRequest, code string, err error) {
	if w.aborted() {
		return
	}
	w.count(func(c *Counts) { c.Errors++ })
	msg := clip(err.Error(), maxMessage)
	if code != protocol.CodeStopping {
		w.log.Warn("batch failed", "code", code, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "error", msg)
	}
	se := protocol.SamplerError{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Token: wr.Token, Instance: w.name, Code: code, Message: msg}
	var c protocol.Codec
	m := nats.NewMsg(w.opt.Subjects.ResultsFrom(wr.Run, w.opt.Identity))
	m.Header.Set(protocol.HeaderKind, protocol.KindError)
	m.Data = c.MarshalSamplerError(nil, &se)
	if err := w.nc.PublishMsg(m); err != nil {
		w.log.Debug("error not sent", "error", err)
	}
}

// clip cuts s to at most n bytes and one line.
func clip(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n]
	}
	return s
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
			return fmt.Errorf("fetch snapshot of step %d: no chunk for %v, %d of %d in flight", ref.Step, w.opt.FetchTimeout, inFlight, ref.Chunks)
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
		if !timeout.Stop() {
			select {
			case <-timeout.C:
			default:
			}
		}
		timeout.Reset(w.opt.FetchTimeout)
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
