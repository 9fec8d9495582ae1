package coordinator

import (
	"context"
	"fmt"
	"sync"

	"ntkbus/model"
	"ntkbus/sampler"
)

// Work is the base point of one step's probes: θ and the collocation points.
// Theta and Points must not change while probes of this Work run.
type Work struct {
	ID       uint64 // distinct for every distinct (θ, points); backends cache by it
	PointsID uint64 // distinct for every distinct set of points
	Step     uint32
	Theta    []float64
	Points   *model.Collocation
	// Seed and Counts say how Points were drawn (resampled problems), so a
	// remote backend can send the seed instead of the points; Counts is nil
	// when Points are explicit.
	PointSeed uint64
	Counts    []int
}

// Backend computes probes [lo, hi) of a step and calls emit with each
// result, in any order but never concurrently. d is only valid during the
// call. An emit error stops the work and is returned.
type Backend interface {
	Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error
	Close() error
}

// Local computes probes on goroutines of this process, each with its own
// evaluator. It is the reference backend: the NATS backend must give the
// same bits.
type Local struct {
	setup *model.Setup
	plan  *sampler.Plan
	opt   model.Options

	mu      sync.Mutex
	workers []*localWorker
}

type localWorker struct {
	prober *sampler.Prober
	ev     model.Evaluator
	base   uint64 // Work.ID of the current base point
	points uint64 // Work.PointsID of the evaluator's points
}

// NewLocal returns a backend with the given number of workers (at least 1)
// for the setup's residual at the points' layout, drawing probes by plan.
func NewLocal(setup *model.Setup, points *model.Collocation, s sampler.Settings, workers int, opt model.Options) (*Local, error) {
	if workers < 1 {
		return nil, fmt.Errorf("workers = %d: want at least 1", workers)
	}
	l := &Local{setup: setup, opt: opt}
	for i := 0; i < workers; i++ {
		ev, err := setup.NewEvaluator(points, opt)
		if err != nil {
			return nil, err
		}
		if l.plan == nil {
			if l.plan, err = sampler.NewPlan(s, ev.Layout()); err != nil {
				return nil, err
			}
		}
		l.workers = append(l.workers, &localWorker{ev: ev, prober: sampler.NewProber(ev, l.plan)})
	}
	return l, nil
}

// Plan is the backend's probe plan.
func (l *Local) Plan() *sampler.Plan { return l.plan }

type localResult struct {
	j   int
	d   []float64
	err error
}

// Probes spreads [lo, hi) over the workers in contiguous chunks.
func (l *Local) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hi <= lo {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	width := l.plan.Width()
	nw := min(len(l.workers), hi-lo)
	results := make(chan localResult, 2*nw)
	free := make(chan []float64, 2*nw+nw)
	for i := 0; i < cap(free); i++ {
		free <- make([]float64, width)
	}
	next := make(chan int, hi-lo)
	for j := lo; j < hi; j++ {
		next <- j
	}
	close(next)
	var wg sync.WaitGroup
	for k := 0; k < nw; k++ {
		wg.Add(1)
		go func(wk *localWorker) {
			defer wg.Done()
			if err := wk.setBase(w); err != nil {
				results <- localResult{err: err}
				return
			}
			for j := range next {
				var d []float64
				select {
				case d = <-free:
				case <-ctx.Done():
					return
				}
				wk.prober.Probe(uint32(j), d)
				select {
				case results <- localResult{j: j, d: d}:
				case <-ctx.Done():
					return
				}
			}
		}(l.workers[k])
	}
	go func() { wg.Wait(); close(results) }()
	var firstErr error
	for r := range results {
		if firstErr != nil {
			continue
		}
		if r.err != nil {
			firstErr = r.err
			cancel()
			continue
		}
		if err := emit(r.j, r.d); err != nil {
			firstErr = err
			cancel()
			continue
		}
		free <- r.d
	}
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (wk *localWorker) setBase(w *Work) error {
	if wk.base == w.ID && wk.base != 0 {
		wk.prober.SetStep(w.Step)
		return nil
	}
	if w.PointsID != wk.points || wk.points == 0 {
		if err := wk.ev.SetPoints(w.Points); err != nil {
			return fmt.Errorf("set points of step %d: %w", w.Step, err)
		}
		wk.points = w.PointsID
	}
	wk.prober.SetBase(w.Theta, w.Step)
	wk.base = w.ID
	return nil
}

// Close releases nothing; Local holds only memory.
func (l *Local) Close() error { return nil }
