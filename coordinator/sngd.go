package coordinator

import (
	"context"
	"fmt"
	"time"

	"ntkbus/coordinator/sketch"
)

// The sketched natural gradient (sngd) and the preconditioner of ngd's CG:
// both rest on the Nyström approximation of K̃ from the S probe columns of
// the step, d_j ≈ K c_j for the keyed probes j = 0..S−1, computed by the
// samplers (over NATS or in process) like every other probe.

// nystrom returns the Nyström approximation of K̃ from the step's columns,
// computing those that Algorithm 3's probes did not provide.
func (nt *natural) nystrom(ctx context.Context, tr *Trainer, t int, r []float64) (*sketch.Nystrom, error) {
	c := nt.cols
	start := time.Now()
	if err := c.fill(ctx, tr, t); err != nil {
		return nil, err
	}
	nt.rec.ColumnSeconds = time.Since(start).Seconds()
	omega, y := c.weighted(tr.plan, t, r, nt.sw)
	ny, err := sketch.NewNystrom(omega, y, c.n, c.s)
	if err != nil {
		return nil, fmt.Errorf("Nyström sketch of K̃ from %d columns: %w", c.s, err)
	}
	return ny, nil
}

// solveSketch solves (K̂ + μI)z = R̃ by Woodbury through the sketch's
// eigendecomposition: O(nS) per solve after the O(nS²) sketch.
func (nt *natural) solveSketch(ctx context.Context, tr *Trainer, t int, r []float64) error {
	ny, err := nt.nystrom(ctx, tr, t, r)
	if err != nil {
		return err
	}
	ny.SolveShifted(nt.state.Mu, nt.z, nt.rt)
	return nil
}

// preconditioner returns the randomized Nyström preconditioner of K̃ + μI
// (Frangella, Tropp & Udell 2023) from the step's columns, or nil when the
// run draws none.
func (nt *natural) preconditioner(ctx context.Context, tr *Trainer, t int, r []float64) (func(dst, v []float64), error) {
	if nt.cols == nil {
		return nil, nil
	}
	ny, err := nt.nystrom(ctx, tr, t, r)
	if err != nil {
		return nil, err
	}
	mu := nt.state.Mu
	return func(dst, v []float64) { ny.Precondition(mu, dst, v) }, nil
}
