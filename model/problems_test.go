package model

import (
	"math"
	"strings"
	"testing"
)

// jet is a function's value, gradient and Hessian at a point, derived by hand.
type jet struct {
	u    float64
	grad []float64
	hess [][]float64
}

// streamsOf builds a block's stream vector (single output) from a jet.
func streamsOf(st Streams, j jet) []float64 {
	u := []float64{j.u}
	for _, k := range st.Grad {
		u = append(u, j.grad[k])
	}
	for _, op := range st.Ops {
		var v float64
		d := len(j.grad)
		for k := 0; k < d; k++ {
			if op.B != nil {
				v += op.B[k] * j.grad[k]
			}
			if op.C != nil {
				for l := 0; l < d; l++ {
					v += op.C[k*d+l] * j.hess[k][l]
				}
			}
		}
		u = append(u, v)
	}
	return u
}

func poissonJet(x []float64) jet {
	w := 4 * math.Pi
	return jet{
		u:    math.Sin(w * x[0]),
		grad: []float64{w * math.Cos(w*x[0])},
		hess: [][]float64{{-w * w * math.Sin(w*x[0])}},
	}
}

func waveJet(x []float64) jet {
	X, T := x[0], x[1]
	p := math.Pi
	sx, cx := math.Sin(p*X), math.Cos(p*X)
	s4, c4 := math.Sin(4*p*X), math.Cos(4*p*X)
	s2t, c2t := math.Sin(2*p*T), math.Cos(2*p*T)
	s8t, c8t := math.Sin(8*p*T), math.Cos(8*p*T)
	return jet{
		u:    sx*c2t + 0.5*s4*c8t,
		grad: []float64{p*cx*c2t + 2*p*c4*c8t, -2*p*sx*s2t - 4*p*s4*s8t},
		hess: [][]float64{
			{-p*p*sx*c2t - 8*p*p*s4*c8t, -2*p*p*cx*s2t - 8*p*p*c4*s8t},
			{-2*p*p*cx*s2t - 8*p*p*c4*s8t, -4*p*p*sx*c2t - 32*p*p*s4*c8t},
		},
	}
}

