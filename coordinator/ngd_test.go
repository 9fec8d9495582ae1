package coordinator

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"ntkbus/model"
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

func naturalTrainer(ev model.Evaluator, theta []float64, cfg TrainConfig) *Trainer {
	lay := ev.Layout()
	tr := &Trainer{cfg: cfg, ev: ev, theta: theta, lambda: make([]float64, len(lay.Blocks))}
	for b := range tr.lambda {
		tr.lambda[b] = 1
	}
	tr.opt, _ = NewGD(cfg.Schedule)
	tr.natural = newNatural(cfg, 0)
	return tr
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
	cfg := TrainConfig{Optimizer: "ngd", Mode: Fixed, Schedule: Schedule{LR: 1},
		Natural: NaturalConfig{Damping: 1e-300, Solver: SolverCholesky}}
	tr := naturalTrainer(ev, append([]float64(nil), theta...), cfg)
	r := make([]float64, n)
	ev.Forward(tr.theta, r)
	rec := &StepRecord{Objective: floats2(r) / 2}
	if err := tr.natural.step(context.Background(), tr, 0, r, rec); err != nil {
		t.Fatal(err)
	}
	var want mat.VecDense
	if err := want.SolveVec(a, mat.NewVecDense(n, y)); err != nil { // QR least squares
		t.Fatal(err)
	}
	var diff float64
	for j := 0; j < p; j++ {
		diff = math.Max(diff, math.Abs(tr.theta[j]-want.AtVec(j))/(1+math.Abs(want.AtVec(j))))
	}
	if diff > 1e-10 {
		t.Errorf("after one step θ differs from the least-squares solution by %.2e (relative)\n got %v\nwant %v", diff, tr.theta, mat.Formatted(want.T()))
	}
	nr := rec.Natural
	if nr.Rejected || nr.Eta != 1 {
		t.Fatalf("the step was rejected or shortened: %+v", nr)
	}
	if rho := nr.Actual / nr.Predicted; math.Abs(rho-1) > 1e-12 {
		t.Errorf("ρ = actual/predicted = %v on a linear residual, want 1", rho)
	}
	t.Logf("relative distance from least squares %.1e, ρ − 1 = %.1e, μ = %.2e", diff, nr.Actual/nr.Predicted-1, nr.Mu)
}

func floats2(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return s
}

// The function-space step Jᵀ Λ^{1/2} (K̃ + μI)⁻¹ Λ^{1/2} R equals the
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
		cfg := TrainConfig{Optimizer: "ngd", Mode: Fixed, Schedule: Schedule{LR: 1},
			Natural: NaturalConfig{Damping: mu, Solver: tc.solver, CGTol: 1e-14, CGMaxIter: 500}}
		theta := s.InitTheta(3)
		tr := naturalTrainer(ev, append([]float64(nil), theta...), cfg)
		tr.lambda = []float64{0.7, 40}
		r := make([]float64, n)
		ev.Forward(theta, r)
		rec := &StepRecord{Objective: math.Inf(1)} // any finite loss is a decrease: the step is taken
		if err := tr.natural.step(context.Background(), tr, 0, r, rec); err != nil {
			t.Fatal(err)
		}
		// Parameter space, from the Jacobian route.
		J := make([]float64, n*p)
		if err := model.Jacobian(ev, J, 1<<30); err != nil {
			t.Fatal(err)
		}
		Jt := mat.NewDense(n, p, nil)
		rt := mat.NewVecDense(n, nil)
		for i := 0; i < n; i++ {
			w := math.Sqrt(tr.lambda[lay.BlockOf(i)])
			for j := 0; j < p; j++ {
				Jt.Set(i, j, w*J[i*p+j])
			}
			rt.SetVec(i, w*r[i])
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
			d := tr.natural.v[j] - want.AtVec(j)
			num += d * d
			den += want.AtVec(j) * want.AtVec(j)
		}
		tol := 1e-9
		if e := math.Sqrt(num / den); e > tol {
			t.Errorf("n = %d, p = %d, %s: function-space step differs from (J̃ᵀJ̃ + μI)⁻¹J̃ᵀR̃ by %.2e relative", n, p, tc.solver, e)
		}
		if rec.Natural.SolveResidual > 1e-10 {
			t.Errorf("n = %d, %s: solve residual %.2e", n, tc.solver, rec.Natural.SolveResidual)
		}
		for i := range theta {
			if tr.theta[i] != theta[i]-tr.natural.v[i] {
				t.Fatalf("θ₁ ≠ θ₀ − v at %d", i)
			}
		}
	}
}

