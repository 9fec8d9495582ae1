package optim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/lapack64"

	"ntkbus/coordinator/sketch"
	"ntkbus/model"
)

// The natural-gradient optimizers: for the objective Φ = ½ Rᵀ W R with
// R̃ = W^{1/2} R and K̃ = W^{1/2} K W^{1/2}, the damped Gauss–Newton step in
// function space is
//
//	(K̃ + μI) z = R̃,   θ ← θ − η Jᵀ W^{1/2} z,
//
// which by the push-through identity equals −η (J̃ᵀJ̃ + μI)⁻¹ J̃ᵀ R̃: the
// Levenberg–Marquardt step, from an n×n solve and one backward pass, never
// a p×p Gramian when p > n. "ngd" solves with the exact K (dense, by
// Cholesky, or by conjugate gradients on the products J(Jᵀv)); when p ≤ n
// its dense route solves the same step as damped least squares on J̃,
// through J̃'s SVD.
// "sngd" solves with the Nyström approximation of K from the step's probe
// columns.
const (
	SolverCholesky = "cholesky" // ngd: dense exact K
	SolverCG       = "cg"       // ngd: conjugate gradients on exact products
	SolverWoodbury = "woodbury" // sngd: the sketch's eigendecomposition
)

// NaturalConfig are the settings of the ngd and sngd optimizers. The step
// length η is at most the schedule's rate (1 by default for these).
type NaturalConfig struct {
	// Damping is μ; with DampingAuto it is the first μ (0: 10⁻⁶·max K̃_ii).
	Damping     float64 `json:"damping"`
	DampingAuto bool    `json:"damping_auto"`
	// LineSearch backtracks η by halves until the Armijo condition holds
	// (at most MaxHalvings times), from the schedule's rate or twice the
	// last step's η, whichever is less.
	LineSearch bool `json:"line_search"`
	// Solver is SolverCholesky or SolverCG for ngd, SolverWoodbury for sngd.
	Solver    string  `json:"solver"`
	CGTol     float64 `json:"cg_tol"`      // relative residual at which CG stops
	CGMaxIter int     `json:"cg_max_iter"` // products at most per solve
}

// Natural-gradient constants.
const (
	// ArmijoC is the sufficient-decrease constant c of the line search:
	// a step is taken when Φ(θ − ηv) ≤ Φ(θ) − c·η·R̃ᵀK̃z.
	ArmijoC = 1e-4
	// MaxHalvings bounds the line search: η down to 2⁻²⁰ of its start.
	MaxHalvings = 20
	// RatioPoor and RatioGood are the ratios of actual to predicted
	// decrease below which automatic damping grows μ and above which it
	// shrinks it (natural.adapt).
	RatioPoor = 0.25
	RatioGood = 0.75
	// ratioStall is the ratio below which μ grows at any η: the model
	// is wrong even where the line search let the step through.
	ratioStall = 0.1
	// sketchLost is the step length at or below which sngd's automatic
	// damping takes the sketch's direction for wrong, whatever ρ (a short
	// enough step always follows the model): sngd with 64 columns on
	// poisson2d otherwise sat at η ≈ 2⁻¹⁰ and ended at 2 (relative L²).
	// Not for ngd's exact K, whose first steps on poisson2d pass at such
	// η and which the clause cost two orders of magnitude.
	sketchLost = 0x1p-8
	// dampingStart is τ in μ₀ = τ·max K̃_ii, Madsen, Nielsen & Tingleff's
	// choice for a start believed good.
	dampingStart = 1e-6
	// dampingFloor is μ's lower bound relative to Tr K̃ in function space
	// (n×n solves). K's rounding, about ε_mach·‖K‖ per entry, is amplified
	// by 1/μ in K's numerical null space (rank p < n, or the fast-decaying
	// spectrum of a wide network): on a linear residual with n > p, solved
	// in function space, the step's relative error was 4·10⁻² at
	// μ = ε_mach·Tr K, 3·10⁻³ at 10⁻¹⁴·Tr K and 5·10⁻⁷ at 10⁻¹⁰·Tr K.
	dampingFloor = 1e-10
	// roundingFloor is the bound for Woodbury on a sketch, exact on K̂'s
	// range and 1/μ on the rest.
	roundingFloor = 0x1p-52
	// svdFloor is the bound in parameter space (p ≤ n), where the step is
	// solved from J̃'s SVD and never squares its condition number: μ may
	// go down to ε²·Tr K̃, with the singular values below max(n, p)·ε·σ₁
	// dropped as numpy's and LAPACK's least squares do. The normal
	// equations J̃ᵀJ̃ + μI used before needed μ ≥ ε·Tr K̃, and there the
	// pure-Go and OpenBLAS builds' rounding steered poisson2d's path apart
	// (4.5·10⁻⁷ against 9.1·10⁻⁸ after 300 steps).
	svdFloor = 0x1p-104
	// dampingCeil is μ's upper bound relative to Tr K̃: there the step is
	// gradient descent with rate 1/μ and growing μ further only stalls.
	dampingCeil = 1e12
	// cholRetries bounds the tenfold increases of μ after a failed Cholesky.
	cholRetries = 30
)

