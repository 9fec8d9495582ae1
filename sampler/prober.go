package sampler

import (
	"math"

	"ntkbus/model"
	"ntkbus/model/rng"
)

// Prober computes probes at one base point θ_t with an evaluator it owns.
// It is Algorithm 2 of the paper as a deterministic function of (θ_t, the
// collocation points, t, j, Settings); the struct only holds reusable work
// memory and the base point's R(θ_t), computed once per step and shared by
// all probes of the step. After warm-up a probe allocates nothing.
type Prober struct {
	ev   model.Evaluator
	plan *Plan

	step      uint32
	theta     []float64
	thetaNorm float64
	r0        []float64 // R(θ_t)

	g, c        []float64 // probe vector, and its masked form (the cotangent)
	jtg, th     []float64
	r1, r2, e   []float64
	z           []float64 // parameter-space probe
	cots        []model.Cotangent
	fusedJtg    [][]float64
	fusedG      [][]float64
	infos       []Info
	haveBase    bool
	maskedCount int
}

// Info describes one computed probe.
type Info struct {
	Dt     float64 // the predictor step (or ε for Param probes)
	Masked int     // residual rows with R_i = 0, which the probe leaves out
}

// NewProber returns a prober of ev's residual drawing probes by plan.
func NewProber(ev model.Evaluator, plan *Plan) *Prober {
	lay := ev.Layout()
	n, p := lay.N, lay.P
	return &Prober{
		ev: ev, plan: plan,
		theta: make([]float64, p), r0: make([]float64, n),
		g: make([]float64, n), c: make([]float64, n),
		jtg: make([]float64, p), th: make([]float64, p),
		r1: make([]float64, n), r2: make([]float64, n), e: make([]float64, n),
	}
}

// Plan is the prober's plan.
func (p *Prober) Plan() *Plan { return p.plan }

// Evaluator is the prober's evaluator.
func (p *Prober) Evaluator() model.Evaluator { return p.ev }

// SetBase makes θ the base point of step t: one forward pass, whose result
// R(θ) it returns (owned by the prober; valid until the next SetBase).
func (p *Prober) SetBase(theta []float64, step uint32) []float64 {
	copy(p.theta, theta)
	p.step = step
	p.ev.Forward(theta, p.r0)
	p.thetaNorm = norm(theta)
	p.maskedCount = 0
	for _, v := range p.r0 {
		if v == 0 {
			p.maskedCount++
		}
	}
	p.haveBase = true
	return p.r0
}

// SetStep relabels the base point as step t without another forward pass:
// the step only keys the probe vectors.
func (p *Prober) SetStep(step uint32) { p.step = step }

// Step is the step the probes are drawn for.
func (p *Prober) Step() uint32 { return p.step }

// Residual is R at the base point.
func (p *Prober) Residual() []float64 { return p.r0 }

// Cotangent sets c to the predictor's cotangent for probe vector g:
// the predictor step is θ̂ = θ − Δt Jᵀ Λ_pred R with Λ_pred = diag(−g) diag(R)^†,
// and Λ_pred R = −g ⊙ [R ≠ 0] (the pseudo-inverse has 0 where R_i = 0), so
// θ̂ = θ + Δt Jᵀc with c = g ⊙ [R ≠ 0]. Rows with R_i = 0 drop out of the
// probe; no division is performed. It is also the vector the estimator pairs
// with d.
func Cotangent(g, r, c []float64) {
	for i, v := range g {
		if r[i] == 0 {
			c[i] = 0
		} else {
			c[i] = v
		}
	}
}

// Probe computes probe j of the base step into d (length Plan.Width()).
func (p *Prober) Probe(j uint32, d []float64) Info {
	if !p.haveBase {
		panic("sampler: Probe before SetBase")
	}
	if p.plan.Kind == Param {
		return p.paramProbe(j, d)
	}
	p.plan.Vector(p.step, j, p.g)
	Cotangent(p.g, p.r0, p.c)
	if len(p.cots) != 1 {
		p.cots = make([]model.Cotangent, 1)
	}
	p.cots[0] = model.Cotangent{V: p.c, Dst: p.jtg}
	p.ev.Backward(p.cots)
	return p.finish(p.jtg, d)
}