// A step that raises the loss at every η the line search tries is rejected:
// θ stays, μ grows by ν (then ν doubles), the next accepted step restores a
// fixed μ, and the rejection shows in train.csv.
func TestNGDRejectsAStepThatRaisesTheLoss(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{Model: s.Config, Seed: 1, Train: TrainConfig{
		Steps: 6, Mode: Fixed, Optimizer: "ngd", Schedule: Schedule{LR: 1e6}, PointSeed: 1, Counts: []int{8, 4}, // n < p: function space
		Natural: NaturalConfig{Damping: 1e-4, Solver: SolverCholesky}, // no line search: only η = 10⁶
	}}
	dir := t.TempDir()
	var recs []NaturalRecord
	run, err := NewRun(dir, cfg, nil, RunOptions{Progress: func(rec *StepRecord, done, total int) {
		recs = append(recs, *rec.Natural)
	}})
	if err != nil {
		t.Fatal(err)
	}
	theta0 := append([]float64(nil), run.Trainer.Theta()...)
	if err := run.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !recs[0].Rejected || recs[0].Actual >= 0 {
		t.Fatalf("step 0 with η = 10⁶: %+v, want a rejected step that would raise the loss", recs[0])
	}
	if recs[1].Mu != 2*recs[0].Mu || !recs[1].Rejected || recs[2].Mu != 8*recs[0].Mu {
		t.Errorf("μ after rejections: %v, %v, %v; want μ, 2μ, 8μ (ν = 2, then 4)", recs[0].Mu, recs[1].Mu, recs[2].Mu)
	}
	rows := readCSV(t, filepath.Join(dir, csvFile))
	header := strings.Split(rows[0], ",")
	col := -1
	for i, h := range header {
		if h == "step_rejected" {
			col = i
		}
	}
	if col < 0 || strings.Split(rows[1], ",")[col] != "1" {
		t.Fatalf("train.csv does not show step 0 as rejected: %s / %s", rows[0], rows[1])
	}
	// With a sane η the same start is accepted and restores the given μ.
	cfg.Train.Schedule.LR = 1
	cfg.Train.Natural.LineSearch = true
	cfg.Train.Steps = 2
	run, err = NewRun(filepath.Join(dir, "ok"), cfg, nil, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := run.Trainer
	tr.natural.state = NaturalState{Mu: 1, Nu: 8} // as after rejections
	rec, err := tr.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Natural.Rejected || tr.natural.state.Mu != 1e-4 || tr.natural.state.Nu != 2 {
		t.Errorf("accepted step: %+v, next μ %v ν %v; want μ back at 1e-4 and ν = 2", rec.Natural, tr.natural.state.Mu, tr.natural.state.Nu)
	}
	same := true
	for i, v := range tr.Theta() {
		same = same && v == theta0[i]
	}
	if same {
		t.Error("an accepted step left θ unchanged")
	}
}

// A natural-gradient run stopped and resumed (gracefully, or after a crash
// past its last checkpoint) is the run that never stopped, to the bit: the
// checkpoint carries the damping state. Both dense routes: n > p (the
// Gramian in parameter space) and n < p (K in function space).
func TestNGDResumeGivesTheSameRun(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, counts := range [][]int{{30, 12}, {10, 6}} {
		t.Run(fmt.Sprintf("n=%d", counts[0]+counts[1]), func(t *testing.T) { testNGDResume(t, s, counts) })
	}
}

func testNGDResume(t *testing.T, s *model.Setup, counts []int) {
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: TrainConfig{
		Steps: 16, Mode: ExactWeights, ExactEvery: 3, Optimizer: "ngd", Schedule: Schedule{LR: 1}, PointSeed: 2, Counts: counts,
		Natural: NaturalConfig{DampingAuto: true, LineSearch: true, Solver: SolverCholesky},
	}, ErrorEvery: 3}
	opt := RunOptions{CheckpointEvery: 5}
	root := t.TempDir()
	full := filepath.Join(root, "full")
	r, err := NewRun(full, cfg, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := readCSV(t, filepath.Join(full, csvFile))
	wantTheta := append([]float64(nil), r.Trainer.Theta()...)
	mu := slices.Index(strings.Split(want[0], ","), "mu")
	if mu < 0 {
		t.Fatalf("no mu column: %s", want[0])
	}
	mus := map[string]bool{}
	for _, row := range want[1:] {
		mus[strings.Split(row, ",")[mu]] = true
	}
	if len(mus) < 3 {
		t.Fatalf("μ took %d values: the test needs a changing damping", len(mus))
	}
	check := func(dir string) { t.Helper(); resumeSameRun(t, dir, nil, opt, want, wantTheta) }
	graceful := filepath.Join(root, "graceful")
	ctx, cancel := context.WithCancel(context.Background())
	o := opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 7 {
			cancel()
		}
	}
	if r, err = NewRun(graceful, cfg, nil, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); err == nil {
		t.Fatal("an interrupted run reported success")
	}
	check(graceful)

	crash := filepath.Join(root, "crash")
	var saved []byte
	o = opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 6 {
			saved, _ = os.ReadFile(filepath.Join(crash, checkpointFile))
		}
	}
	if r, err = NewRun(crash, cfg, nil, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(crash, checkpointFile), saved, 0o644)
	check(crash)
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

