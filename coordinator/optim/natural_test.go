package optim

import (
	"context"
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"

	"ntkbus/coordinator/sketch"
	"ntkbus/model"
	"ntkbus/model/rng"
)

// linearEval is R(θ) = Aθ − y with fixed A (n×p): a residual linear in θ.
type linearEval struct {
	lay  model.Layout
	a    *mat.Dense
	y    []float64
	base []float64
}

func (e *linearEval) Layout() *model.Layout              { return &e.lay }
func (e *linearEval) SetPoints(*model.Collocation) error { return nil }

func (e *linearEval) Forward(theta, r []float64) {
	e.base = append(e.base[:0], theta...)
	e.Residual(theta, r)
}

func (e *linearEval) Residual(theta, r []float64) {
	e.JVP(theta, r)
	for i := range r {
		r[i] -= e.y[i]
	}
}

func (e *linearEval) JVP(w, dst []float64) {
	mat.NewVecDense(len(dst), dst).MulVec(e.a, mat.NewVecDense(len(w), w))
}

func (e *linearEval) Backward(cots []model.Cotangent) {
	for _, c := range cots {
		mat.NewVecDense(len(c.Dst), c.Dst).MulVec(e.a.T(), mat.NewVecDense(len(c.V), c.V))
	}
}

func (e *linearEval) Diagonal(dst []float64) {
	for i := range dst {
		dst[i] = mat.Dot(e.a.RowView(i), e.a.RowView(i))
	}
}

func (e *linearEval) NTK(dst []float64) error {
	mat.NewDense(e.lay.N, e.lay.N, dst).Mul(e.a, e.a.T())
	return nil
}

func (e *linearEval) Columns(idx []int, dst []float64) error {
	n := e.lay.N
	for q, j := range idx {
		for i := 0; i < n; i++ {
			dst[q*n+i] = mat.Dot(e.a.RowView(i), e.a.RowView(j))
		}
	}
	return nil
}

// step takes one step of the method cfg names from θ at ev's points with
// weights w, the objective given (Inf: any finite Φ is a decrease).
func step(t *testing.T, ev model.Evaluator, cfg Config, theta, w []float64, objective float64) (Method, *Record) {
	t.Helper()
	m, err := New(cfg, ev.Layout().P)
	if err != nil {
		t.Fatal(err)
	}
	r := make([]float64, ev.Layout().N)
	ev.Forward(theta, r)
	p := &Problem{Theta: theta, Residual: r, Weights: w, Eval: ev}
	if math.IsNaN(objective) {
		objective = p.ObjectiveAt(r)
	}
	p.Objective = objective
	rec := &Record{}
	if err := m.Step(context.Background(), p, rec); err != nil {
		t.Fatal(err)
	}
	return m, rec
}

