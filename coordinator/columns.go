package coordinator

import (
	"errors"
	"fmt"
	"math"

	"ntkbus/coordinator/sketch"
	"ntkbus/sampler"
)

// Estimator is what the coordinator makes of a step's probes.
type Estimator int

const (
	// Hutchinson averages the rank-one samples (d cᵀ + c dᵀ)/2 (Algorithm 2).
	Hutchinson Estimator = iota
	// Nystrom keeps the probes as the columns Y = KΩ of a sketch and takes
	// the block traces from the diagonal of its stabilized Nyström
	// approximation (Tropp, Yurtsever, Udell & Cevher 2017).
	Nystrom
	// XNysTrace keeps the columns and estimates the block traces by the
	// exchangeable Nyström estimator of Epperly, Tropp & Webber (2024):
	// the low-rank part exact, Hutchinson on the remainder, every probe
	// used both ways.
	XNysTrace
)

var estimatorNames = [...]string{"hutchinson", "nystrom", "xnystrace"}

func (e Estimator) String() string {
	if e < 0 || int(e) >= len(estimatorNames) {
		return fmt.Sprintf("Estimator(%d)", int(e))
	}
	return estimatorNames[e]
}

// ParseEstimator reads an estimator name.
func ParseEstimator(s string) (Estimator, error) {
	for i, n := range estimatorNames {
		if n == s {
			return Estimator(i), nil
		}
	}
	return 0, fmt.Errorf("unknown estimator %q (want one of %v)", s, estimatorNames)
}

// MarshalText writes the estimator's name.
func (e Estimator) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText reads an estimator's name.
func (e *Estimator) UnmarshalText(b []byte) (err error) {
	*e, err = ParseEstimator(string(b))
	return
}

// Sketch reports whether the estimator keeps the probes' columns.
func (e Estimator) Sketch() bool { return e == Nystrom || e == XNysTrace }

// DefaultQuotient is the difference quotient each estimator uses unless
// told otherwise: forward for Hutchinson (the paper's), whose Monte Carlo
// error is far above any quotient's; exact for the sketches, because
// inverting the sketch's core amplifies the quotient's error (measured on
// the wave network: see docs/sketch.md).
func (e Estimator) DefaultQuotient() sampler.Quotient {
	if e.Sketch() {
		return sampler.Exact
	}
	return sampler.Forward
}

// Check reports probe settings the estimator cannot use: a sketch needs
// probes that see every row with E[ggᵀ] = I (Gaussian or Rademacher).
func (e Estimator) Check(s sampler.Settings) error {
	if e < Hutchinson || e > XNysTrace {
		return fmt.Errorf("estimator %d", int(e))
	}
	if e.Sketch() && s.Kind != sampler.Gaussian && s.Kind != sampler.Rademacher {
		return fmt.Errorf("the %s estimator needs gaussian or rademacher probes, not %s", e, s.Kind)
	}
	return nil
}

// MaxProbes is the most probes one estimate of e may take (0: no bound).
// A sketch keeps every probe's column (n·S values) and decomposes S×S
// matrices; XNysTrace's leave-two-out error estimate also keeps S²·B
// values and costs O(S³) per estimate. Hutchinson streams its probes.
func (e Estimator) MaxProbes() int {
	switch e {
	case Nystrom:
		return 4096
	case XNysTrace:
		return 1000
	}
	return 0
}

// CheckProbes refuses more probes than one estimate of e may take; what
// names the count (for the message).
func (e Estimator) CheckProbes(what string, n int) error {
	if max := e.MaxProbes(); max > 0 && n > max {
		return fmt.Errorf("%s = %d: the %s estimator keeps every probe's column and decomposes an N×N matrix; keep N ≤ %d (or use hutchinson)", what, n, e, max)
	}
	return nil
}

// ColumnAccumulator keeps the probes of one step as the columns of a sketch:
// Ω = [c_first … c_last], the probe vectors with the rows where R_i = 0
// zeroed, and Y = [d_first … d_last] ≈ KΩ. It feeds every result to its
// Accumulator first, which validates it, refuses duplicates and applies
// results in probe-index order; the columns are the applied probes in
// index order, so a sketch is the same bits whatever the arrival order and
// the number of workers. It is the one collector of a step's columns: for
// a sketch estimator of the weights (Sketch, Estimate) and for an
// optimizer that asks for them (Columns), from Algorithm 3's probes and
// those computed for the optimizer alike.
type ColumnAccumulator struct {
	acc  *Accumulator
	keep int         // columns kept: probes first … first+keep−1 (0: all)
	d    [][]float64 // probe first+i's quotient at i (nil until it arrives)
	free [][]float64
	g, c []float64
}

