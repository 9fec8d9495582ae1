// Package worker is the stateless sampler on the NATS bus: a micro service
// in the samplers' queue group that takes work requests (a range of probe
// indices of one step), fetches the step's snapshot in chunks when it does
// not have it, computes the probes with package sampler and answers with
// their quotients. It holds nothing but a cache of the newest snapshot, so
// any instance can serve any request and any instance may die at any time.
package worker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
)

// Version is the sampler service's version in micro discovery.
const Version = "1.0.0"

// Options configure a worker.
type Options struct {
	Subjects     protocol.Subjects
	ID           string        // instance name in results and logs
	FetchTimeout time.Duration // per snapshot chunk (default 10 s)
	Eval         model.Options
	Log          hclog.Logger
}

// Worker is one sampler instance on one connection.
type Worker struct {
	nc   *nats.Conn
	svc  micro.Service
	opt  Options
	log  hclog.Logger
	ann  *nats.Subscription
	stop chan struct{}
	// abort, once closed, makes the request in hand stop between probes
	// without an answer (see Abort).
	abort     chan struct{}
	abortOnce sync.Once

	// The newest snapshot: fetched by the handler or prefetched on an
	// announcement, under snapMu.
	snapMu  sync.Mutex
	asm     protocol.Assembler
	fetch   protocol.Codec
	haveRun string
	haveRef protocol.SnapshotRef
	snap    protocol.Snapshot
	snapErr error

	// Compute state, used by one handler at a time (busy): work comes on
	// the queue group's subject and on this instance's own.
	busy    sync.Mutex
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
	w := &Worker{nc: nc, opt: opt, stop: make(chan struct{}), abort: make(chan struct{})}
	w.log = opt.Log
	if w.log == nil {
		w.log = hclog.NewNullLogger()
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        protocol.ServiceName,
		Version:     Version,
		Description: "ntkbus NTK probe sampler",
		Metadata:    map[string]string{"instance": opt.ID, "blas": model.BLASBackend()},
	})
	if err != nil {
		return nil, fmt.Errorf("register sampler service: %w", err)
	}
	w.svc = svc
	if opt.ID == "" {
		w.opt.ID = svc.Info().ID
	}
	w.log = w.log.With("sampler", w.opt.ID)
	err = svc.AddEndpoint("probe", micro.HandlerFunc(w.handle),
		micro.WithEndpointSubject(opt.Subjects.Work()),
		micro.WithEndpointQueueGroup(opt.Subjects.QueueGroup()))
	if err != nil {
		svc.Stop()
		return nil, fmt.Errorf("add probe endpoint: %w", err)
	}
	direct := opt.Subjects.WorkTo(svc.Info().ID)
	if err = svc.AddEndpoint("direct", micro.HandlerFunc(w.handle), micro.WithEndpointSubject(direct)); err != nil {
		svc.Stop()
		return nil, fmt.Errorf("add direct probe endpoint: %w", err)
	}
	// Announcements of new snapshots: prefetch while idle, newest only.
	latest := make(chan protocol.Announce, 1)
	w.ann, err = nc.Subscribe(opt.Subjects.AnnounceAll(), func(m *nats.Msg) {
		var a protocol.Announce
		var c protocol.Codec
		if c.UnmarshalAnnounce(m.Data, &a) != nil {
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
		return nil, fmt.Errorf("subscribe to announcements: %w", err)
	}
	go func() {
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
	w.log.Info("sampler serving", "subject", opt.Subjects.Work(), "queue", opt.Subjects.QueueGroup(), "direct", direct)
	return w, nil
}

// Stop stops taking work and lets the request in hand finish and answer:
// the service's subscriptions are drained.
func (w *Worker) Stop() error {
	select {
	case <-w.stop:
		return nil
	default:
	}
	close(w.stop)
	if w.ann != nil {
		w.ann.Unsubscribe()
	}
	return w.svc.Stop()
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

// handle serves one work request.
func (w *Worker) handle(req micro.Request) {
	w.busy.Lock()
	defer w.busy.Unlock()
	var wr protocol.WorkRequest
	if err := w.codec.UnmarshalWorkRequest(req.Data(), &wr); err != nil {
		w.fail(req, &wr, protocol.CodeBadRequest, err)
		return
	}
	if err := wr.Validate(); err != nil {
		w.fail(req, &wr, protocol.CodeBadRequest, err)
		return
	}
	start := time.Now()
	if code, err := w.base(wr.Run, wr.Snap); err != nil {
		w.fail(req, &wr, code, err)
		return
	}
	width := w.plan.Width()
	r := &w.res
	r.Version, r.Run, r.Step, r.Lo, r.Hi = protocol.Version, wr.Run, wr.Step, wr.Lo, wr.Hi
	r.Sampler, r.Width, r.Masked = w.opt.ID, width, w.masked
	if cap(r.D) < (wr.Hi-wr.Lo)*width {
		r.D = make([]float64, (wr.Hi-wr.Lo)*width)
	}
	r.D = r.D[:(wr.Hi-wr.Lo)*width]
	for j := wr.Lo; j < wr.Hi; j++ {
		if w.aborted() {
			w.log.Debug("request abandoned: stopping", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi)
			return
		}
		w.prober.Probe(uint32(j), r.D[(j-wr.Lo)*width:(j-wr.Lo+1)*width])
	}
	r.Seconds = time.Since(start).Seconds()
	if w.aborted() {
		return
	}
	w.out = w.codec.MarshalResult(w.out[:0], r)
	if err := req.Respond(w.out); err != nil {
		w.log.Warn("result not sent", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "error", err)
		return
	}
	w.log.Debug("probes done", "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "seconds", r.Seconds)
}

func (w *Worker) fail(req micro.Request, wr *protocol.WorkRequest, code string, err error) {
	if w.aborted() {
		return
	}
	w.log.Warn("work request failed", "code", code, "step", wr.Step, "lo", wr.Lo, "hi", wr.Hi, "error", err)
	se := protocol.SamplerError{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Sampler: w.opt.ID, Code: code, Message: err.Error()}
	req.Error(code, err.Error(), w.codec.MarshalSamplerError(nil, &se))
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
	if err := snap.Validate(); err != nil {
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
	pts, err := Points(w.setup, snap, w.points)
	if err != nil {
		return protocol.CodeBadSnapshot, err
	}
	w.points = pts
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
// fetching its chunks from the coordinator in parallel. Only the newest
// snapshot is kept. Callers hold snapMu.
func (w *Worker) ensureSnapshotLocked(run string, ref protocol.SnapshotRef) error {
	if w.haveRun == run && w.haveRef == ref && w.snapErr == nil {
		return nil
	}
	if w.haveRun == run && ref.Step < w.haveRef.Step {
		return fmt.Errorf("snapshot of step %d is older than the one in hand (%d)", ref.Step, w.haveRef.Step)
	}
	w.asm.Start(run, ref)
	subject := w.opt.Subjects.Snapshot(run)
	type reply struct {
		msg *nats.Msg
		err error
	}
	replies := make(chan reply, ref.Chunks)
	ctx, cancel := context.WithTimeout(context.Background(), w.opt.FetchTimeout)
	defer cancel()
	var c protocol.Codec
	for i := 0; i < ref.Chunks; i++ {
		req := c.MarshalChunkRequest(nil, &protocol.ChunkRequest{Version: protocol.Version, Run: run, Step: ref.Step, Index: i})
		go func() {
			m, err := w.nc.RequestWithContext(ctx, subject, req)
			replies <- reply{m, err}
		}()
	}
	var chunk protocol.Chunk
	var encoded []byte
	for i := 0; i < ref.Chunks; i++ {
		r := <-replies
		if r.err != nil {
			w.snapErr = fmt.Errorf("fetch snapshot of step %d: %w", ref.Step, r.err)
			return w.snapErr
		}
		if e := r.msg.Header.Get(ErrorHeader); e != "" {
			w.snapErr = fmt.Errorf("fetch snapshot of step %d: the coordinator says: %s", ref.Step, e)
			return w.snapErr
		}
		if err := w.fetch.UnmarshalChunk(r.msg.Data, &chunk); err != nil {
			w.snapErr = fmt.Errorf("snapshot chunk of step %d: %w", ref.Step, err)
			return w.snapErr
		}
		out, err := w.asm.Add(&chunk)
		if err != nil {
			w.snapErr = fmt.Errorf("snapshot chunk of step %d: %w", ref.Step, err)
			return w.snapErr
		}
		if out != nil {
			encoded = out
		}
	}
	if encoded == nil {
		w.snapErr = errors.New("snapshot incomplete after every chunk arrived")
		return w.snapErr
	}
	if err := w.fetch.UnmarshalSnapshot(encoded, &w.snap); err != nil {
		w.snapErr = err
		return err
	}
	if w.snap.Run != run || w.snap.Step != ref.Step {
		w.snapErr = fmt.Errorf("fetched snapshot is run %s step %d, wanted %s step %d", w.snap.Run, w.snap.Step, run, ref.Step)
		return w.snapErr
	}
	w.haveRun, w.haveRef, w.snapErr = run, ref, nil
	w.log.Debug("snapshot fetched", "run", run, "step", ref.Step, "bytes", ref.Size, "chunks", ref.Chunks)
	return nil
}

// ErrorHeader carries the coordinator's reason for not serving a chunk.
const ErrorHeader = "Ntkbus-Error"