// features returns the last layer's columns of the Jacobian of a small
// poisson2d network: with the hidden layer fixed, the residual is exactly
// linear in the last layer's weights and bias (the equation is linear).
func features(t *testing.T, points []int) (a *mat.Dense, y []float64) {
	t.Helper()
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 5, 1}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.DrawPoints(2, 0, points, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.NewEvaluator(c, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lay := ev.Layout()
	n, p := lay.N, lay.P
	theta := s.InitTheta(2)
	ev.Forward(theta, make([]float64, n))
	J := make([]float64, n*p)
	if err := model.Jacobian(ev, J, 1<<30); err != nil {
		t.Fatal(err)
	}
	last := 6 // W_2 (1×5) and b_2
	a = mat.NewDense(n, last, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < last; j++ {
			a.Set(i, j, J[i*p+p-last+j])
		}
	}
	// Targets: the problem's data (the residual at θ_last = 0 is −targets).
	y = make([]float64, n)
	off := 0
	for b := range c.Blocks {
		copy(y[off:], c.Blocks[b].Y)
		off += len(c.Blocks[b].Y)
	}
	return a, y
}

func linearLayout(n, p int) model.Layout {
	return model.Layout{N: n, P: p, Blocks: []model.Span{{Name: "all", Len: n, Points: n, Components: 1}}}
}

// On a residual linear in θ (a PINN's fixed hidden features, only the last
// layer trained), one ngd step with μ → 0 and η = 1 lands on the
// least-squares solution, and the Gauss–Newton model predicts the decrease
// exactly (ρ = 1).
func TestNGDLinearResidualReachesLeastSquares(t *testing.T) {
	a, y := features(t, []int{40, 12})
	n, p := a.Dims()
	ev := &linearEval{lay: linearLayout(n, p), a: a, y: y}
	theta := []float64{0.3, -0.2, 0.1, 0.5, -0.4, 0.2}
	// μ → 0 lands on its floor, ε_mach·Tr K.
	cfg := Config{Name: "ngd", Schedule: Schedule{LR: 1}, Natural: NaturalConfig{Damping: 1e-300, Solver: SolverCholesky}}
	_, nr := step(t, ev, cfg, theta, []float64{1}, math.NaN())
	var want mat.VecDense
	if err := want.SolveVec(a, mat.NewVecDense(n, y)); err != nil { // QR least squares
		t.Fatal(err)
	}
	var diff float64
	for j := 0; j < p; j++ {
		diff = math.Max(diff, math.Abs(theta[j]-want.AtVec(j))/(1+math.Abs(want.AtVec(j))))
	}
	if diff > 1e-10 {
		t.Errorf("after one step θ differs from the least-squares solution by %.2e (relative)\n got %v\nwant %v", diff, theta, mat.Formatted(want.T()))
	}
	if nr.Rejected || nr.Eta != 1 {
		t.Fatalf("the step was rejected or shortened: %+v", nr)
	}
	if rho := nr.Actual / nr.Predicted; math.Abs(rho-1) > 1e-12 {
		t.Errorf("ρ = actual/predicted = %v on a linear residual, want 1", rho)
	}
	t.Logf("relative distance from least squares %.1e, ρ − 1 = %.1e, μ = %.2e", diff, nr.Actual/nr.Predicted-1, nr.Mu)
}

// The function-space step Jᵀ W^{1/2} (K̃ + μI)⁻¹ W^{1/2} R equals the
// parameter-space step (J̃ᵀJ̃ + μI)⁻¹ J̃ᵀ R̃ (push-through), with NTK weights,
// for n < p and n > p, solved by Cholesky and by CG.
func TestNGDPushThrough(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 5, 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		points []int
		solver string
	}{{[]int{8, 4}, SolverCholesky}, {[]int{30, 12}, SolverCholesky}, {[]int{8, 4}, SolverCG}, {[]int{30, 12}, SolverCG}} {
		c, err := s.DrawPoints(3, 0, tc.points, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.NewEvaluator(c, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		lay := ev.Layout()
		n, p := lay.N, lay.P
		const mu = 1e-3
		cfg := Config{Name: "ngd", Schedule: Schedule{LR: 1},
			Natural: NaturalConfig{Damping: mu, Solver: tc.solver, CGTol: 1e-14, CGMaxIter: 500}}
		theta := s.InitTheta(3)
		theta1 := append([]float64(nil), theta...)
		w := []float64{0.7, 40}
		r := make([]float64, n)
		ev.Forward(theta, r)
		m, rec := step(t, ev, cfg, theta1, w, math.Inf(1)) // any finite loss is a decrease: the step is taken
		v := m.(*natural).v
		// Parameter space, from the Jacobian route.
		J := make([]float64, n*p)
		if err := model.Jacobian(ev, J, 1<<30); err != nil {
			t.Fatal(err)
		}
		Jt := mat.NewDense(n, p, nil)
		rt := mat.NewVecDense(n, nil)
		for i := 0; i < n; i++ {
			sw := math.Sqrt(w[lay.BlockOf(i)])
			for j := 0; j < p; j++ {
				Jt.Set(i, j, sw*J[i*p+j])
			}
			rt.SetVec(i, sw*r[i])
		}
		var G mat.SymDense
		G.SymOuterK(1, Jt.T())
		for j := 0; j < p; j++ {
			G.SetSym(j, j, G.At(j, j)+mu)
		}
		var g, want mat.VecDense
		g.MulVec(Jt.T(), rt)
		if err := want.SolveVec(&G, &g); err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for j := 0; j < p; j++ {
			d := v[j] - want.AtVec(j)
			num += d * d
			den += want.AtVec(j) * want.AtVec(j)
		}
		tol := 1e-9
		if e := math.Sqrt(num / den); e > tol {
			t.Errorf("n = %d, p = %d, %s: function-space step differs from (J̃ᵀJ̃ + μI)⁻¹J̃ᵀR̃ by %.2e relative", n, p, tc.solver, e)
		}
		if rec.SolveResidual > 1e-10 {
			t.Errorf("n = %d, %s: solve residual %.2e", n, tc.solver, rec.SolveResidual)
		}
		for i := range theta {
			if theta1[i] != theta[i]-v[i] {
				t.Fatalf("θ₁ ≠ θ₀ − v at %d", i)
			}
		}
	}
}

// CG solves (A + μI)x = b for a PSD A to its tolerance, matching the dense
// solve.
func TestCGSolvesShiftedSystem(t *testing.T) {
	const n = 60
	a, _ := decayingKernel(n, 0.7)
	b := make([]float64, n)
	for i := range b {
		b[i] = math.Sin(float64(i))
	}
	const mu = 1e-4
	x := make([]float64, n)
	var cg CG
	res := cg.Solve(func(dst, v []float64) {
		mat.NewVecDense(n, dst).MulVec(a, mat.NewVecDense(n, v))
	}, nil, mu, b, x, 1e-12, 1000)
	if !res.Converged {
		t.Fatalf("CG did not converge: %+v", res)
	}
	var A mat.Dense
	A.Add(a, scaledIdentity(n, mu))
	var want mat.VecDense
	if err := want.SolveVec(&A, mat.NewVecDense(n, b)); err != nil {
		t.Fatal(err)
	}
	var num, den float64
	for i := range x {
		num += (x[i] - want.AtVec(i)) * (x[i] - want.AtVec(i))
		den += want.AtVec(i) * want.AtVec(i)
	}
	// ‖x − x*‖/‖x*‖ ≤ κ · residual, κ = (λmax + μ)/μ ≈ 10⁴.
	if e := math.Sqrt(num / den); e > 1e-12*1e4 {
		t.Errorf("CG solution differs from the dense solve by %.2e relative (%d iterations)", e, res.Iterations)
	}
}

// decayingKernel is Q diag(ρ^i) Qᵀ with a fixed orthogonal Q: a PSD kernel
// whose spectrum decays geometrically, as PINN kernels' do.
func decayingKernel(n int, rho float64) (*mat.Dense, []float64) {
	g := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			g.Set(i, j, math.Sin(float64(1+i*n+j)*1.3)+math.Cos(float64(i-2*j)))
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	eig := make([]float64, n)
	for i := range eig {
		eig[i] = math.Pow(rho, float64(i))
	}
	var qd, a mat.Dense
	qd.Mul(&q, mat.NewDiagDense(n, eig))
	a.Mul(&qd, q.T())
	// Symmetrize the rounding.
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v := (a.At(i, j) + a.At(j, i)) / 2
			a.Set(i, j, v)
			a.Set(j, i, v)
		}
	}
	return &a, eig
}