func TestNaturalConfigErrors(t *testing.T) {
	s := smallWave(t)
	for _, tc := range []struct {
		mut  func(*TrainConfig)
		want string
	}{
		{func(c *TrainConfig) { c.Natural.DampingAuto = false; c.Natural.Damping = 0 }, "μ = 0"},
		{func(c *TrainConfig) { c.Natural.Damping = -1 }, "damping"},
		{func(c *TrainConfig) { c.Natural.Solver = "lu" }, "solver"},
		{func(c *TrainConfig) { c.Natural.Solver = SolverWoodbury }, "sngd by woodbury"},
		{func(c *TrainConfig) { c.Natural.Solver = SolverCG; c.Natural.CGTol = 0; c.Natural.CGMaxIter = 10 }, "CG tolerance"},
		{func(c *TrainConfig) { c.Natural.Solver = SolverCG; c.Natural.CGTol = 1e-8 }, "CG iterations"},
		{func(c *TrainConfig) {
			c.Natural.Solver = SolverCG
			c.Natural.CGTol = 1e-8
			c.Natural.CGMaxIter = MaxCGIter + 1
		}, "want 1 to 1000000"},
		{func(c *TrainConfig) { c.Optimizer = "sngd"; c.Natural.Solver = SolverCholesky }, "sngd by woodbury"},
	} {
		cfg := TrainConfig{Steps: 1, Mode: Fixed, Optimizer: "ngd", Schedule: Schedule{LR: 1}, Resample: true, PointSeed: 1,
			Natural: NaturalConfig{DampingAuto: true, Solver: SolverCholesky}}
		tc.mut(&cfg)
		_, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want one about %q", cfg.Natural, err, tc.want)
		}
	}
}

// An ngd checkpoint's damping state is checked on resume like the rest.
func TestNGDCheckpointDampingIsChecked(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: TrainConfig{
		Steps: 6, Mode: Fixed, Optimizer: "ngd", Schedule: Schedule{LR: 1}, PointSeed: 2, Counts: []int{10, 6},
		Natural: NaturalConfig{DampingAuto: true, LineSearch: true, Solver: SolverCholesky},
	}}
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := NewRun(dir, cfg, nil, RunOptions{Progress: func(_ *StepRecord, done, _ int) {
		if done == 3 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.Execute(ctx)
	path := filepath.Join(dir, checkpointFile)
	good, _ := os.ReadFile(path)
	if _, err := ReadRun(dir); err != nil {
		t.Fatalf("the run's own checkpoint: %v", err)
	}
	for _, tc := range []struct {
		name string
		mut  func(ck *checkpointState)
		want string
	}{
		{"no damping state", func(ck *checkpointState) { ck.Natural = nil }, "natural-gradient state present: false"},
		{"NaN μ", func(ck *checkpointState) { ck.Natural.Mu = math.NaN() }, "μ = NaN"},
		{"negative μ", func(ck *checkpointState) { ck.Natural.Mu = -1 }, "μ = -1"},
		{"ν beyond its bound", func(ck *checkpointState) { ck.Natural.Nu = 1e300 }, "ν = 1e+300"},
	} {
		os.WriteFile(path, good, 0o644)
		ck := stateOf(t, path)
		tc.mut(ck)
		writeState(t, path, ck)
		if _, err := ReadRun(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}