// NewColumnAccumulator returns an empty column accumulator for the probes
// of a sketch estimator of step at a base point whose residual is r0; full
// also keeps the Accumulator's n×n Hutchinson sum. The plan's probes must
// see every row (Gaussian or Rademacher).
func NewColumnAccumulator(plan *sampler.Plan, step uint32, r0 []float64, full bool) (*ColumnAccumulator, error) {
	if plan.Kind != sampler.Gaussian && plan.Kind != sampler.Rademacher {
		return nil, fmt.Errorf("a sketch needs gaussian or rademacher probes, not %s", plan.Kind)
	}
	return newColumns(plan, step, r0, full, 0)
}

// newColumns is NewColumnAccumulator for any probes with kernel columns
// (an optimizer's sketch may use block probes), keeping only the first
// keep columns when keep > 0 (all probes still reach the Accumulator).
func newColumns(plan *sampler.Plan, step uint32, r0 []float64, full bool, keep int) (*ColumnAccumulator, error) {
	if plan.Kind == sampler.Param {
		return nil, fmt.Errorf("%s probes give no kernel columns", plan.Kind)
	}
	n := plan.Layout().N
	return &ColumnAccumulator{
		acc: NewAccumulator(plan, step, r0, full), keep: keep,
		g: make([]float64, n), c: make([]float64, n),
	}, nil
}

// Accumulator is the Hutchinson accumulator the columns are fed through.
func (c *ColumnAccumulator) Accumulator() *Accumulator { return c.acc }

// Reset empties the columns for another step, keeping their memory.
func (c *ColumnAccumulator) Reset(step uint32, r0 []float64) { c.ResetFrom(step, r0, 0) }

// ResetFrom empties the columns for probes first, first+1, ... of a step.
func (c *ColumnAccumulator) ResetFrom(step uint32, r0 []float64, first int) {
	c.acc.ResetFrom(step, r0, first)
	for i, d := range c.d {
		if d != nil {
			c.free = append(c.free, d)
		}
		c.d[i] = nil
	}
	c.d = c.d[:0]
}

// Add takes probe j's result d, as Accumulator.Add does, and keeps it as a
// column when the accumulator accepts it.
func (c *ColumnAccumulator) Add(j int, d []float64) error {
	if err := c.acc.Add(j, d); err != nil {
		return err
	}
	i := j - c.acc.first
	if c.keep > 0 && i >= c.keep {
		return nil
	}
	for len(c.d) <= i {
		c.d = append(c.d, nil)
	}
	c.d[i] = keepCopy(&c.free, d)
	return nil
}

// Applied is the number of probes applied so far.
func (c *ColumnAccumulator) Applied() int { return c.acc.Applied() }

// Columns returns new Ω and Y (n×s, row-major) of the first s probes, in
// probe-index order, for an optimizer: Ω masked as Sketch's, Y the probes'
// quotients as they came (Y = KΩ in every row). The first s probes must
// have been applied and kept.
func (c *ColumnAccumulator) Columns(s int) (omega, y []float64) {
	a := c.acc
	n := a.lay.N
	if a.Applied() < s || c.keep > 0 && s > c.keep {
		panic(fmt.Sprintf("columns: %d asked, %d applied, %d kept", s, a.Applied(), c.keep))
	}
	omega, y = make([]float64, n*s), make([]float64, n*s)
	for i := 0; i < s; i++ {
		a.plan.Vector(a.step, uint32(a.first+i), c.g)
		sampler.Cotangent(c.g, a.r0, c.c)
		d := c.d[i]
		for r := 0; r < n; r++ {
			omega[r*s+i] = c.c[r]
			y[r*s+i] = d[r]
		}
	}
	return omega, y
}

// Sketch returns Ω and Y (n×s, row-major) of the s probes applied so far,
// in probe-index order.
func (c *ColumnAccumulator) Sketch() (omega, y []float64, n, s int) {
	a := c.acc
	n, s = a.lay.N, a.Applied()
	omega, y = make([]float64, n*s), make([]float64, n*s)
	for i := 0; i < s; i++ {
		a.plan.Vector(a.step, uint32(a.first+i), c.g)
		sampler.Cotangent(c.g, a.r0, c.c)
		d := c.d[i]
		for r := 0; r < n; r++ {
			omega[r*s+i] = c.c[r]
			if a.r0[r] != 0 {
				y[r*s+i] = d[r]
			}
		}
	}
	return omega, y, n, s
}

