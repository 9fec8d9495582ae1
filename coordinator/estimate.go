package coordinator

import (
	"context"
	"fmt"
	"math"

	"ntkbus/sampler"
)

// EstimateOptions control a one-off estimate at a fixed θ.
type EstimateOptions struct {
	Probes    int     // N, the most probes to draw
	Batch     int     // probes per dispatch; stopping is checked between batches
	RelError  float64 // stop once every λ_b has SE/λ below this (0: draw all N)
	MinProbes int     // never stop before this many probes (default 30 per class)
	Kernel    bool    // keep the full K̂ (Hutchinson's)
	// Estimator is what to make of the probes; a sketch estimator keeps
	// their columns and cannot stop early (RelError must be 0).
	Estimator Estimator
	Progress  func(done, total int, e Estimate)
}

// EstimateResult is a finished one-off estimate.
type EstimateResult struct {
	Estimate Estimate
	Acc      *Accumulator
	Sketch   *SketchResult // with a sketch estimator; Estimate is its Estimate
	Stopped  bool          // stopped early on the relative-error target
	Rejected int           // results refused, the backend's and the accumulator's: Audit.Total()
	// Audit is every refusal by reason (the backend's, e.g. malformed or
	// stale results, and the accumulator's: duplicates, wrong lengths,
	// non-finite values) and the backend's --verify checks.
	Audit Audit
}

// EstimateAt draws probes of w through the backend until N probes or the
// relative-error target, and accumulates them. r0 is R at w's base point.
// Batches are fixed, so where it stops depends only on the seed.
func EstimateAt(ctx context.Context, b Backend, plan *sampler.Plan, w *Work, r0 []float64, opt EstimateOptions) (*EstimateResult, error) {
	if opt.Probes < 1 {
		return nil, fmt.Errorf("probes = %d: want at least 1", opt.Probes)
	}
	if opt.Batch < 1 {
		opt.Batch = 64
	}
	if opt.MinProbes == 0 {
		opt.MinProbes = 30
		if plan.Kind == sampler.Block {
			opt.MinProbes = 30 * len(plan.Layout().Blocks)
		}
	}
	if err := opt.Estimator.Check(plan.Settings); err != nil {
		return nil, err
	}
	if err := opt.Estimator.CheckProbes("probes", opt.Probes); err != nil {
		return nil, err
	}
	if opt.Estimator.Sketch() && opt.RelError > 0 {
		return nil, fmt.Errorf("the %s estimator cannot stop on a relative error: drop it or use hutchinson", opt.Estimator)
	}
	acc := NewAccumulator(plan, w.Step, r0, opt.Kernel)
	add := acc.Add
	var cols *ColumnAccumulator
	if opt.Estimator.Sketch() {
		var err error
		if cols, err = NewColumnAccumulator(plan, w.Step, r0, opt.Kernel); err != nil {
			return nil, err
		}
		acc, add = cols.Accumulator(), cols.Add
	}
	res := &EstimateResult{Acc: acc}
	before := AuditOf(b)
	defer func() {
		res.Audit.Add(AuditOf(b).Since(before))
		res.Rejected = int(res.Audit.Total())
	}()
	for lo := 0; lo < opt.Probes; lo += opt.Batch {
		hi := min(lo+opt.Batch, opt.Probes)
		err := b.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
			if err := add(j, d); err != nil {
				res.Audit.Reject(RefusalReason(err))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if acc.Applied() != hi {
			return nil, fmt.Errorf("probes %d..%d: only %d of them arrived", lo, hi-1, acc.Applied()-lo)
		}
		e := acc.Estimate()
		if opt.Progress != nil {
			opt.Progress(hi, opt.Probes, e)
		}
		if opt.RelError > 0 && hi >= opt.MinProbes && hi < opt.Probes && e.MaxRelativeError() < opt.RelError {
			res.Stopped = true
			break
		}
	}
	res.Estimate = acc.Estimate()
	if cols != nil {
		sk, err := cols.Estimate(opt.Estimator)
		if err != nil {
			return nil, err
		}
		res.Sketch, res.Estimate = sk, sk.Estimate
	}
	if math.IsNaN(res.Estimate.Trace) {
		return nil, fmt.Errorf("the estimate is not finite")
	}
	return res, nil
}
