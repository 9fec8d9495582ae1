package coordinator

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"

	"ntkbus/model"
	"ntkbus/sampler"
)

// Errors of Accumulator.Add: a probe it already has, a result of the wrong
// length, a non-finite value.
var (
	ErrDuplicate = errors.New("probe already counted")
	ErrLength    = errors.New("wrong number of values")
	ErrNonFinite = errors.New("value not finite")
)

// Accumulator averages the probes of one step into the block traces, Tr K̂
// and, when asked, the full K̂. Contributions are applied in probe-index
// order (results that arrive early wait), so the estimate is the same bits
// whatever the arrival order and however many workers produced it.
//
// For probe j with vector c_j (g_j with the rows where R_i = 0 zeroed) and
// quotient d_j ≈ K c_j, the block-trace sample is s_jb = Σ_{i∈b} c_ji d_ji
// and K̂ = sym(Σ_j d_j c_jᵀ)/N (Algorithm 2, averaged). Block probes are
// averaged per block: K̂ = sym(Σ_b (1/N_b) Σ_{j∈b} d_j c_jᵀ), whose columns of
// block b come only from probes on b. Param probes (Theorem 5) give the
// samples s_jb = d_jb directly and no kernel.
type Accumulator struct {
	plan *sampler.Plan
	lay  *model.Layout
	step uint32
	r0   []float64
	full bool

	m     []float64 // Σ d cᵀ, n×n, when full
	count []int     // probes applied per block (block probes), or [N]
	stats traceStats

	first   int // the first probe index
	next    int
	pending map[int][]float64
	free    [][]float64
	g, c, s []float64
}

// NewAccumulator returns an empty accumulator for the probes of step at a
// base point whose residual is r0 (it decides which rows probes drop). With
// full it keeps the n×n sum for K̂.
func NewAccumulator(plan *sampler.Plan, step uint32, r0 []float64, full bool) *Accumulator {
	lay := plan.Layout()
	B := len(lay.Blocks)
	a := &Accumulator{
		plan: plan, lay: lay, step: step, r0: r0,
		full:    full && plan.Kind != sampler.Param,
		pending: map[int][]float64{},
		g:       make([]float64, lay.N),
		c:       make([]float64, lay.N),
		s:       make([]float64, B),
	}
	a.stats.init(B, plan.Kind == sampler.Block)
	if a.full {
		a.m = make([]float64, lay.N*lay.N)
	}
	if plan.Kind == sampler.Block {
		a.count = make([]int, B)
	} else {
		a.count = make([]int, 1)
	}
	return a
}

// Reset empties the accumulator for another step (or base point), keeping
// its memory.
func (a *Accumulator) Reset(step uint32, r0 []float64) { a.ResetFrom(step, r0, 0) }

// ResetFrom empties the accumulator for probes first, first+1, ... of a
// step: disjoint index ranges of one step are independent estimates.
func (a *Accumulator) ResetFrom(step uint32, r0 []float64, first int) {
	a.step, a.r0 = step, r0
	for i := range a.m {
		a.m[i] = 0
	}
	for i := range a.count {
		a.count[i] = 0
	}
	a.stats.reset()
	for j, d := range a.pending {
		a.free = append(a.free, d)
		delete(a.pending, j)
	}
	a.first, a.next = first, first
}

// Applied is the number of probes applied: all of first..first+Applied()-1.
func (a *Accumulator) Applied() int { return a.next - a.first }

// Pending is the number of probes received but waiting for earlier ones.
func (a *Accumulator) Pending() int { return len(a.pending) }

// Add takes probe j's result d (length Plan.Width()). A probe already
// applied or pending gives ErrDuplicate; a result of the wrong length or
// with a non-finite value is an error; neither is counted. d is copied when
// it must wait, so the caller may reuse it.
func (a *Accumulator) Add(j int, d []float64) error {
	if w := a.plan.Width(); len(d) != w {
		return fmt.Errorf("probe %d: %d values, want %d: %w", j, len(d), w, ErrLength)
	}
	for i, v := range d {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("probe %d: value %d is %v: %w", j, i, v, ErrNonFinite)
		}
	}
	if j < a.next {
		return fmt.Errorf("probe %d: %w", j, ErrDuplicate)
	}
	if _, ok := a.pending[j]; ok {
		return fmt.Errorf("probe %d: %w", j, ErrDuplicate)
	}
	if j > a.next {
		a.pending[j] = keepCopy(&a.free, d)
		return nil
	}
	a.apply(j, d)
	for {
		buf, ok := a.pending[a.next]
		if !ok {
			return nil
		}
		delete(a.pending, a.next)
		a.apply(a.next, buf)
		a.free = append(a.free, buf)
	}
}

