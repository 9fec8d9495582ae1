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

// missing lists the ranges of [lo, hi) not in kept (all of it when kept is
// nil).
func missing(kept [][]float64, lo, hi int) [][2]int {
	if kept == nil {
		return [][2]int{{lo, hi}}
	}
	var out [][2]int
	for j := lo; j < hi; j++ {
		if kept[j] != nil {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == j {
			out[n-1][1] = j + 1
		} else {
			out = append(out, [2]int{j, j + 1})
		}
	}
	return out
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
	var (
		acc  *Accumulator
		add  func(j int, d []float64) error
		cols *ColumnAccumulator
	)
	fresh := func() error {
		acc = NewAccumulator(plan, w.Step, r0, opt.Kernel)
		add = acc.Add
		if opt.Estimator.Sketch() {
			var err error
			if cols, err = NewColumnAccumulator(plan, w.Step, r0, opt.Kernel); err != nil {
				return err
			}
			acc, add = cols.Accumulator(), cols.Add
		}
		return nil
	}
	if err := fresh(); err != nil {
		return nil, err
	}
	res := &EstimateResult{}
	before := AuditOf(b)
	defer func() {
		res.Audit.Add(AuditOf(b).Since(before))
		res.Rejected = int(res.Audit.Total())
	}()
	// A backend that may take probes back (a sampler caught forging after
	// they were emitted) gets them kept here, so the estimate can be built
	// again from the others and the ones taken back computed anew: the
	// result, and where a relative-error target stops, are the honest ones.
	ret, _ := b.(Retractor)
	var kept [][]float64
	if ret != nil {
		kept = make([][]float64, opt.Probes)
	}
	emit := func(j int, d []float64) error {
		if kept == nil {
			if err := add(j, d); err != nil {
				res.Audit.Reject(RefusalReason(err))
			}
			return nil
		}
		switch {
		case j < 0 || j >= len(kept):
			res.Audit.Reject("refused")
		case kept[j] != nil:
			res.Audit.Reject("duplicate")
		case len(d) != plan.Width():
			res.Audit.Reject("length")
		case !finiteAll(d...):
			res.Audit.Reject("non_finite")
		default:
			kept[j] = append([]float64(nil), d...)
		}
		return nil
	}
	for lo := 0; lo < opt.Probes; lo += opt.Batch {
		hi := min(lo+opt.Batch, opt.Probes)
		for _, rg := range missing(kept, lo, hi) {
			if err := b.Probes(ctx, w, rg[0], rg[1], emit); err != nil {
				return nil, err
			}
		}
		if kept != nil {
			if back := ret.Retracted(w); len(back) > 0 {
				// An accumulator cannot subtract: start again from the
				// probes kept, replaying each round's stopping rule.
				for _, r := range back {
					for _, rg := range r.Ranges {
						for j := max(rg[0], 0); j < min(rg[1], len(kept)); j++ {
							kept[j] = nil
						}
					}
				}
				if err := fresh(); err != nil {
					return nil, err
				}
				lo = -opt.Batch
				continue
			}
			for j := lo; j < hi; j++ {
				if kept[j] != nil {
					if err := add(j, kept[j]); err != nil {
						res.Audit.Reject(RefusalReason(err))
					}
				}
			}
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
	res.Acc = acc
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