// Every block's residual vanishes on the problem's exact solution, with
// derivatives computed by hand: this pins signs, coefficients and data.
func TestResidualsVanishOnExactSolutions(t *testing.T) {
	for _, tc := range []struct {
		name string
		jet  func([]float64) jet
	}{{"poisson1d", poissonJet}, {"wave", waveJet}} {
		s := mustSetup(t, tc.name, nil)
		p := s.Problem
		c, err := s.DrawPoints(1, 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for b, def := range p.Blocks {
			bp := &c.Blocks[b]
			for i := 0; i < bp.Count(); i++ {
				x := bp.X[i*p.Dim : (i+1)*p.Dim]
				j := tc.jet(x)
				var exact [1]float64
				p.Exact(x, exact[:])
				if math.Abs(exact[0]-j.u) > 1e-14 {
					t.Fatalf("%s: Exact and the hand-derived jet disagree at %v", tc.name, x)
				}
				r := make([]float64, 1)
				def.F(x, streamsOf(def.Streams, j), r)
				res := r[0] - bp.Y[i]
				// Terms reach 32π²·½ ≈ 160: allow rounding at that scale.
				if math.Abs(res) > 1e-12*200 {
					t.Errorf("%s block %s at %v: residual of the exact solution is %v", tc.name, def.Name, x, res)
				}
			}
		}
	}
}

// The Q-tensor residual on a manufactured solution equals the equation
// written out independently: R = Q_t − LΔQ + aQ + c Tr(Q²) Q, with Tr(Q²)
// from the 2×2 matrix product.
func TestQTensorResidualManufactured(t *testing.T) {
	params := map[string]float64{"L": 0.7, "a": -0.3, "c": 1.9}
	p, err := Lookup("qtensor", params)
	if err != nil {
		t.Fatal(err)
	}
	L, a, c := 0.7, -0.3, 1.9
	// q1 = e^{−t} sin x cos y, q2 = t x y².
	q := func(x, y, tt float64) (q1, q2 float64) {
		return math.Exp(-tt) * math.Sin(x) * math.Cos(y), tt * x * y * y
	}
	def := p.Blocks[0]
	for _, pt := range [][3]float64{{0.3, -1.1, 0.4}, {1.7, 0.2, 1.9}, {-0.5, 0.9, 0.05}} {
		x, y, tt := pt[0], pt[1], pt[2]
		q1, q2 := q(x, y, tt)
		q1t, q2t := -q1, x*y*y
		q1x, q2x := math.Exp(-tt)*math.Cos(x)*math.Cos(y), tt*y*y
		q1y, q2y := -math.Exp(-tt)*math.Sin(x)*math.Sin(y), 2*tt*x*y
		lap1, lap2 := -2*q1, 2*tt*x
		// Streams u, u_x, u_y, (∂t − LΔ)u; two outputs each.
		u := []float64{q1, q2, q1x, q2x, q1y, q2y, q1t - L*lap1, q2t - L*lap2}
		r := make([]float64, 2)
		def.F(pt[:], u, r)
		Q := [2][2]float64{{q1, q2}, {q2, -q1}}
		var tr float64
		for i := 0; i < 2; i++ {
			for k := 0; k < 2; k++ {
				tr += Q[i][k] * Q[k][i]
			}
		}
		want := []float64{q1t - L*lap1 + a*q1 + c*tr*q1, q2t - L*lap2 + a*q2 + c*tr*q2}
		for k := range want {
			if math.Abs(r[k]-want[k]) > 1e-13*(1+math.Abs(want[k])) {
				t.Errorf("at %v component %d: residual %v, equation %v", pt, k, r[k], want[k])
			}
		}
	}
	// The initial condition is zero on ∂Ω, compatible with Q = 0 there.
	for _, xy := range [][2]float64{{-2, 0.3}, {2, -1.2}, {0.7, -2}, {1.1, 2}} {
		if q11, q12 := QTensorInitial(xy[0], xy[1]); math.Abs(q11) > 1e-15 || math.Abs(q12) > 1e-15 {
			t.Errorf("Q0%v = (%v, %v), want 0 on the boundary", xy, q11, q12)
		}
	}
	// Q0 is ddᵀ − ½|d|²I: trace-free with Tr(Q0²) = |d|⁴/2.
	x, y := 0.4, -0.9
	A := (4 - x*x) * (4 - y*y)
	S := math.Sin(math.Pi*x) * math.Sin(math.Pi*y)
	d2 := (A*A + S*S) / (1 + A*A + S*S)
	q11, q12 := QTensorInitial(x, y)
	if got := 2 * (q11*q11 + q12*q12); math.Abs(got-d2*d2/2) > 1e-15 {
		t.Errorf("Tr(Q0²) = %v, want |d|⁴/2 = %v", got, d2*d2/2)
	}
}

// Every block's DF is the derivative of its F (checked by central
// differences here, in the test only: the model itself never differences).
func TestBlockJacobiansMatchF(t *testing.T) {
	probs := []*Problem{streamsProblem()}
	for _, name := range []string{"poisson1d", "wave", "qtensor"} {
		p, err := Lookup(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		probs = append(probs, p)
	}
	for _, p := range probs {
		for _, def := range p.Blocks {
			cols := def.Streams.Count() * p.Outputs
			x := make([]float64, p.Dim)
			for k := range x {
				x[k] = 0.3 + 0.1*float64(k)
			}
			u := randVec(uint64(cols), cols)
			jac := make([]float64, def.Components*cols)
			def.DF(x, u, jac)
			const h = 1e-6
			rp, rm := make([]float64, def.Components), make([]float64, def.Components)
			for k := 0; k < cols; k++ {
				up := append([]float64(nil), u...)
				um := append([]float64(nil), u...)
				up[k] += h
				um[k] -= h
				def.F(x, up, rp)
				def.F(x, um, rm)
				for c := 0; c < def.Components; c++ {
					fd := (rp[c] - rm[c]) / (2 * h)
					if math.Abs(fd-jac[c*cols+k]) > 1e-7*(1+math.Abs(fd)) {
						t.Errorf("%s/%s: ∂F_%d/∂u_%d = %v, central differences %v", p.Name, def.Name, c, k, jac[c*cols+k], fd)
					}
				}
			}
		}
	}
}

func TestDrawIsSeededAndResamples(t *testing.T) {
	s := mustSetup(t, "wave", nil)
	a, _ := s.DrawPoints(5, 3, nil, nil)
	b, _ := s.DrawPoints(5, 3, nil, nil)
	c, _ := s.DrawPoints(5, 4, nil, nil)
	for blk := range a.Blocks {
		for i := range a.Blocks[blk].X {
			if a.Blocks[blk].X[i] != b.Blocks[blk].X[i] {
				t.Fatalf("same seed and step drew different points")
			}
		}
	}
	if a.Blocks[0].X[0] == c.Blocks[0].X[0] {
		t.Errorf("a new step did not redraw the points")
	}
	// Points lie where their block says.
	names := map[string]func(x []float64) bool{
		"pde":   func(x []float64) bool { return x[0] > 0 && x[0] < 1 && x[1] > 0 && x[1] < 1 },
		"ut0":   func(x []float64) bool { return x[1] == 0 },
		"u0":    func(x []float64) bool { return x[1] == 0 },
		"left":  func(x []float64) bool { return x[0] == 0 },
		"right": func(x []float64) bool { return x[0] == 1 },
	}
	for _, bp := range a.Blocks {
		for i := 0; i < bp.Count(); i++ {
			if !names[bp.Name](bp.X[2*i : 2*i+2]) {
				t.Errorf("block %s point %v is outside its part of the domain", bp.Name, bp.X[2*i:2*i+2])
			}
		}
	}
	if got := a.Counts(); got[0] != 300 || got[1] != 300 || got[2] != 100 || got[3] != 100 || got[4] != 100 {
		t.Errorf("wave default counts %v, want the paper's [300 300 100 100 100]", got)
	}
	// Fixed blocks do not move with the step.
	q := mustSetup(t, "poisson1d", nil)
	p0, _ := q.DrawPoints(1, 0, nil, nil)
	p9, _ := q.DrawPoints(1, 9, nil, nil)
	if p0.Blocks[1].X[0] != 0 || p9.Blocks[2].X[0] != 1 || p0.Blocks[0].X[0] == p9.Blocks[0].X[0] {
		t.Errorf("poisson1d: boundary points must stay at 0 and 1 while interior points move")
	}
}

func TestLookupErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]float64
		want   string
	}{
		{"heat", nil, `unknown problem "heat"`},
		{"wave", map[string]float64{"L": 1}, "has no parameters"},
		{"qtensor", map[string]float64{"k": 1}, `no parameter "k"`},
		{"qtensor", map[string]float64{"L": -1}, "must be positive"},
		{"qtensor", map[string]float64{"a": math.NaN()}, "not finite"},
	} {
		_, err := Lookup(tc.name, tc.params)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Lookup(%q, %v) = %v, want an error containing %q", tc.name, tc.params, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Problem: "wave", Layers: []int{3, 10, 1}}, "input width 3"},
		{Config{Problem: "wave", Layers: []int{2, 10, 2}}, "output width 2"},
		{Config{Problem: "wave", Layers: []int{2, 0, 1}}, "positive"},
		{Config{Problem: "wave", Activation: "relu"}, `unknown activation "relu"`},
		{Config{Problem: "quadratic", Layers: []int{1, 1}}, "not a network"},
		{Config{Problem: "poisson1d", Shift: []float64{0}, Scale: []float64{0}}, "scale must be positive"},
	} {
		_, err := NewSetup(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSetup(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestParameterCountsAndInit(t *testing.T) {
	for name, want := range map[string]int{"wave": 503001, "poisson1d": 301, "qtensor": 3*500 + 500 + 2*(500*500+500) + 500*2 + 2, "quadratic": 3} {
		s := mustSetup(t, name, nil)
		if s.NumParams() != want {
			t.Errorf("%s: p = %d, want %d", name, s.NumParams(), want)
		}
	}
	// Xavier normal: weights with variance 2/(fan_in+fan_out), zero biases.
	s := mustSetup(t, "wave", nil)
	theta := s.InitTheta(7)
	n := s.net
	w := theta[n.wOff[2] : n.wOff[2]+500*500]
	var m2 float64
	for _, v := range w {
		m2 += v * v
	}
	m2 /= float64(len(w))
	if want := 2.0 / 1000; math.Abs(m2-want) > 5*want*math.Sqrt(2.0/float64(len(w))) {
		t.Errorf("layer 2 weight variance %v, want %v", m2, want)
	}
	for _, v := range theta[n.bOff[2] : n.bOff[2]+500] {
		if v != 0 {
			t.Fatal("biases are not zero at initialization")
		}
	}
	if err := s.CheckTheta(theta[:10]); err == nil || !strings.Contains(err.Error(), "need 503001") {
		t.Errorf("CheckTheta on a short θ: %v", err)
	}
}

func TestSolutionError(t *testing.T) {
	s := mustSetup(t, "quadratic", nil)
	// θ* = (√(1+√2)... ) is not representable; the fit of (1, x, x²) to
	// πx²+eˣ+√2 is not exact, but θ = (√(1+√2), 1, √(π+1/2)) is close: the
	// error must be the Taylor remainder of eˣ beyond second order.
	theta := []float64{math.Sqrt(1 + math.Sqrt2), 1, math.Sqrt(math.Pi + 0.5)}
	x := []float64{-1, -0.5, 0, 0.5, 1}
	maxAbs, _, ok := s.SolutionError(theta, x)
	if !ok {
		t.Fatal("quadratic has a known truth")
	}
	// |eˣ − (1 + x + x²/2)| at x = ±1 is at most e − 2.5.
	if want := math.E - 2.5; math.Abs(maxAbs-want) > 1e-12 {
		t.Errorf("max error %v, want %v", maxAbs, want)
	}
	q := mustSetup(t, "qtensor", []int{3, 4, 2})
	if _, _, ok := q.SolutionError(q.InitTheta(1), []float64{0, 0, 0, 0.5, 0.5, 1}); !ok {
		t.Error("qtensor is measured against its finite-difference reference")
	}
	q.Problem.Exact = nil
	if _, _, ok := q.SolutionError(nil, nil); ok {
		t.Error("a problem without a solution reported an error")
	}
}

// Figures name what a problem's solution is measured against.
func TestEveryExactIsNamed(t *testing.T) {
	for _, name := range Names() {
		p, err := Lookup(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Exact != nil && p.Truth == "" {
			t.Errorf("%s has an Exact but no Truth to name it", name)
		}
	}
}