func (a *Accumulator) apply(j int, d []float64) {
	a.next = j + 1
	if a.plan.Kind == sampler.Param {
		a.count[0]++
		a.stats.add(d, -1)
		return
	}
	a.plan.Vector(a.step, uint32(j), a.g)
	sampler.Cotangent(a.g, a.r0, a.c)
	for b, sp := range a.lay.Blocks {
		var sum float64
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			sum += a.c[i] * d[i]
		}
		a.s[b] = sum
	}
	block := a.plan.BlockOf(uint32(j))
	if block >= 0 {
		a.count[block]++
	} else {
		a.count[0]++
	}
	a.stats.add(a.s, block)
	if !a.full {
		return
	}
	n := a.lay.N
	lo, hi := 0, n
	if block >= 0 {
		sp := a.lay.Blocks[block]
		lo, hi = sp.Off, sp.Off+sp.Len
	}
	for i, di := range d {
		if di != 0 {
			floats.AddScaled(a.m[i*n+lo:i*n+hi], di, a.c[lo:hi])
		}
	}
}

// Kernel sets dst (n×n) to K̂ from the probes applied so far; with clip,
// to the clipped estimator max(K̂_ij, 0) of Remark 6. It fails when the
// accumulator keeps no kernel or a block has no probes yet.
func (a *Accumulator) Kernel(dst []float64, clip bool) error {
	if !a.full {
		return errors.New("this accumulator keeps no kernel (Param probes have none; or it was not asked for)")
	}
	n := a.lay.N
	scale := make([]float64, n)
	for b, sp := range a.lay.Blocks {
		cnt := a.count[0]
		if a.plan.Kind == sampler.Block {
			cnt = a.count[b]
		}
		if cnt == 0 && sp.Len > 0 {
			return fmt.Errorf("block %s has no probes yet", sp.Name)
		}
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			scale[i] = 1 / float64(cnt)
		}
	}
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			v := (a.m[i*n+j]*scale[j] + a.m[j*n+i]*scale[i]) / 2
			if clip && v < 0 {
				v = 0
			}
			dst[i*n+j], dst[j*n+i] = v, v
		}
	}
	return nil
}

// Estimate summarizes the probes applied so far.
func (a *Accumulator) Estimate() Estimate {
	var e Estimate
	a.stats.estimate(a.lay, &e)
	return e
}

// EstimateInto is Estimate reusing dst's slices.
func (a *Accumulator) EstimateInto(dst *Estimate) { a.stats.estimate(a.lay, dst) }

// Estimate is an estimate of the block traces with its uncertainty, and the
// NTK weights λ_b = Tr K / Tr K_bb derived from it.
type Estimate struct {
	Probes      int
	BlockTraces []float64
	// Cov is the estimated covariance of BlockTraces (B×B, row-major):
	// the sample covariance of the per-probe samples over N.
	Cov   []float64
	Trace float64
	// PerProbeCov is the covariance of one probe's block-trace samples
	// (B×B); Cov = PerProbeCov/N for joint probes.
	PerProbeCov []float64
}

// B is the number of blocks.
func (e *Estimate) B() int { return len(e.BlockTraces) }

// TraceSE is the standard error of the trace estimate.
func (e *Estimate) TraceSE() float64 {
	var v float64
	for _, c := range e.Cov {
		v += c
	}
	return math.Sqrt(v)
}

// BlockSE is the standard error of block b's trace estimate.
func (e *Estimate) BlockSE(b int) float64 { return math.Sqrt(e.Cov[b*e.B()+b]) }

// Weights returns λ_b = Tr K / Tr K_bb and their standard errors by the
// delta method: λ_b is a smooth function of the block-trace means, which are
// asymptotically normal (means of i.i.d. samples with finite variance), so
// Var λ̂_b ≈ ∇λ_bᵀ Cov ∇λ_b with ∂λ_b/∂T_c = 1/T_b − [b=c]·T/T_b².
func (e *Estimate) Weights() (lambda, se []float64) {
	B := len(e.BlockTraces)
	lambda, se = make([]float64, B), make([]float64, B)
	weightsWithSE(e.BlockTraces, e.Cov, lambda, se, make([]float64, B))
	return lambda, se
}