// MaxCGIter bounds --cg-max-iter: CG on n residuals converges in at most n
// products in exact arithmetic, and a config file may not ask for more
// than a million.
const MaxCGIter = 1_000_000

// MaxNu bounds ν, which doubles with every rejection in a row, so that it
// stays finite (and a checkpoint with it readable) however long a run
// keeps rejecting.
const MaxNu = 0x1p60

func (c *NaturalConfig) validate(optimizer string) error {
	if c.Damping < 0 || math.IsNaN(c.Damping) || math.IsInf(c.Damping, 0) {
		return fmt.Errorf("damping μ = %v: want a positive number, or auto", c.Damping)
	}
	if c.Damping == 0 && !c.DampingAuto {
		return errors.New("damping μ = 0: the step needs μ > 0 (K is singular when n > p); give a positive μ or auto")
	}
	if (c.Solver == SolverWoodbury) != (optimizer == "sngd") {
		return fmt.Errorf("solver %q with %s: ngd solves by cholesky or cg, sngd by woodbury", c.Solver, optimizer)
	}
	switch c.Solver {
	case SolverCholesky, SolverWoodbury:
	case SolverCG:
		if !(c.CGTol > 0 && c.CGTol < 1) {
			return fmt.Errorf("CG tolerance %v: want 0 < tol < 1", c.CGTol)
		}
		if c.CGMaxIter < 1 || c.CGMaxIter > MaxCGIter {
			return fmt.Errorf("CG iterations %d: want 1 to %d", c.CGMaxIter, MaxCGIter)
		}
	default:
		return fmt.Errorf("solver %q: want cholesky, cg or woodbury", c.Solver)
	}
	return nil
}

// natural is the ngd and sngd method: its work memory and damping state.
type natural struct {
	cfg       NaturalConfig
	sched     Schedule
	sketch    bool // sngd
	columns   int  // probe columns per step (sngd's sketch, CG's preconditioner)
	maxMemory int64
	mu, nu    float64 // the damping state (Nielsen's ν)
	rec       *Record

	sw, rt, z, sz, kz []float64 // √w per row, R̃, z, √w⊙z, K̃z
	v, thetaTry, rTry []float64
	diag              []float64
	k                 []float64 // exact K (cholesky), kept while θ and the points stay
	kValid            bool
	a                 []float64 // K̃ + μI, then its Cholesky factor
	cg                CG
	jv                []float64
	jac, jt, ej, g    []float64 // p ≤ n: J, J̃ = W^{1/2}J, a unit vector, J̃ᵀR̃
	gres              []float64 // p ≤ n: the residual of the damped normal equations
	sv, u, vt, c, f   []float64 // p ≤ n: J̃ = U diag(sv) Vᵀ, c = UᵀR̃, the filter f(σ)
	work              []float64
	lastEta           float64 // η of the last accepted step (0: none yet)
}

func newNatural(cfg Config) *natural {
	maxMemory := cfg.MaxMemory
	if maxMemory <= 0 {
		maxMemory = model.DefaultMaxMemory
	}
	return &natural{cfg: cfg.Natural, sched: cfg.Schedule, sketch: cfg.Name == "sngd", columns: cfg.Columns,
		maxMemory: maxMemory, mu: cfg.Natural.Damping, nu: 2}
}

func (nt *natural) Needs() Needs { return Needs{Columns: nt.columns} }

func (nt *natural) Columns() []string { return NaturalColumns }

func (nt *natural) State() *State { return &State{Mu: nt.mu, Nu: nt.nu, Eta: nt.lastEta} }

