package coordinator

import (
	"errors"
	"fmt"
	"math"

	"ntkbus/model"
	"ntkbus/sampler"
)

// ErrImplausible is a probe result larger than the kernel can make it.
var ErrImplausible = errors.New("implausible")

// Plausibility bounds the size a probe's result can have at a base point,
// from the exact trace of K (the structured diagonal: about a third of a
// probe's cost, once per base point), so that a value no kernel could give
// is refused before it reaches an accumulator, whatever --verify says.
//
// K is positive semidefinite, so ‖K c‖ ≤ λ_max ‖c‖ ≤ Tr K ‖c‖ for a probe's
// cotangent c (g with the rows where R_i = 0 dropped), and a Param probe's
// ‖J_b z‖² ≤ Tr K_bb ‖z‖². The quotient adds its truncation and rounding
// errors; the bound allows four times the kernel's part plus a rounding
// allowance of a thousand units in the last place of R per step size, so an
// honest sampler is never refused (tests check every problem, kind and
// quotient), while a forger can inflate a value by no more than the slack
// between ‖K c‖ and Tr K ‖c‖ (about √n). With a predictor step or ε fixed by
// the user, the truncation error is unknown and the slack is a million.
type Plausibility struct {
	setup    *model.Setup
	settings sampler.Settings
	opt      model.Options

	ev     model.Evaluator
	plan   *sampler.Plan
	points uint64 // Work.PointsID of the evaluator's points
	work   uint64 // Work.ID of the base point
	step   uint32

	r0, diag, traces []float64
	blockNorms       []float64 // ‖R_b‖ at the base point
	trace, rNorm     float64
	thetaNorm        float64
	g, c             []float64
}

// NewPlausibility returns the bound of probes drawn by s on setup's
// residual; its evaluator is made at the first base point.
func NewPlausibility(setup *model.Setup, s sampler.Settings, opt model.Options) *Plausibility {
	return &Plausibility{setup: setup, settings: s, opt: opt}
}

// At makes w the base point of the checks: one forward pass and the
// diagonal of K.
func (p *Plausibility) At(w *Work) error {
	if p.ev != nil && p.work == w.ID && p.work != 0 {
		p.step = w.Step
		return nil
	}
	var err error
	switch {
	case p.ev == nil:
		if p.ev, err = p.setup.NewEvaluator(w.Points, p.opt); err != nil {
			return fmt.Errorf("plausibility bound: %w", err)
		}
		if p.plan, err = sampler.NewPlan(p.settings, p.ev.Layout()); err != nil {
			return fmt.Errorf("plausibility bound: %w", err)
		}
	case p.points != w.PointsID || p.points == 0:
		if err := p.ev.SetPoints(w.Points); err != nil {
			return fmt.Errorf("plausibility bound: %w", err)
		}
		if p.plan, err = sampler.NewPlan(p.settings, p.ev.Layout()); err != nil {
			return fmt.Errorf("plausibility bound: %w", err)
		}
	}
	p.points = w.PointsID
	lay := p.ev.Layout()
	p.r0 = grow(p.r0, lay.N)
	p.diag = grow(p.diag, lay.N)
	p.g, p.c = grow(p.g, lay.N), grow(p.c, lay.N)
	p.traces = grow(p.traces, len(lay.Blocks))
	p.blockNorms = grow(p.blockNorms, len(lay.Blocks))
	p.ev.Forward(w.Theta, p.r0)
	p.ev.Diagonal(p.diag)
	lay.BlockSums(p.diag, p.traces)
	p.trace = 0
	for _, t := range p.traces {
		p.trace += t
	}
	for b, s := range lay.Blocks {
		p.blockNorms[b] = l2(p.r0[s.Off : s.Off+s.Len])
	}
	p.rNorm = l2(p.r0)
	p.thetaNorm = l2(w.Theta)
	if !finiteAll(p.trace, p.rNorm, p.thetaNorm) {
		return fmt.Errorf("plausibility bound: Tr K = %v, ‖R‖ = %v at step %d", p.trace, p.rNorm, w.Step)
	}
	p.work, p.step = w.ID, w.Step
	return nil
}