// weightsWithSE sets lambda and se from block traces T and their
// covariance; grad is scratch of length B.
func weightsWithSE(T, cov, lambda, se, grad []float64) {
	B := len(T)
	var tr float64
	for _, t := range T {
		tr += t
	}
	for b := range T {
		lambda[b] = tr / T[b]
		for c := range grad {
			grad[c] = 1 / T[b]
		}
		grad[b] -= tr / (T[b] * T[b])
		var v float64
		for c := 0; c < B; c++ {
			for d := 0; d < B; d++ {
				v += grad[c] * cov[c*B+d] * grad[d]
			}
		}
		se[b] = math.Sqrt(math.Max(v, 0))
	}
}

// Z95 is the standard normal quantile of a two-sided 95% interval.
const Z95 = 1.959963984540054

// MaxRelativeError is max_b SE(λ_b)/λ_b: the quantity optional stopping
// compares with its target. It is +Inf until every block has two samples.
func (e *Estimate) MaxRelativeError() float64 {
	lambda, se := e.Weights()
	worst := 0.0
	for b := range lambda {
		r := se[b] / math.Abs(lambda[b])
		if math.IsNaN(r) || math.IsInf(lambda[b], 0) {
			return math.Inf(1)
		}
		worst = math.Max(worst, r)
	}
	return worst
}

// traceStats keeps streaming (Welford) means and co-moments of the
// per-probe block-trace samples: jointly for probes that see every block,
// per block for block probes.
type traceStats struct {
	perBlock bool
	n        []int     // samples: [N] joint, or per block
	mean     []float64 // B
	co       []float64 // B×B co-moments (joint), or B second moments on the diagonal
	dx       []float64
}

func (t *traceStats) init(B int, perBlock bool) {
	t.perBlock = perBlock
	if perBlock {
		t.n = make([]int, B)
	} else {
		t.n = make([]int, 1)
	}
	t.mean = make([]float64, B)
	t.co = make([]float64, B*B)
	t.dx = make([]float64, B)
}

func (t *traceStats) reset() {
	for i := range t.n {
		t.n[i] = 0
	}
	for i := range t.mean {
		t.mean[i] = 0
	}
	for i := range t.co {
		t.co[i] = 0
	}
}

// add takes one probe's samples s; for block probes only s[block] is a sample.
func (t *traceStats) add(s []float64, block int) {
	B := len(t.mean)
	if t.perBlock {
		t.n[block]++
		k := float64(t.n[block])
		dx := s[block] - t.mean[block]
		t.mean[block] += dx / k
		t.co[block*B+block] += dx * (s[block] - t.mean[block])
		return
	}
	t.n[0]++
	k := float64(t.n[0])
	for b := range s {
		t.dx[b] = s[b] - t.mean[b]
		t.mean[b] += t.dx[b] / k
	}
	for b := 0; b < B; b++ {
		for c := 0; c < B; c++ {
			t.co[b*B+c] += t.dx[b] * (s[c] - t.mean[c])
		}
	}
}

func (t *traceStats) estimate(lay *model.Layout, e *Estimate) {
	B := len(t.mean)
	e.BlockTraces = append(e.BlockTraces[:0], t.mean...)
	e.Cov = resizeZero(e.Cov, B*B)
	e.PerProbeCov = resizeZero(e.PerProbeCov, B*B)
	e.Trace, e.Probes = 0, 0
	for _, tr := range t.mean {
		e.Trace += tr
	}
	nan := math.NaN()
	if t.perBlock {
		for b := 0; b < B; b++ {
			n := t.n[b]
			e.Probes += n
			if lay.Blocks[b].Len == 0 {
				continue
			}
			v := nan
			if n > 1 {
				v = t.co[b*B+b] / float64(n-1)
			}
			e.PerProbeCov[b*B+b] = v
			e.Cov[b*B+b] = v / float64(n)
		}
		return
	}
	n := t.n[0]
	e.Probes = n
	for i := range t.co {
		v := nan
		if n > 1 {
			v = t.co[i] / float64(n-1)
		}
		e.PerProbeCov[i] = v
		e.Cov[i] = v / float64(n)
	}
}

func resizeZero(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	s = s[:n]
	for i := range s {
		s[i] = 0
	}
	return s
}

// keepCopy returns a copy of d in a buffer taken from free (buffers of d's
// length given back by their owner), or in a new one when free is empty.
func keepCopy(free *[][]float64, d []float64) []float64 {
	var buf []float64
	if k := len(*free); k > 0 {
		buf, *free = (*free)[k-1], (*free)[:k-1]
	} else {
		buf = make([]float64, len(d))
	}
	copy(buf, d)
	return buf
}