func scaledIdentity(n int, mu float64) *mat.Dense {
	d := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		d.Set(i, i, mu)
	}
	return d
}

// Woodbury through the Nyström eigendecomposition solves (K̂ + μI)z = b as
// the dense Cholesky solve of the same K̂ does.
func TestWoodburyOnNystromEqualsDenseSolve(t *testing.T) {
	const n, s = 80, 12
	k, _ := decayingKernel(n, 0.6)
	omega := make([]float64, n*s)
	st := rng.New(1, rng.DomainProbe, 0, 0)
	st.FillNormal(omega)
	var y mat.Dense
	y.Mul(k, mat.NewDense(n, s, omega))
	ny, err := sketch.NewNystrom(omega, y.RawMatrix().Data, n, s)
	if err != nil {
		t.Fatal(err)
	}
	// K̂ column by column from its products, then K̂ + μI by Cholesky.
	const mu = 1e-5
	dense := mat.NewSymDense(n, nil)
	e, col := make([]float64, n), make([]float64, n)
	for j := 0; j < n; j++ {
		e[j] = 1
		ny.MulVec(col, e)
		e[j] = 0
		for i := 0; i < j; i++ {
			dense.SetSym(i, j, col[i])
		}
		dense.SetSym(j, j, col[j]+mu)
	}
	var ch mat.Cholesky
	if !ch.Factorize(dense) {
		t.Fatal("K̂ + μI is not positive definite")
	}
	b := make([]float64, n)
	st.FillNormal(b)
	var want mat.VecDense
	if err := ch.SolveVecTo(&want, mat.NewVecDense(n, b)); err != nil {
		t.Fatal(err)
	}
	got := make([]float64, n)
	ny.SolveShifted(mu, got, b)
	var num, den float64
	for i := range got {
		num += (got[i] - want.AtVec(i)) * (got[i] - want.AtVec(i))
		den += want.AtVec(i) * want.AtVec(i)
	}
	// κ(K̂ + μI) ≈ 1/μ = 10⁵: the dense solve is good to about 10⁵·ε.
	if r := math.Sqrt(num / den); r > 1e-10 {
		t.Errorf("Woodbury differs from the dense solve by %.2e relative", r)
	}
}

// On a kernel with a decaying spectrum, CG preconditioned by the Nyström
// sketch of 30 columns converges in far fewer products than plain CG.
func TestCGPreconditionerSavesIterations(t *testing.T) {
	const n, s = 300, 30
	k, _ := decayingKernel(n, 0.8)
	omega := make([]float64, n*s)
	st := rng.New(2, rng.DomainProbe, 0, 0)
	st.FillNormal(omega)
	var y mat.Dense
	y.Mul(k, mat.NewDense(n, s, omega))
	ny, err := sketch.NewNystrom(omega, y.RawMatrix().Data, n, s)
	if err != nil {
		t.Fatal(err)
	}
	const mu = 1e-6
	b := make([]float64, n)
	st.FillNormal(b)
	apply := func(dst, v []float64) { mat.NewVecDense(n, dst).MulVec(k, mat.NewVecDense(n, v)) }
	var cg CG
	x := make([]float64, n)
	plain := cg.Solve(apply, nil, mu, b, x, 1e-10, 2000)
	pre := cg.Solve(apply, func(dst, r []float64) { ny.Precondition(mu, dst, r) }, mu, b, x, 1e-10, 2000)
	if !pre.Converged || !plain.Converged {
		t.Fatalf("plain %+v, preconditioned %+v: both must converge", plain, pre)
	}
	if 3*pre.Iterations > plain.Iterations {
		t.Errorf("preconditioned CG took %d products, plain CG %d: want at most a third", pre.Iterations, plain.Iterations)
	}
	t.Logf("CG products to 1e-10: plain %d, Nyström-preconditioned (S = %d) %d", plain.Iterations, s, pre.Iterations)
}
