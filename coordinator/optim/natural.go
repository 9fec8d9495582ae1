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
	"gonum.org/v1/gonum/lapack/lapack64"

	"ntkbus/coordinator/sketch"
	"ntkbus/model"
)

// The natural-gradient optimizers: for the objective Φ = ½ Rᵀ Λ R with
// R̃ = Λ^{1/2} R and K̃ = Λ^{1/2} K Λ^{1/2}, the damped Gauss–Newton step in
// function space is
//
//	(K̃ + μI) z = R̃,   θ ← θ − η Jᵀ Λ^{1/2} z,
//
// which by the push-through identity equals −η (J̃ᵀJ̃ + μI)⁻¹ J̃ᵀ R̃: the
// Levenberg–Marquardt step, from an n×n solve and one backward pass, never
// a p×p Gramian when p > n. "ngd" solves with the exact K (dense, by
// Cholesky, or by conjugate gradients on the products J(Jᵀv)); when p ≤ n
// its dense route solves the same step with the p×p Gramian instead.
// "sngd" solves with the Nyström approximation of K from the step's probe
// columns.
const (
	SolverCholesky = "cholesky" // ngd: dense exact K
	SolverCG       = "cg"       // ngd: conjugate gradients on exact products
	SolverWoodbury = "woodbury" // sngd: the sketch's eigendecomposition
)