// ProbesWithGradient computes probes js into ds and, in the same backward
// pass, the per-block gradients Jᵀ(R restricted to block b) into perBlock:
// what one training step of Algorithm 3 needs, with the forward pass shared.
// The probes are bit-identical to those of Probe.
func (p *Prober) ProbesWithGradient(js []uint32, ds [][]float64, perBlock [][]float64) []Info {
	if !p.haveBase {
		panic("sampler: ProbesWithGradient before SetBase")
	}
	lay := p.ev.Layout()
	p.infos = p.infos[:0]
	p.cots = p.cots[:0]
	if p.plan.Kind == Param {
		p.cots = append(p.cots, model.Cotangent{V: p.r0, PerBlock: perBlock})
		p.ev.Backward(p.cots)
		for k, j := range js {
			p.infos = append(p.infos, p.paramProbe(j, ds[k]))
		}
		return p.infos
	}
	for len(p.fusedJtg) < len(js) {
		p.fusedJtg = append(p.fusedJtg, make([]float64, lay.P))
		p.fusedG = append(p.fusedG, make([]float64, lay.N))
	}
	// The probe vectors must all exist before the one backward pass.
	for k, j := range js {
		p.plan.Vector(p.step, j, p.g)
		Cotangent(p.g, p.r0, p.fusedG[k])
		p.cots = append(p.cots, model.Cotangent{V: p.fusedG[k], Dst: p.fusedJtg[k]})
	}
	p.cots = append(p.cots, model.Cotangent{V: p.r0, PerBlock: perBlock})
	p.ev.Backward(p.cots)
	for k := range js {
		p.infos = append(p.infos, p.finish(p.fusedJtg[k], ds[k]))
	}
	return p.infos
}

// finish turns v = Jᵀc into the difference quotient d ≈ K c.
func (p *Prober) finish(v, d []float64) Info {
	info := Info{Masked: p.maskedCount}
	switch p.plan.Quotient {
	case Exact:
		p.ev.JVP(v, d)
		return info
	case Forward:
		dt := p.dt(v)
		info.Dt = dt
		axpy(p.th, p.theta, dt, v)
		p.ev.Residual(p.th, p.r1)
		inv := 1 / dt
		for i := range d[:len(p.r0)] {
			d[i] = (p.r1[i] - p.r0[i]) * inv
		}
	case Central:
		dt := p.dt(v)
		info.Dt = dt
		axpy(p.th, p.theta, dt, v)
		p.ev.Residual(p.th, p.r1)
		axpy(p.th, p.theta, -dt, v)
		p.ev.Residual(p.th, p.r2)
		inv := 1 / (2 * dt)
		for i := range d[:len(p.r0)] {
			d[i] = (p.r1[i] - p.r2[i]) * inv
		}
	}
	return info
}

func (p *Prober) dt(v []float64) float64 {
	if p.plan.Dt > 0 {
		return p.plan.Dt
	}
	return AutoDt(p.plan.Quotient, p.thetaNorm, norm(v))
}

// paramProbe is Theorem 5: d_b = ‖R_b(θ+g) − R_b(θ)‖²/ε² with g = εz,
// z ~ N(0, I_p) from the stream (seed, DomainParam, t, j).
func (p *Prober) paramProbe(j uint32, d []float64) Info {
	lay := p.ev.Layout()
	if len(p.z) != lay.P {
		p.z = make([]float64, lay.P)
	}
	s := rng.New(p.plan.Seed, rng.DomainParam, p.step, j)
	s.FillNormal(p.z)
	eps := p.plan.Epsilon
	if eps == 0 {
		eps = AutoEpsilon(p.plan.Quotient, p.thetaNorm, lay.P)
	}
	switch p.plan.Quotient {
	case Exact:
		p.ev.JVP(p.z, p.e) // J z = J g / ε
		for b, sp := range lay.Blocks {
			d[b] = sumSquares(p.e[sp.Off : sp.Off+sp.Len])
		}
		return Info{Dt: eps}
	case Forward:
		axpy(p.th, p.theta, eps, p.z)
		p.ev.Residual(p.th, p.r1)
		for i := range p.e {
			p.e[i] = p.r1[i] - p.r0[i]
		}
	case Central:
		axpy(p.th, p.theta, eps, p.z)
		p.ev.Residual(p.th, p.r1)
		axpy(p.th, p.theta, -eps, p.z)
		p.ev.Residual(p.th, p.r2)
		for i := range p.e {
			p.e[i] = (p.r1[i] - p.r2[i]) / 2
		}
	}
	inv := 1 / (eps * eps)
	for b, sp := range lay.Blocks {
		d[b] = sumSquares(p.e[sp.Off:sp.Off+sp.Len]) * inv
	}
	return Info{Dt: eps}
}

// axpy sets dst = x + a·y.
func axpy(dst, x []float64, a float64, y []float64) {
	for i := range dst {
		dst[i] = x[i] + a*y[i]
	}
}

func norm(v []float64) float64 { return math.Sqrt(sumSquares(v)) }

func sumSquares(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return s
}