func (nt *natural) SetState(st *State) error {
	switch {
	case st == nil:
		return errors.New("no natural-gradient damping state")
	case st.M != nil || st.V != nil:
		return errors.New("Adam moments for a natural gradient")
	case st.History != nil:
		return errors.New("L-BFGS iterates for a natural gradient")
	case math.IsNaN(st.Mu) || math.IsInf(st.Mu, 0) || st.Mu < 0 || !(st.Nu >= 0 && st.Nu <= MaxNu):
		return fmt.Errorf("natural-gradient damping μ = %v, ν = %v: μ finite and non-negative, 0 ≤ ν ≤ 2⁶⁰", st.Mu, st.Nu)
	case !(st.Eta >= 0 && st.Eta <= nt.sched.LR):
		return fmt.Errorf("natural-gradient step length η = %v: want 0 ≤ η ≤ %v", st.Eta, nt.sched.LR)
	}
	nt.mu, nt.nu, nt.lastEta = st.Mu, st.Nu, st.Eta
	return nil
}

func (nt *natural) grow(n, p int) {
	if len(nt.sw) != n {
		nt.sw, nt.rt, nt.z, nt.sz, nt.kz = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		nt.rTry, nt.diag, nt.jv = make([]float64, n), make([]float64, n), make([]float64, n)
		nt.k, nt.a, nt.kValid = nil, nil, false
	}
	if len(nt.v) != p {
		nt.v, nt.thetaTry = make([]float64, p), make([]float64, p)
	}
}

// Step takes the natural-gradient step at p's base point.
func (nt *natural) Step(ctx context.Context, p *Problem, rec *Record) error {
	ev := p.Eval
	lay := ev.Layout()
	n := lay.N
	nt.grow(n, lay.P)
	*rec = Record{}
	nt.rec = rec
	if p.NewPoints {
		nt.kValid = false
	}
	for b, sp := range lay.Blocks {
		s := math.Sqrt(p.Weights[b])
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			nt.sw[i] = s
			nt.rt[i] = s * p.Residual[i]
		}
	}

	// The diagonal of K̃ sets μ's start and bounds.
	dense := nt.cfg.Solver == SolverCholesky
	t0 := time.Now()
	if dense {
		if err := nt.exactKernel(ev); err != nil {
			return fmt.Errorf("step %d: %w", p.Step, err)
		}
	} else {
		ev.Diagonal(nt.diag)
	}
	kernelSeconds := time.Since(t0).Seconds()
	var trace, maxDiag float64
	for i, d := range nt.diag {
		d *= nt.sw[i] * nt.sw[i]
		trace += d
		maxDiag = math.Max(maxDiag, d)
	}
	if nt.mu == 0 {
		nt.mu = dampingStart * maxDiag
	}
	nt.mu = nt.clamp(nt.mu, trace)

	t1 := time.Now()
	var err error
	switch {
	case nt.sketch:
		err = nt.solveSketch(ctx, p)
	case nt.cfg.Solver == SolverCG:
		err = nt.solveCG(ctx, p)
	case nt.jac != nil:
		err = nt.solveSVD(trace)
	default:
		err = nt.solveCholesky(trace)
	}
	if err != nil {
		return fmt.Errorf("step %d: %w", p.Step, err)
	}
	rec.Mu = nt.mu

	if !dense || nt.jac == nil {
		// v = Jᵀ W^{1/2} z, one backward pass; for the inexact solvers
		// K̃z = W^{1/2} J v exactly, one forward-mode pass.
		for i := range nt.sz {
			nt.sz[i] = nt.sw[i] * nt.z[i]
		}
		ev.Backward([]model.Cotangent{{V: nt.sz, Dst: nt.v}})
		if !dense {
			ev.JVP(nt.v, nt.jv)
			for i := range nt.kz {
				nt.kz[i] = nt.sw[i] * nt.jv[i]
			}
		}
		rec.SolveResidual = nt.residual()
	}
	slope := floats.Dot(nt.rt, nt.kz) // −∇Φ·(−v): the decrease per unit η
	curv := floats.Dot(nt.kz, nt.kz)  // ‖J̃ v‖²
	t2 := time.Now()
	nt.lineSearch(p, slope, curv)
	t3 := time.Now()
	nt.adapt(trace)
	rec.KernelSeconds, rec.SolveSeconds, rec.SearchSeconds = kernelSeconds, t2.Sub(t1).Seconds()-rec.ColumnSeconds, t3.Sub(t2).Seconds()
	if !rec.Rejected {
		copy(p.Theta, nt.thetaTry)
		nt.kValid = false
		nt.lastEta = rec.Eta
	}
	rec.LR = nt.sched.At(p.Step)
	return nil
}

