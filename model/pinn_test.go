package model

import (
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"ntkbus/model/rng"
)

// streamsProblem is a test problem on (x, t) with a two-output network that
// exercises every stream kind: first derivatives, an operator with first-
// and second-order parts, a mixed second derivative, a nonlinear residual
// with two components, and a plain value block with one component.
func streamsProblem() *Problem {
	box := [][2]float64{{-1, 2}, {0, 1}}
	P1 := Operator{Name: "u_tt-4u_xx+0.5u_x", B: []float64{0.5, 0}, C: []float64{-4, 0, 0, 1}}
	P2 := Operator{Name: "u_xt", C: []float64{0, 0.5, 0.5, 0}}
	const O = 2
	// Streams of block "mix": u, u_x, u_t, P1 u, P2 u (5 streams × 2 outputs).
	mixF := func(x, u, r []float64) {
		r[0] = u[3*O+0] + u[0]*u[1] + math.Sin(x[0])*u[1*O+1]
		r[1] = u[4*O+1] - u[2*O+0]*u[2*O+0]
	}
	mixDF := func(x, u, jac []float64) {
		const cols = 5 * O
		for i := range jac[:2*cols] {
			jac[i] = 0
		}
		jac[3*O+0] = 1
		jac[0] = u[1]
		jac[1] = u[0]
		jac[1*O+1] = math.Sin(x[0])
		jac[cols+4*O+1] = 1
		jac[cols+2*O+0] = -2 * u[2*O+0]
	}
	valF := func(_, u, r []float64) { r[0] = u[0] + 2*u[1] }
	valDF := func(_, _, jac []float64) { jac[0], jac[1] = 1, 2 }
	return &Problem{
		Name: "streams", Dim: 2, Outputs: O, Coords: []string{"x", "t"}, Box: box,
		Blocks: []BlockDef{
			{Name: "mix", Count: 7, Components: 2, Streams: Streams{Grad: []int{0, 1}, Ops: []Operator{P1, P2}},
				Sample: uniformIn(box), F: mixF, DF: mixDF,
				Target: func(x, y []float64) { y[0], y[1] = x[0], x[1] }},
			{Name: "val", Count: 5, Components: 1, Sample: uniformIn(box), F: valF, DF: valDF},
			{Name: "empty", Count: 0, Components: 1, Sample: uniformIn(box), F: valF, DF: valDF},
		},
		Layers: []int{2, 6, 5, 2}, Activation: Tanh,
	}
}

// rawProblem's residual is the streams themselves (Components = S·O), so
// tests can read the network's carried derivatives directly.
func rawProblem(act Activation, layers []int) *Problem {
	box := [][2]float64{{-1, 2}, {0, 1}}
	O := layers[len(layers)-1]
	st := Streams{Grad: []int{0, 1}, Ops: []Operator{
		{Name: "xx", C: []float64{1, 0, 0, 0}},
		{Name: "tt", C: []float64{0, 0, 0, 1}},
		{Name: "xt", C: []float64{0, 0.5, 0.5, 0}},
		{Name: "mixed", B: []float64{0.3, -1.2}, C: []float64{2, -0.7, -0.7, 3}},
	}}
	S := st.Count()
	return &Problem{
		Name: "raw", Dim: 2, Outputs: O, Box: box,
		Blocks: []BlockDef{{
			Name: "raw", Count: 6, Components: S * O, Streams: st, Sample: uniformIn(box),
			F: func(_, u, r []float64) { copy(r, u) },
			DF: func(_, _, jac []float64) {
				for i := range jac {
					jac[i] = 0
				}
				for k := 0; k < S*O; k++ {
					jac[k*S*O+k] = 1
				}
			},
		}},
		Layers: layers, Activation: act,
	}
}