// SketchResult is what a sketch estimator made of a step's columns.
type SketchResult struct {
	Estimator Estimator
	// Estimate holds the block traces and their covariance, for the
	// weights and their delta-method intervals. For XNysTrace the
	// covariance is sketch.BlockTraces.Cov. Nyström's error is mostly its
	// (negative) bias, which XNysTrace estimates without bias from the
	// same columns: its covariance is an error bar, XNysTrace's covariance
	// plus δδᵀ, δ = XNysTrace's block traces − Nyström's. It cannot be
	// smaller than XNysTrace's error, so where Nyström is the more
	// accurate (a resolved spectrum) it is conservative. PerProbeCov is
	// s·Cov.
	Estimate Estimate
	Nystrom  *sketch.Nystrom     // of the same columns: rank, eigenvalues, K̂
	XNys     *sketch.BlockTraces // the exchangeable estimate of the same columns
}

// Nystrom returns the Nyström approximation of the columns applied so far
// and the block traces of its diagonal (without XNysTrace's O(s³) error
// estimate).
func (c *ColumnAccumulator) Nystrom() (*sketch.Nystrom, []float64, error) {
	return c.nystromOf(c.Sketch())
}

// nystromOf is Nystrom of the columns Sketch returned.
func (c *ColumnAccumulator) nystromOf(omega, y []float64, n, s int) (*sketch.Nystrom, []float64, error) {
	if s == 0 {
		return nil, nil, errors.New("no probes to sketch")
	}
	ny, err := sketch.NewNystrom(omega, y, n, s)
	if err != nil {
		return nil, nil, fmt.Errorf("step %d: %w", c.acc.step, err)
	}
	diag := make([]float64, n)
	ny.Diagonal(diag)
	traces := make([]float64, len(c.acc.lay.Blocks))
	c.acc.lay.BlockSums(diag, traces)
	return ny, traces, nil
}

// Estimate applies a sketch estimator to the columns applied so far.
func (c *ColumnAccumulator) Estimate(est Estimator) (*SketchResult, error) {
	if !est.Sketch() {
		return nil, fmt.Errorf("%s is not a sketch estimator", est)
	}
	// The columns once, for both estimates (Sketch rebuilds the probe
	// vectors and copies every column).
	omega, y, n, s := c.Sketch()
	ny, nysTraces, err := c.nystromOf(omega, y, n, s)
	if err != nil {
		return nil, err
	}
	lay := c.acc.lay
	sizes := make([]int, len(lay.Blocks))
	for b, sp := range lay.Blocks {
		sizes[b] = sp.Len
	}
	x, err := sketch.XNysBlockTraces(omega, y, n, s, sizes)
	if err != nil {
		return nil, fmt.Errorf("step %d: %w", c.acc.step, err)
	}
	res := &SketchResult{Estimator: est, Nystrom: ny, XNys: x}
	B := len(sizes)
	e := &res.Estimate
	e.Probes = s
	e.Cov = make([]float64, B*B)
	switch est {
	case XNysTrace:
		e.BlockTraces = append([]float64(nil), x.Traces...)
		copy(e.Cov, x.Cov)
	case Nystrom:
		e.BlockTraces = nysTraces
		delta := make([]float64, B)
		for b := range delta {
			delta[b] = x.Traces[b] - e.BlockTraces[b]
		}
		for b := 0; b < B; b++ {
			for d := 0; d < B; d++ {
				e.Cov[b*B+d] = x.Cov[b*B+d] + delta[b]*delta[d]
			}
		}
	}
	e.PerProbeCov = make([]float64, B*B)
	for i, v := range e.Cov {
		e.PerProbeCov[i] = float64(s) * v
	}
	for _, t := range e.BlockTraces {
		e.Trace += t
	}
	if math.IsNaN(e.Trace) {
		return nil, fmt.Errorf("step %d: the %s estimate is not finite", c.acc.step, est)
	}
	return res, nil
}

// Kernel sets dst (n×n) to the Nyström approximation U diag(Λ) Uᵀ.
func (r *SketchResult) Kernel(dst []float64) { r.Nystrom.Dense(dst) }