// exactKernel computes at the base point, unless still valid (a rejected
// step leaves θ and, without resampling, the points), the exact K — or,
// when p ≤ n, the Jacobian J, from which the step is solved in parameter
// space — and sets the diagonal of K.
func (nt *natural) exactKernel(ev model.Evaluator) error {
	lay := ev.Layout()
	n, p := lay.N, lay.P
	if nt.kValid {
		return nil
	}
	if p <= n {
		if need := 8 * (3*int64(n)*int64(p) + int64(p)*int64(p)); need > nt.maxMemory {
			return fmt.Errorf("the %d×%d Jacobian needs %.1f GiB, over the memory limit of %.1f GiB: train with --solver cg, or raise --max-memory", n, p, float64(need)/(1<<30), float64(nt.maxMemory)/(1<<30))
		}
		nt.jacobian(ev)
		nt.kValid = true
		return nil
	}
	if nt.k == nil {
		if need := 16 * int64(n) * int64(n); need > nt.maxMemory {
			return fmt.Errorf("the dense %d×%d K and its Cholesky factor need %.1f GiB, over the memory limit of %.1f GiB: train with --solver cg, which needs no dense K, or raise --max-memory", n, n, float64(need)/(1<<30), float64(nt.maxMemory)/(1<<30))
		}
		nt.k, nt.a = make([]float64, n*n), make([]float64, n*n)
	}
	if err := ev.NTK(nt.k); err != nil {
		return fmt.Errorf("%w (or train with --solver cg, which needs no dense K)", err)
	}
	for i := 0; i < n; i++ {
		nt.diag[i] = nt.k[i*n+i]
	}
	nt.kValid = true
	return nil
}

// jacobian forms J (n×p) from its p columns J e_j, each one exact
// forward-mode product, and K's diagonal from its rows. For p ≤ n (a small
// network on many points) this is far cheaper than the structured NTK,
// whose cost grows with n² and the residual's derivative streams.
func (nt *natural) jacobian(ev model.Evaluator) {
	lay := ev.Layout()
	n, p := lay.N, lay.P
	if len(nt.jac) != n*p {
		nt.jac, nt.jt = make([]float64, n*p), make([]float64, n*p)
		nt.ej, nt.g, nt.gres = make([]float64, p), make([]float64, p), make([]float64, p)
	}
	col := nt.jv
	for j := 0; j < p; j++ {
		nt.ej[j] = 1
		ev.JVP(nt.ej, col)
		nt.ej[j] = 0
		for i, v := range col {
			nt.jac[i*p+j] = v
		}
	}
	for i := 0; i < n; i++ {
		row := nt.jac[i*p : (i+1)*p]
		nt.diag[i] = floats.Dot(row, row)
	}
}

// factor solves a x = b for the dim×dim matrix a that fill(μ) writes
// (upper triangle, μ on the diagonal), by Cholesky, raising μ tenfold while
// the factorization fails (not positive definite in floating point).
func (nt *natural) factor(trace float64, name string, a []float64, dim int, x, b []float64, fill func(mu float64)) error {
	for try := 0; ; try++ {
		mu := nt.mu
		fill(mu)
		tri, ok := lapack64.Potrf(blas64.Symmetric{N: dim, Stride: dim, Data: a, Uplo: blas.Upper})
		if ok {
			copy(x, b)
			lapack64.Potrs(tri, blas64.General{Rows: dim, Cols: 1, Stride: 1, Data: x})
			return nil
		}
		if try == cholRetries {
			return fmt.Errorf("Cholesky of %s failed up to μ = %.3g", name, mu)
		}
		nt.mu = nt.clamp(10*mu, trace)
	}
}