// Trace is Tr K at the base point.
func (p *Plausibility) Trace() float64 { return p.trace }

// Check refuses probe j's result d when it is larger than K can make it
// (an error wrapping ErrImplausible that says by how much).
func (p *Plausibility) Check(j int, d []float64) error {
	if p.ev == nil {
		return errors.New("plausibility bound: no base point")
	}
	if len(d) != p.plan.Width() {
		return fmt.Errorf("probe %d: %d values, want %d: %w", j, len(d), p.plan.Width(), ErrImplausible)
	}
	if p.plan.Kind == sampler.Param {
		return p.checkParam(j, d)
	}
	p.plan.Vector(p.step, uint32(j), p.g)
	sampler.Cotangent(p.g, p.r0, p.c)
	cn := l2(p.c)
	slack := 4.0
	var perStep float64 // 1/Δt, bounded
	switch {
	case p.plan.Quotient == sampler.Exact:
	case p.plan.Dt > 0:
		slack, perStep = 1e6, 1/p.plan.Dt
	default:
		// Δt = h(1+‖θ‖)/‖Jᵀc‖ and ‖Jᵀc‖ ≤ √(Tr K)·‖c‖.
		perStep = math.Sqrt(p.trace) * cn / (stepScale(p.plan.Quotient) * (1 + p.thetaNorm))
	}
	bound := slack*p.trace*cn + roundingUlps*epsMach*(p.rNorm+1)*perStep
	if got := l2(d); !(got <= bound) {
		return fmt.Errorf("probe %d: ‖d‖ = %.3g, but Tr K·‖c‖ = %.3g at step %d (bound %.3g): %w", j, got, p.trace*cn, p.step, bound, ErrImplausible)
	}
	return nil
}

// checkParam bounds Theorem 5's d_b = ‖R_b(θ+εz) − R_b(θ)‖²/ε²: at least 0,
// and √d_b at most ‖J_b z‖ ≤ √(Tr K_bb)·‖z‖ (slack aside) plus the rounding
// of R_b over ε, with ‖z‖² for z ~ N(0, I_p) below p + 2√(50p) + 100 but
// with probability e⁻⁵⁰ (Laurent and Massart).
func (p *Plausibility) checkParam(j int, d []float64) error {
	lay := p.ev.Layout()
	P := float64(lay.P)
	zmax := math.Sqrt(P + 2*math.Sqrt(50*P) + 100)
	eps := p.plan.Epsilon
	slack := 2.0 // on the square root: 4 on d_b
	if eps > 0 {
		slack = 1e3
	} else {
		eps = sampler.AutoEpsilon(p.plan.Quotient, p.thetaNorm, lay.P)
	}
	for b, v := range d {
		root := slack*math.Sqrt(p.traces[b])*zmax + roundingUlps*epsMach*(p.blockNorms[b]+1)/eps
		if p.plan.Quotient == sampler.Exact {
			root = slack*math.Sqrt(p.traces[b])*zmax + roundingUlps*epsMach*(math.Sqrt(p.traces[b])*zmax+1)
		}
		if !(v >= 0 && v <= root*root) {
			return fmt.Errorf("probe %d: block %s is %.3g, but a sum of squares within 0 and %.3g (Tr K_bb = %.3g) at step %d: %w",
				j, lay.Blocks[b].Name, v, root*root, p.traces[b], p.step, ErrImplausible)
		}
	}
	return nil
}

// roundingUlps is the rounding a result may carry, in units in the last
// place of R, per predictor step.
const roundingUlps = 1e3

const epsMach = 0x1p-52

// stepScale is h in Δt = h(1+‖θ‖)/‖v‖ (sampler.AutoDt).
func stepScale(q sampler.Quotient) float64 {
	return sampler.AutoDt(q, 0, 1)
}

func l2(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func grow(v []float64, n int) []float64 {
	if cap(v) < n {
		return make([]float64, n)
	}
	return v[:n]
}