func mustBind(t testing.TB, p *Problem, cfg Config) *Setup {
	t.Helper()
	if cfg.Layers == nil {
		cfg.Layers = p.Layers
	}
	if cfg.Activation == "" {
		cfg.Activation = p.Activation.String()
	}
	for i := range p.Blocks {
		if err := p.Blocks[i].Streams.validate(p.Dim); err != nil {
			t.Fatal(err)
		}
	}
	s, err := bind(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newEval(t testing.TB, s *Setup, seed uint64) (Evaluator, []float64) {
	t.Helper()
	c, err := s.DrawPoints(seed, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	theta := s.InitTheta(seed)
	// Non-zero biases, so bias paths are exercised.
	st := rng.New(seed, rng.DomainNoise, 99, 0)
	for i := range theta {
		theta[i] += 0.1 * st.Normal()
	}
	return ev, theta
}

// cutAll makes ev cut every matrix product into pieces (gemm.go), as it
// does the wave network's.
func cutAll(ev Evaluator) { ev.(*pinn).cutFlops = 0 }

func randVec(seed uint64, n int) []float64 {
	v := make([]float64, n)
	s := rng.New(seed, rng.DomainNoise, 7, 7)
	s.FillNormal(v)
	return v
}

func relErr(got, want []float64) float64 {
	var num, den float64
	for i := range got {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	return math.Sqrt(num / math.Max(den, 1e-300))
}

// The carried input derivatives equal those of a one-hidden-layer network in
// closed form: u = Σ_j v_j σ(a_j) + c with a_j = Σ_k W_jk z_k + b_j and
// z = (x − shift)/scale, so ∂_k u = Σ v_j σ'(a_j) W_jk/scale_k and
// P u = Σ v_j [σ'(a_j) Σ_k B_k W_jk/s_k + σ”(a_j) Σ_kl C_kl W_jk W_jl/(s_k s_l)].
func TestStreamsClosedForm(t *testing.T) {
	for _, act := range []Activation{Tanh, Sin, Softplus} {
		p := rawProblem(act, []int{2, 9, 1})
		shift, scale := []float64{0.5, 0.2}, []float64{1.5, 0.4}
		s := mustBind(t, p, Config{Layers: p.Layers, Activation: act.String(), Shift: shift, Scale: scale})
		ev, theta := newEval(t, s, 3)
		lay := ev.Layout()
		r := make([]float64, lay.N)
		ev.Forward(theta, r)
		st := p.Blocks[0].Streams
		S := st.Count()
		pts := s.net
		W, b := theta[pts.wOff[1]:pts.wOff[1]+18], theta[pts.bOff[1]:pts.bOff[1]+9]
		v, c := theta[pts.wOff[2]:pts.wOff[2]+9], theta[pts.bOff[2]]
		// y of the raw block is zero, so r holds the streams.
		x := ev.(*pinn).groups[0].x
		for i := 0; i < lay.Blocks[0].Points; i++ {
			z := []float64{(x[2*i] - shift[0]) / scale[0], (x[2*i+1] - shift[1]) / scale[1]}
			want := make([]float64, S)
			want[0] = c
			for j := 0; j < 9; j++ {
				a := W[2*j]*z[0] + W[2*j+1]*z[1] + b[j]
				h, d1, d2 := make([]float64, 1), make([]float64, 1), make([]float64, 1)
				act.eval([]float64{a}, h, d1, d2, nil)
				want[0] += v[j] * h[0]
				for gi, k := range st.Grad {
					want[1+gi] += v[j] * d1[0] * W[2*j+k] / scale[k]
				}
				for oi, op := range st.Ops {
					var first, second float64
					for k := 0; k < 2; k++ {
						if op.B != nil {
							first += op.B[k] * W[2*j+k] / scale[k]
						}
						for l := 0; l < 2; l++ {
							second += op.C[2*k+l] * W[2*j+k] * W[2*j+l] / (scale[k] * scale[l])
						}
					}
					want[1+len(st.Grad)+oi] += v[j] * (d1[0]*first + d2[0]*second)
				}
			}
			got := r[i*S : (i+1)*S]
			for k := range want {
				if math.Abs(got[k]-want[k]) > 1e-13*(1+math.Abs(want[k])) {
					t.Errorf("%v point %d stream %d: got %v, closed form %v", act, i, k, got[k], want[k])
				}
			}
		}
	}
}

// For a deep multi-output network the carried derivatives match central
// finite differences of the network's own output (Predict) in the inputs.
// Step h = 1e-4: truncation O(h²) ≈ 1e-8 and rounding O(ε/h²) ≈ 1e-8 for the
// second derivatives, so the tolerance is 1e-6 relative to the scale.
func TestStreamsFiniteDifferences(t *testing.T) {
	p := rawProblem(Tanh, []int{2, 8, 7, 6, 2})
	s := mustBind(t, p, Config{})
	ev, theta := newEval(t, s, 5)
	lay := ev.Layout()
	r := make([]float64, lay.N)
	ev.Forward(theta, r)
	st := p.Blocks[0].Streams
	S, O := st.Count(), 2
	x := ev.(*pinn).groups[0].x
	u := func(x0, x1 float64) []float64 {
		out := make([]float64, O)
		s.Predict(theta, []float64{x0, x1}, out)
		return out
	}
	const h = 1e-4
	for i := 0; i < lay.Blocks[0].Points; i++ {
		x0, x1 := x[2*i], x[2*i+1]
		for o := 0; o < O; o++ {
			f := func(a, b float64) float64 { return u(x0+a, x1+b)[o] }
			d := [2]float64{(f(h, 0) - f(-h, 0)) / (2 * h), (f(0, h) - f(0, -h)) / (2 * h)}
			var dd [2][2]float64
			dd[0][0] = (f(h, 0) - 2*f(0, 0) + f(-h, 0)) / (h * h)
			dd[1][1] = (f(0, h) - 2*f(0, 0) + f(0, -h)) / (h * h)
			dd[0][1] = (f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
			dd[1][0] = dd[0][1]
			want := make([]float64, S)
			want[0] = f(0, 0)
			want[1], want[2] = d[0], d[1]
			for oi, op := range st.Ops {
				var v float64
				for k := 0; k < 2; k++ {
					if op.B != nil {
						v += op.B[k] * d[k]
					}
					for l := 0; l < 2; l++ {
						v += op.C[2*k+l] * dd[k][l]
					}
				}
				want[3+oi] = v
			}
			for k := 0; k < S; k++ {
				got := r[i*S*O+k*O+o]
				if math.Abs(got-want[k]) > 1e-6*(1+math.Abs(want[k])) {
					t.Errorf("point %d output %d stream %d: carried %v, finite differences %v", i, o, k, got, want[k])
				}
			}
		}
	}
}

// Jᵀv and J w match central finite differences of R in θ, and satisfy the
// adjoint identity ⟨Jᵀv, w⟩ = ⟨v, Jw⟩ to rounding.
func TestDerivativesInTheta(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *Setup
	}{
		{"streams", mustBind(t, streamsProblem(), Config{})},
		{"streams-sin", mustBind(t, streamsProblem(), Config{Activation: "sin"})},
		{"poisson1d", mustSetup(t, "poisson1d", []int{1, 12, 1})},
		{"wave", mustSetup(t, "wave", []int{2, 7, 6, 1})},
		{"wave-cut", mustSetup(t, "wave", []int{2, 7, 6, 1})},
		{"qtensor", mustSetup(t, "qtensor", []int{3, 6, 5, 2})},
		{"quadratic", mustSetup(t, "quadratic", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, theta := newEval(t, tc.s, 11)
			if strings.HasSuffix(tc.name, "-cut") {
				cutAll(ev)
			}
			lay := ev.Layout()
			n, p := lay.N, lay.P
			r := make([]float64, n)
			ev.Forward(theta, r)
			v, w := randVec(1, n), randVec(2, p)
			jtv, jw := make([]float64, p), make([]float64, n)
			ev.Backward([]Cotangent{{V: v, Dst: jtv}})
			ev.JVP(w, jw)

			// Central differences along w: (R(θ+hw) − R(θ−hw))/2h = Jw + O(h²).
			const h = 1e-6
			tp, tm := make([]float64, p), make([]float64, p)
			for i := range theta {
				tp[i], tm[i] = theta[i]+h*w[i], theta[i]-h*w[i]
			}
			rp, rm := make([]float64, n), make([]float64, n)
			ev.Residual(tp, rp)
			ev.Residual(tm, rm)
			fd := make([]float64, n)
			for i := range fd {
				fd[i] = (rp[i] - rm[i]) / (2 * h)
			}
			if e := relErr(jw, fd); e > 1e-6 {
				t.Errorf("J w differs from central differences by %.2e relative", e)
			}
			// Jᵀv against central differences of v·R along coordinate directions.
			for _, k := range []int{0, p / 3, p / 2, p - 1} {
				tp := append([]float64(nil), theta...)
				tm := append([]float64(nil), theta...)
				tp[k] += h
				tm[k] -= h
				ev.Residual(tp, rp)
				ev.Residual(tm, rm)
				var fdk float64
				for i := range v {
					fdk += v[i] * (rp[i] - rm[i]) / (2 * h)
				}
				if math.Abs(jtv[k]-fdk) > 1e-6*(1+math.Abs(fdk)) {
					t.Errorf("(Jᵀv)[%d] = %v, central differences %v", k, jtv[k], fdk)
				}
			}
			var lhs, rhs float64
			for i := range jtv {
				lhs += jtv[i] * w[i]
			}
			for i := range jw {
				rhs += v[i] * jw[i]
			}
			if math.Abs(lhs-rhs) > 1e-12*math.Max(math.Abs(lhs), 1) {
				t.Errorf("adjoint identity: <Jᵀv,w> = %.17g, <v,Jw> = %.17g (rel %.1e)", lhs, rhs, math.Abs(lhs-rhs)/math.Abs(lhs))
			}
			// Residual leaves the base point alone: Jᵀv is unchanged.
			again := make([]float64, p)
			ev.Backward([]Cotangent{{V: v, Dst: again}})
			for i := range again {
				if again[i] != jtv[i] {
					t.Fatalf("Backward after Residual changed at %d: %v vs %v", i, again[i], jtv[i])
				}
			}
		})
	}
}

// The structured NTK and diagonal equal J Jᵀ from the plain Jacobian route;
// K is symmetric and positive semidefinite.
func TestNTKEqualsJJT(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *Setup
	}{
		{"streams", mustBind(t, streamsProblem(), Config{})},
		{"poisson1d", mustSetup(t, "poisson1d", []int{1, 12, 1})},
		{"wave", mustSetup(t, "wave", []int{2, 7, 6, 1})},
		{"qtensor", mustSetup(t, "qtensor", []int{3, 6, 5, 2})},
		{"quadratic", mustSetup(t, "quadratic", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			// Small point counts keep the Jacobian route quick.
			counts := make([]int, len(s.Problem.Blocks))
			for b := range counts {
				counts[b] = min(s.Problem.Blocks[b].Count, 6)
			}
			c, err := s.DrawPoints(4, 0, counts, nil)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := s.NewEvaluator(c, Options{})
			if err != nil {
				t.Fatal(err)
			}
			theta := s.InitTheta(4)
			lay := ev.Layout()
			n, p := lay.N, lay.P
			r := make([]float64, n)
			ev.Forward(theta, r)
			J := make([]float64, n*p)
			if err := Jacobian(ev, J, 1<<30); err != nil {
				t.Fatal(err)
			}
			want := mat.NewDense(n, n, nil)
			Jm := mat.NewDense(n, p, J)
			want.Mul(Jm, Jm.T())
			K := make([]float64, n*n)
			if err := ev.NTK(K); err != nil {
				t.Fatal(err)
			}
			scale := mat.Norm(want, 2)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					if d := math.Abs(K[i*n+j] - want.At(i, j)); d > 1e-12*scale {
						t.Fatalf("K[%d,%d] = %v, J Jᵀ = %v", i, j, K[i*n+j], want.At(i, j))
					}
					if K[i*n+j] != K[j*n+i] {
						t.Fatalf("K not symmetric at %d,%d", i, j)
					}
				}
			}
			var eig mat.EigenSym
			if !eig.Factorize(mat.NewSymDense(n, K), false) {
				t.Fatal("eigendecomposition failed")
			}
			for _, l := range eig.Values(nil) {
				if l < -1e-12*scale {
					t.Errorf("K has eigenvalue %v < 0", l)
				}
			}
			diag := make([]float64, n)
			ev.Diagonal(diag)
			for i := range diag {
				if math.Abs(diag[i]-want.At(i, i)) > 1e-12*scale {
					t.Errorf("diagonal %d: %v, J Jᵀ %v", i, diag[i], want.At(i, i))
				}
			}
		})
	}
}

// One backward pass with several cotangents gives what separate passes give,
// bit for bit, and per-block gradients sum to the full one.
func TestBackwardMultiAndPerBlock(t *testing.T) {
	s := mustBind(t, streamsProblem(), Config{})
	ev, theta := newEval(t, s, 8)
	cutAll(ev)
	lay := ev.Layout()
	n, p := lay.N, lay.P
	r := make([]float64, n)
	ev.Forward(theta, r)
	g := randVec(3, n)
	alone := make([]float64, p)
	ev.Backward([]Cotangent{{V: g, Dst: alone}})
	fused := make([]float64, p)
	per := make([][]float64, len(lay.Blocks))
	for b := range per {
		per[b] = make([]float64, p)
	}
	full := make([]float64, p)
	ev.Backward([]Cotangent{{V: g, Dst: fused}, {V: r, PerBlock: per, Dst: full}})
	for i := range alone {
		if math.Float64bits(alone[i]) != math.Float64bits(fused[i]) {
			t.Fatalf("fused Jᵀg differs at %d: %v vs %v", i, fused[i], alone[i])
		}
	}
	sum := make([]float64, p)
	for b := range per {
		for i := range sum {
			sum[i] += per[b][i]
		}
	}
	if e := relErr(sum, full); e > 1e-14 {
		t.Errorf("per-block gradients sum to the full gradient only to %.1e", e)
	}
}

// Quadratic problem: the Jacobian is exactly 2θ_j u_j(x_i).
func TestQuadraticJacobian(t *testing.T) {
	s := mustSetup(t, "quadratic", nil)
	ev, theta := newEval(t, s, 2)
	lay := ev.Layout()
	r := make([]float64, lay.N)
	ev.Forward(theta, r)
	J := make([]float64, lay.N*3)
	if err := Jacobian(ev, J, 1<<20); err != nil {
		t.Fatal(err)
	}
	x := ev.(*quadEval).x
	for i := 0; i < lay.N; i++ {
		u := [3]float64{1, x[i], x[i] * x[i]}
		for j := 0; j < 3; j++ {
			if want := 2 * theta[j] * u[j]; J[i*3+j] != want {
				t.Errorf("J[%d,%d] = %v, want 2θ_j u_j = %v", i, j, J[i*3+j], want)
			}
		}
	}
	if lay.N != 50 || x[0] != -1 || x[49] != 1 {
		t.Errorf("want 50 equispaced points on [-1,1], got %d from %v to %v", lay.N, x[0], x[lay.N-1])
	}
}

func mustSetup(t testing.TB, name string, layers []int) *Setup {
	t.Helper()
	cfg, err := DefaultConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	if layers != nil {
		cfg.Layers = layers
	}
	s, err := NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNTKMemoryLimit(t *testing.T) {
	s := mustSetup(t, "wave", []int{2, 5, 1})
	c, _ := s.DrawPoints(1, 0, nil, nil)
	ev, err := s.NewEvaluator(c, Options{MaxMemory: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	theta := s.InitTheta(1)
	r := make([]float64, ev.Layout().N)
	ev.Forward(theta, r)
	err = ev.NTK(make([]float64, ev.Layout().N*ev.Layout().N))
	if err == nil {
		t.Fatal("NTK over the memory limit did not fail")
	}
	t.Log(err)
}