// solveCholesky solves (K̃ + μI)z = R̃ with the dense exact K, raising μ
// tenfold while the factorization fails (K̃ + μI not positive definite in
// floating point), and sets K̃z.
func (nt *natural) solveCholesky(trace float64) error {
	n := len(nt.z)
	err := nt.factor(trace, "K̃ + μI", nt.a, n, nt.z, nt.rt, func(mu float64) {
		for i := 0; i < n; i++ {
			row, arow := nt.k[i*n:(i+1)*n], nt.a[i*n:(i+1)*n]
			si := nt.sw[i]
			for j := i; j < n; j++ {
				arow[j] = si * row[j] * nt.sw[j]
			}
			arow[i] += mu
		}
	})
	if err != nil {
		return err
	}
	// K̃z = W^{1/2} K W^{1/2} z.
	for i := range nt.sz {
		nt.sz[i] = nt.sw[i] * nt.z[i]
	}
	blas64.Implementation().Dgemv(blas.NoTrans, n, n, 1, nt.k, n, nt.sz, 1, 0, nt.kz, 1)
	for i := range nt.kz {
		nt.kz[i] *= nt.sw[i]
	}
	return nil
}

// applyKernel sets dst = K̃ v = W^{1/2} J Jᵀ W^{1/2} v at the base point:
// one backward pass and one forward-mode pass.
func (nt *natural) applyKernel(ev model.Evaluator, dst, v []float64) {
	for i := range nt.sz {
		nt.sz[i] = nt.sw[i] * v[i]
	}
	ev.Backward([]model.Cotangent{{V: nt.sz, Dst: nt.v}})
	ev.JVP(nt.v, nt.jv)
	for i := range dst {
		dst[i] = nt.sw[i] * nt.jv[i]
	}
}

// solveCG solves (K̃ + μI)z = R̃ by conjugate gradients on the exact
// products, preconditioned by the Nyström sketch of the step's probe
// columns when the run draws any.
func (nt *natural) solveCG(ctx context.Context, p *Problem) error {
	precond, err := nt.preconditioner(ctx, p)
	if err != nil {
		return err
	}
	products := 0
	res := nt.cg.Solve(func(dst, v []float64) {
		nt.applyKernel(p.Eval, dst, v)
		if products++; p.Progress != nil {
			p.Progress("cg products", products, nt.cfg.CGMaxIter)
		}
	}, precond, nt.mu, nt.rt, nt.z, nt.cfg.CGTol, nt.cfg.CGMaxIter)
	nt.rec.CGIterations = res.Iterations
	return nil
}

// nystrom returns the Nyström approximation of K̃ from the step's probe
// columns: the test matrix W^{-1/2}Ω and the columns W^{1/2}Y, since
// K̃ W^{-1/2}Ω = W^{1/2} K Ω.
func (nt *natural) nystrom(ctx context.Context, p *Problem) (*sketch.Nystrom, error) {
	start := time.Now()
	omega, y, err := p.Columns(ctx)
	if err != nil {
		return nil, err
	}
	nt.rec.ColumnSeconds = time.Since(start).Seconds()
	n, s := len(nt.sw), nt.columns
	for i := 0; i < n; i++ {
		for j := 0; j < s; j++ {
			omega[i*s+j] /= nt.sw[i]
			y[i*s+j] *= nt.sw[i]
		}
	}
	ny, err := sketch.NewNystrom(omega, y, n, s)
	if err != nil {
		return nil, fmt.Errorf("Nyström sketch of K̃ from %d columns: %w", s, err)
	}
	return ny, nil
}

// solveSketch solves (K̂ + μI)z = R̃ by Woodbury through the sketch's
// eigendecomposition: O(nS) per solve after the O(nS²) sketch.
func (nt *natural) solveSketch(ctx context.Context, p *Problem) error {
	ny, err := nt.nystrom(ctx, p)
	if err != nil {
		return err
	}
	ny.SolveShifted(nt.mu, nt.z, nt.rt)
	return nil
}

// preconditioner returns the randomized Nyström preconditioner of K̃ + μI
// (Frangella, Tropp & Udell 2023) from the step's columns, or nil when the
// run draws none.
func (nt *natural) preconditioner(ctx context.Context, p *Problem) (func(dst, v []float64), error) {
	if nt.columns == 0 {
		return nil, nil
	}
	ny, err := nt.nystrom(ctx, p)
	if err != nil {
		return nil, err
	}
	mu := nt.mu
	return func(dst, v []float64) { ny.Precondition(mu, dst, v) }, nil
}

