package coordinator

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"ntkbus/coordinator/optim"
)

// The trainer's side of an optimizer (package optim): it builds the
// method from the run's config, hands it each step's Problem, and
// computes the probe columns a method asks for.

// optimConfig is the optimizer's part of the run's config.
func (c *TrainConfig) optimConfig(maxMemory int64) optim.Config {
	cols := 0
	if c.needsColumns() {
		cols = c.StepProbes
	}
	return optim.Config{Name: c.Optimizer, Schedule: c.Schedule, Natural: c.Natural, Columns: cols, MaxMemory: maxMemory}
}

// needsColumns reports whether the run keeps each step's probe columns
// for its optimizer: sngd's sketch, or the CG preconditioner's.
func (c *TrainConfig) needsColumns() bool {
	return c.Optimizer == "sngd" || c.Optimizer == "ngd" && c.Natural.Solver == optim.SolverCG && c.StepProbes > 0
}

// NeedsProbes reports whether a run draws probes: Algorithm 3's, or the
// columns of a sketch.
func (c *TrainConfig) NeedsProbes() bool { return c.Mode == Estimated || c.needsColumns() }

// stepColumns returns the first S probe columns of step t (S the method's
// Needs().Columns), computing those that Algorithm 3's probes did not
// provide: on the trainer's backend when it has one (samplers over NATS,
// or goroutines), else on its own prober. Probe j is keyed by (seed, t, j)
// and lands in column j through the column accumulator, which validates
// it, so the columns are the same bits wherever they are computed.
func (tr *Trainer) stepColumns(ctx context.Context, t int) (omega, y []float64, err error) {
	c := tr.cols
	S := tr.method.Needs().Columns
	lo := c.Applied()
	if lo < S {
		if err := tr.fillColumns(ctx, t, lo, S); err != nil {
			return nil, nil, err
		}
	}
	omega, y = c.Columns(S)
	return omega, y, nil
}

func (tr *Trainer) fillColumns(ctx context.Context, t, lo, S int) error {
	c := tr.cols
	if tr.backend == nil {
		if len(tr.ds) == 0 {
			tr.ds = append(tr.ds, make([]float64, tr.plan.Width()))
		}
		for j := lo; j < S; j++ {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sketch columns: %w", err)
			}
			tr.prober.Probe(uint32(j), tr.ds[0])
			if err := c.Add(j, tr.ds[0]); err != nil {
				return fmt.Errorf("sketch column %d: %w", j, err)
			}
		}
		return nil
	}
	w := &Work{ID: uint64(t) + 1, PointsID: tr.pointsID(t), Step: uint32(t), Theta: tr.theta, Points: tr.points, PointSeed: tr.cfg.PointSeed}
	if tr.cfg.Resample {
		w.Counts = tr.points.Counts()
	}
	// Refusals count in the step's audit (train.csv's rejected), as
	// Algorithm 3's probes do.
	audit := &tr.rec.Audit
	before := AuditOf(tr.backend)
	// As Algorithm 3's probes: nothing a sampler caught forging gave the
	// collection reaches the columns.
	refused, err := Collect(ctx, tr.backend, w, lo, S, tr.plan.Width(), c.Add, nil)
	audit.Add(refused)
	audit.Add(AuditOf(tr.backend).Since(before))
	if err != nil {
		return fmt.Errorf("sketch columns: %w", err)
	}
	if got := c.Applied(); got < S {
		return fmt.Errorf("sketch column %d of %d did not arrive (%d results rejected)", got, S, refused.Total())
	}
	return nil
}

// optimStep hands the step to the optimizer: θ_t, R(θ_t) at the base
// point, the weights, and what its Needs ask for.
func (tr *Trainer) optimStep(ctx context.Context, t int, r []float64, rec *StepRecord) error {
	p := &tr.problem
	*p = optim.Problem{
		Step: t, Theta: tr.theta, Residual: r, Weights: tr.w, Objective: rec.Objective,
		Eval: tr.ev, NewPoints: tr.cfg.Resample, Progress: tr.OnWork,
	}
	if tr.needs.Gradient {
		p.Gradient = tr.grad
	}
	if tr.needs.Columns > 0 {
		p.Columns = func(ctx context.Context) ([]float64, []float64, error) { return tr.stepColumns(ctx, t) }
	}
	rec.Optim = &tr.orec
	return tr.method.Step(ctx, p, &tr.orec)
}

// Method is the run's optimizer.
func (tr *Trainer) Method() optim.Method { return tr.method }

// logStep logs an optimizer step that records more than its rate: every
// step at debug level, a rejected one at info level.
func logStep(log hclog.Logger, cols []string, rec *StepRecord) {
	or := rec.Optim
	if or == nil || len(cols) == 0 {
		return
	}
	args := append([]any{"step", rec.Step}, or.LogArgs(cols)...)
	if or.Rejected {
		log.Info("step rejected: θ unchanged, μ grown", args...)
		return
	}
	log.Debug("optimizer step", args...)
}