// NaturalConfig are the settings of the ngd and sngd optimizers. The step
// length η starts at the schedule's rate (1 by default for these).
type NaturalConfig struct {
	// Damping is μ; with DampingAuto it is the first μ (0: 10⁻⁶·max K̃_ii).
	Damping     float64 `json:"damping"`
	DampingAuto bool    `json:"damping_auto"`
	// LineSearch backtracks η by halves from the schedule's rate until the
	// Armijo condition holds (at most MaxHalvings times).
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
	// DeepBacktrack is the number of halvings from which automatic damping
	// grows μ whatever ρ (see natural.adapt). poisson2d's first steps from
	// θ₀ take 7–9 halvings and must not count: with 7 (under Nielsen's
	// rule) one seed in three ended 10³ times worse.
	DeepBacktrack = 11
	// RatioGood is the ratio of actual to predicted decrease from which
	// automatic damping shrinks μ.
	RatioGood = 0.25
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
	// roundingFloor is the bound for the solves without such a null space:
	// the p×p one in parameter space (p ≤ n), where the step at
	// μ = ε_mach·Tr K is good to 2·10⁻¹² (TestNGDLinearResidualReachesLeastSquares),
	// and Woodbury on a sketch, exact on K̂'s range and 1/μ on the rest.
	roundingFloor = 0x1p-52
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
	gres              []float64 // p ≤ n: the Gramian solve's residual
	gram              []float64 // p ≤ n: J̃ᵀJ̃ + μI, then its Cholesky factor
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

func (nt *natural) State() *State { return &State{Mu: nt.mu, Nu: nt.nu} }

func (nt *natural) SetState(st *State) error {
	switch {
	case st == nil:
		return errors.New("no natural-gradient damping state")
	case st.M != nil || st.V != nil:
		return errors.New("Adam moments for a natural gradient")
	case math.IsNaN(st.Mu) || math.IsInf(st.Mu, 0) || st.Mu < 0 || !(st.Nu >= 0 && st.Nu <= MaxNu):
		return fmt.Errorf("natural-gradient damping μ = %v, ν = %v: μ finite and non-negative, 0 ≤ ν ≤ 2⁶⁰", st.Mu, st.Nu)
	}
	nt.mu, nt.nu = st.Mu, st.Nu
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
	if dense {
		if err := nt.exactKernel(ev); err != nil {
			return fmt.Errorf("step %d: %w", p.Step, err)
		}
	} else {
		ev.Diagonal(nt.diag)
	}
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

	var err error
	switch {
	case nt.sketch:
		err = nt.solveSketch(ctx, p)
	case nt.cfg.Solver == SolverCG:
		err = nt.solveCG(ctx, p)
	case nt.jac != nil:
		err = nt.solveGramian(trace)
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
	nt.lineSearch(p, slope, curv)
	nt.adapt(trace)
	if !rec.Rejected {
		copy(p.Theta, nt.thetaTry)
		nt.kValid = false
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
		if need := 8 * (2*int64(n)*int64(p) + int64(p)*int64(p)); need > nt.maxMemory {
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
		nt.ej, nt.g, nt.gres, nt.gram = make([]float64, p), make([]float64, p), make([]float64, p), make([]float64, p*p)
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

// solveGramian takes the step with J (p ≤ n) in parameter space, by the
// push-through identity Jᵀ(K + μI)⁻¹ = (JᵀJ + μI)⁻¹Jᵀ: the p×p Cholesky of
// J̃ᵀJ̃ + μI instead of the n×n one of K̃ + μI, which for n > p is singular
// but for μ and amplifies K's rounding in its n − p null directions. It
// sets v = (J̃ᵀJ̃ + μI)⁻¹J̃ᵀR̃, K̃z = J̃v with z = (R̃ − J̃v)/μ, and the solve's
// residual in parameter space, ‖(J̃ᵀJ̃ + μI)v − J̃ᵀR̃‖ / ‖J̃ᵀR̃‖.
func (nt *natural) solveGramian(trace float64) error {
	n, p := len(nt.z), len(nt.v)
	impl := blas64.Implementation()
	for i := 0; i < n; i++ {
		floats.ScaleTo(nt.jt[i*p:(i+1)*p], nt.sw[i], nt.jac[i*p:(i+1)*p])
	}
	impl.Dgemv(blas.Trans, n, p, 1, nt.jt, p, nt.rt, 1, 0, nt.g, 1)
	err := nt.factor(trace, "J̃ᵀJ̃ + μI", nt.gram, p, nt.v, nt.g, func(mu float64) {
		impl.Dsyrk(blas.Upper, blas.Trans, p, n, 1, nt.jt, p, 0, nt.gram, p)
		for j := 0; j < p; j++ {
			nt.gram[j*p+j] += mu
		}
	})
	if err != nil {
		return err
	}
	mu := nt.mu
	impl.Dgemv(blas.NoTrans, n, p, 1, nt.jt, p, nt.v, 1, 0, nt.kz, 1)
	for i := range nt.z {
		nt.z[i] = (nt.rt[i] - nt.kz[i]) / mu
		nt.sz[i] = nt.kz[i] - nt.rt[i]
	}
	impl.Dgemv(blas.Trans, n, p, 1, nt.jt, p, nt.sz, 1, 0, nt.gres, 1)
	floats.AddScaled(nt.gres, mu, nt.v)
	if gn := floats.Norm(nt.g, 2); gn > 0 {
		nt.rec.SolveResidual = floats.Norm(nt.gres, 2) / gn
	}
	return nil
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

// lineSearch tries θ − ηv from η = the schedule's rate, halving η while
// the Armijo condition fails (only the first η without a line search),
// and leaves the accepted θ in thetaTry or marks the step rejected.
func (nt *natural) lineSearch(p *Problem, slope, curv float64) {
	eta := nt.sched.At(p.Step)
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

// adapt updates μ after the step. Automatic damping is Levenberg–Marquardt
// with the ratio ρ of actual to predicted decrease at the η taken: a step
// with ρ ≥ ¼ halves μ, one with ρ < ¼ doubles it; a step the line search
// shortened by DeepBacktrack halvings or more doubles μ for each of those
// halvings from the DeepBacktrack-th on (the direction, not only its
// length, was wrong: sngd steps at η ≈ 10⁻⁵ with ρ ≈ 1); a rejected step
// multiplies μ by ν and doubles ν. A milder shortening is the line
// search's business: the full Gauss–Newton step of a PINN often overshoots
// two- to fourfold at any μ. With a fixed μ, a rejection grows μ the same
// way for the next step, and an accepted step restores it.
//
// Measured on poisson2d (3 seeds, 300 steps; relative L² errors): this
// rule 5.7–5.9·10⁻⁸ on every seed; Nielsen's smooth rule on ρ (neutral at
// ρ = ½, where PINN steps sit at ρ ≈ 0.3–0.5, so μ stays where it starts)
// 1.7·10⁻⁷–2.3·10⁻⁵; halving μ on every step that was not shortened
// deeply, without ρ, 2.8·10⁻⁷–2.1·10⁻⁶, and sngd with 64 columns then
// stalled at 3·10⁻² (4·10⁻⁵ with this rule).
func (nt *natural) adapt(trace float64) {
	rec := nt.rec
	switch {
	case rec.Rejected:
		nt.mu *= nt.nu
		nt.nu = min(2*nt.nu, MaxNu)
	case !nt.cfg.DampingAuto:
		nt.mu, nt.nu = nt.cfg.Damping, 2
	case rec.Evals-1 >= DeepBacktrack:
		nt.mu *= math.Pow(2, float64(rec.Evals-DeepBacktrack))
		nt.nu = 2
	case rec.Actual < RatioGood*rec.Predicted:
		nt.mu *= 2
		nt.nu = 2
	default:
		nt.mu /= 2
		nt.nu = 2
	}
	nt.mu = nt.clamp(nt.mu, trace)
}

// clamp keeps μ within [floor, 10¹²]·Tr K̃, the floor of the step's solve.
func (nt *natural) clamp(mu, trace float64) float64 {
	floor := dampingFloor
	if nt.sketch || nt.jac != nil && nt.cfg.Solver == SolverCholesky {
		floor = roundingFloor
	}
	if trace > 0 {
		mu = math.Min(math.Max(mu, floor*trace), dampingCeil*trace)
	}
	return mu
}