// residual is ‖K̃z + μz − R̃‖ / ‖R̃‖.
func (nt *natural) residual() float64 {
	var num, den float64
	for i, k := range nt.kz {
		d := k + nt.mu*nt.z[i] - nt.rt[i]
		num += d * d
		den += nt.rt[i] * nt.rt[i]
	}
	if den == 0 {
		return 0
	}
	return math.Sqrt(num / den)
}

// lineSearch tries θ − ηv from η = the schedule's rate, or twice the last
// accepted η if that is less, halving η while the Armijo condition fails
// (only the schedule's rate without a line search), and leaves the
// accepted θ in thetaTry or marks the step rejected. Starting from the
// last η (and doubling it after every step it passes) spares the
// evaluations a restart from 1 costs when every step needs η ≈ 1/8 —
// 3–12 a step in the wave's first 200 steps before — and still returns to
// η = 1 in a few steps once full steps pass.
func (nt *natural) lineSearch(p *Problem, slope, curv float64) {
	eta := nt.sched.At(p.Step)
	if nt.cfg.LineSearch && nt.lastEta > 0 {
		eta = math.Min(eta, 2*nt.lastEta)
	}
	rec := nt.rec
	if !(slope > 0) || math.IsInf(slope, 0) {
		// Not a descent direction: only an inexact solve can do this.
		rec.Rejected = true
		rec.Eta = 0
		return
	}
	for k := 0; ; k++ {
		for i, th := range p.Theta {
			nt.thetaTry[i] = th - eta*nt.v[i]
		}
		p.Eval.Residual(nt.thetaTry, nt.rTry)
		phi := p.ObjectiveAt(nt.rTry)
		rec.Evals++
		rec.Eta = eta
		rec.Actual = p.Objective - phi
		rec.Predicted = eta*slope - eta*eta*curv/2
		if rec.Actual >= ArmijoC*eta*slope { // false for NaN
			return
		}
		if !nt.cfg.LineSearch || k == MaxHalvings {
			rec.Rejected = true
			return
		}
		eta /= 2
	}
}

// adapt updates μ after the step: Levenberg–Marquardt on the ratio ρ of
// actual to predicted decrease at the η taken, read together with η. The
// line search handles the overshoot of a good direction (a PINN's full
// Gauss–Newton step often overshoots two- to fourfold at any μ, so
// backtracking alone is no reason to damp), and μ answers what it cannot:
//
//   - ρ > ¾: the model is good: μ / 3 (Nielsen's largest cut);
//   - ρ < ¼ at η < ½ (the line search cut the step twice or more and the
//     model is still poor there), or ρ < 0.1 at any η (the step passed
//     Armijo but the model is wrong): μ × 2;
//   - otherwise μ stays: a step that passes at a good η with a fair ρ
//     does not raise it;
//   - a rejected step multiplies μ by ν and doubles ν (Nielsen's rule);
//   - sngd only: a step at η ≤ 2⁻⁸ multiplies μ by 4 (the sketch's
//     direction, not its length, is wrong).
//
// Measured on poisson2d (2→32→1, mean loss, 300–500 steps, pure Go and
// OpenBLAS; docs/natural-gradient.md): the previous rule (μ halved
// whenever ρ ≥ ¼, doubled below) let μ fall to 10⁻²⁸ while η sat at
// 2⁻¹⁰ on the undamped direction (seed 2: 10⁻³ after 300 steps); pure
// LM (η = 1, Nielsen's update) 1–7·10⁻⁵ and Nielsen's update under the
// line search 5·10⁻⁷–2·10⁻⁶, both holding μ where ρ ≈ ½; without the
// ρ < 0.1 clause the run crawled at η = ½, ρ ≈ 0.02 (4·10⁻⁸ after 450
// steps); growing μ whenever η < ½ and ρ < ½ damped too much (1.5·10⁻⁶).
// With a fixed μ, a rejection grows μ the same way for the next step,
// and an accepted step restores it.
func (nt *natural) adapt(trace float64) {
	rec := nt.rec
	rho := rec.Actual / rec.Predicted
	switch {
	case rec.Rejected:
		nt.mu *= nt.nu
		nt.nu = min(2*nt.nu, MaxNu)
	case !nt.cfg.DampingAuto:
		nt.mu, nt.nu = nt.cfg.Damping, 2
	case nt.sketch && rec.Eta <= sketchLost:
		nt.mu *= 4
		nt.nu = 2
	case rho > RatioGood:
		nt.mu /= 3
		nt.nu = 2
	case rho < RatioPoor && rec.Eta < 0.5 || rho < ratioStall:
		nt.mu *= 2
		nt.nu = 2
	default:
		nt.nu = 2
	}
	nt.mu = nt.clamp(nt.mu, trace)
}

// clamp keeps μ within [floor, 10¹²]·Tr K̃, the floor of the step's solve.
func (nt *natural) clamp(mu, trace float64) float64 {
	floor := dampingFloor
	switch {
	case nt.sketch:
		floor = roundingFloor
	case nt.jac != nil && nt.cfg.Solver == SolverCholesky:
		floor = svdFloor
	}
	if trace > 0 {
		mu = math.Min(math.Max(mu, floor*trace), dampingCeil*trace)
	}
	return mu
}

// solveSVD takes the step with J (p ≤ n) in parameter space as a damped
// least-squares problem on J̃ itself, through its thin SVD
// J̃ = U diag(σ) Vᵀ: v = V diag(σ/(σ² + μ)) UᵀR̃, with σ_i below
// max(n, p)·ε·σ₁ taken as zero (LAPACK's and numpy's rcond). Unlike the
// normal equations J̃ᵀJ̃ + μI it does not square J̃'s condition number, so
// μ may go down to ε²·Tr K̃ and the step's rounding does not steer the
// iteration. It sets v, K̃z = J̃v, and the solve's residual in parameter
// space, ‖(J̃ᵀJ̃ + μI)v − J̃ᵀR̃‖ / ‖J̃ᵀR̃‖.
func (nt *natural) solveSVD(trace float64) error {
	n, p := len(nt.z), len(nt.v)
	if len(nt.sv) != p {
		nt.sv, nt.c, nt.f = make([]float64, p), make([]float64, p), make([]float64, p)
		nt.u, nt.vt = make([]float64, n*p), make([]float64, p*p)
	}
	for i := 0; i < n; i++ {
		floats.ScaleTo(nt.jt[i*p:(i+1)*p], nt.sw[i], nt.jac[i*p:(i+1)*p])
	}
	a := blas64.General{Rows: n, Cols: p, Stride: p, Data: nt.jt}
	u := blas64.General{Rows: n, Cols: p, Stride: p, Data: nt.u}
	vt := blas64.General{Rows: p, Cols: p, Stride: p, Data: nt.vt}
	if len(nt.work) == 0 {
		w := []float64{0}
		lapack64.Gesvd(lapack.SVDStore, lapack.SVDAll, a, u, vt, nt.sv, w, -1)
		nt.work = make([]float64, int(w[0]))
	}
	if !lapack64.Gesvd(lapack.SVDStore, lapack.SVDAll, a, u, vt, nt.sv, nt.work, len(nt.work)) {
		return errors.New("the SVD of J̃ did not converge")
	}
	impl := blas64.Implementation()
	impl.Dgemv(blas.Trans, n, p, 1, nt.u, p, nt.rt, 1, 0, nt.c, 1)
	mu := nt.mu
	cut := float64(max(n, p)) * 0x1p-52 * nt.sv[0]
	for i, s := range nt.sv {
		nt.f[i] = 0
		if s > cut {
			nt.f[i] = s / (s*s + mu) * nt.c[i]
		}
	}
	impl.Dgemv(blas.Trans, p, p, 1, nt.vt, p, nt.f, 1, 0, nt.v, 1)
	for i, s := range nt.sv {
		nt.f[i] *= s
	}
	impl.Dgemv(blas.NoTrans, n, p, 1, nt.u, p, nt.f, 1, 0, nt.kz, 1)
	// The residual of the damped normal equations, from J̃ itself.
	for i := 0; i < n; i++ {
		floats.ScaleTo(nt.jt[i*p:(i+1)*p], nt.sw[i], nt.jac[i*p:(i+1)*p])
		nt.sz[i] = nt.kz[i] - nt.rt[i]
	}
	impl.Dgemv(blas.Trans, n, p, 1, nt.jt, p, nt.rt, 1, 0, nt.g, 1)
	impl.Dgemv(blas.Trans, n, p, 1, nt.jt, p, nt.sz, 1, 0, nt.gres, 1)
	floats.AddScaled(nt.gres, mu, nt.v)
	if gn := floats.Norm(nt.g, 2); gn > 0 {
		nt.rec.SolveResidual = floats.Norm(nt.gres, 2) / gn
	}
	return nil
}
