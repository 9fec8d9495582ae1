package model

import (
	"math"
	"testing"
)

// mode is sin(kπ(v+2)/4), a Dirichlet eigenfunction on (−2, 2).
func mode(k int, v float64) float64 { return math.Sin(float64(k) * math.Pi * (v + 2) / 4) }

// Without the cubic term the scheme maps each grid mode to a multiple of
// itself: its values must be exactly the discrete solution, and approach the
// continuous one at second order in h.
func TestQTensorReferenceLinearModes(t *testing.T) {
	const L, a = 0.8, -0.2
	q0 := func(x, y float64) (float64, float64) {
		return 0.3 * mode(1, x) * mode(1, y), 0.2 * mode(2, x) * mode(1, y)
	}
	var prevErr float64
	for _, n := range []int{20, 40, 80} {
		r, err := SolveQTensor(L, a, 0, q0, QTensorReferenceOptions{N: n, Frame: 0.25, T: 1})
		if err != nil {
			t.Fatal(err)
		}
		h := r.H
		steps := math.Round(1 / r.Dt)
		// The 5-point Laplacian's eigenvalue of mode k: −(4/h²) sin²(kπh/8).
		lam := func(k float64) float64 { return 4 / (h * h) * math.Pow(math.Sin(k*math.Pi*h/8), 2) }
		g1 := math.Pow(1-r.Dt*(L*(lam(1)+lam(1))+a), steps)
		g2 := math.Pow(1-r.Dt*(L*(lam(2)+lam(1))+a), steps)
		c1 := math.Exp(-(L*(math.Pi*math.Pi/16)*2 + a))
		c2 := math.Exp(-(L*(math.Pi*math.Pi/16)*5 + a))
		var maxErr float64
		for j := 0; j <= n; j++ {
			for i := 0; i <= n; i++ {
				x, y := -2+float64(i)*h, -2+float64(j)*h
				q1, q2 := r.At(x, y, 1)
				w1, w2 := q0(x, y)
				if d := math.Max(math.Abs(q1-w1*g1), math.Abs(q2-w2*g2)); d > 1e-14 {
					t.Fatalf("N=%d at (%g, %g): off the discrete solution by %g", n, x, y, d)
				}
				maxErr = math.Max(maxErr, math.Max(math.Abs(q1-w1*c1), math.Abs(q2-w2*c2)))
			}
		}
		if prevErr > 0 {
			if ratio := prevErr / maxErr; ratio < 3.5 || ratio > 4.5 {
				t.Errorf("N=%d: error %g, %.2f times smaller than at N/2; second order gives 4", n, maxErr, ratio)
			}
		}
		prevErr = maxErr
	}
}

// With the paper's initial condition and the default constants, halving h
// shrinks the change at t = 0.4 and t = 2 about fourfold (the solution
// converges at second order), and the default grid's solution is within
// 10⁻³ of the limit there.
func TestQTensorReferenceConverges(t *testing.T) {
	// Frames of 0.2 make the time step h²/5 on every grid (as the default
	// grid's), so the time and space errors keep their proportion.
	var refs []*QTensorReference
	for _, n := range []int{40, 80, 160} {
		r, err := SolveQTensor(qtensorL, qtensorA, qtensorC, QTensorInitial, QTensorReferenceOptions{N: n, Frame: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	for _, tt := range []float64{0.4, 2} {
		var diff [2]float64
		for k := range diff {
			for j := 0; j <= 20; j++ {
				for i := 0; i <= 20; i++ {
					x, y := -2+0.2*float64(i), -2+0.2*float64(j)
					a1, a2 := refs[k].At(x, y, tt)
					b1, b2 := refs[k+1].At(x, y, tt)
					diff[k] = math.Max(diff[k], math.Max(math.Abs(a1-b1), math.Abs(a2-b2)))
				}
			}
		}
		ratio := diff[0] / diff[1]
		t.Logf("t=%g: max change 40→80 %.3g, 80→160 %.3g (ratio %.2f)", tt, diff[0], diff[1], ratio)
		if ratio < 3 || ratio > 5 {
			t.Errorf("t=%g: refinement ratio %.2f, want about 4 for a second-order scheme", tt, ratio)
		}
		// Richardson: the error at N=80 is about a third of its change
		// from N=40, and the default grid (N=80) has the same time step.
		if e := diff[0] / 3; e > 1e-3 {
			t.Errorf("t=%g: estimated error of the default grid %.3g, want below 1e-3", tt, e)
		}
	}
}

// The reference holds the boundary at zero, reads grid nodes at frame times
// exactly, and the problem's Exact gives the initial condition itself at
// t = 0 and the reference after.
func TestQTensorReferenceReadBack(t *testing.T) {
	r, err := SolveQTensor(qtensorL, qtensorA, qtensorC, QTensorInitial, QTensorReferenceOptions{N: 20, T: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][3]float64{{-2, 0.3, 0.1}, {2, -1, 0.5}, {0.7, -2, 0.25}, {1, 2, 0.4}} {
		if q1, q2 := r.At(p[0], p[1], p[2]); q1 != 0 || q2 != 0 {
			t.Errorf("at the boundary point %v: q = (%g, %g), want 0", p, q1, q2)
		}
	}
	m := r.N + 1
	k, i, j := 4, 7, 12 // frame 4 is t = 0.1
	f := r.frames[k]
	q1, q2 := r.At(-2+float64(i)*r.H, -2+float64(j)*r.H, 0.1)
	if q1 != f[2*(j*m+i)] || q2 != f[2*(j*m+i)+1] {
		t.Errorf("node (%d, %d) at t = 0.1 reads (%g, %g), stored (%g, %g)", i, j, q1, q2, f[2*(j*m+i)], f[2*(j*m+i)+1])
	}
	// Halfway between frames and nodes: the average of the neighbours.
	x, y := -2+(float64(i)+0.5)*r.H, -2+float64(j)*r.H
	got, _ := r.At(x, y, 0.1125)
	var want float64
	for _, kk := range []int{4, 5} {
		want += (r.frames[kk][2*(j*m+i)] + r.frames[kk][2*(j*m+i+1)]) / 4
	}
	if math.Abs(got-want) > 1e-15 {
		t.Errorf("interpolated %g, want %g", got, want)
	}

	p := mustSetup(t, "qtensor", nil).Problem
	for _, x := range [][3]float64{{0.3, -0.8, 0}, {1.9, 1.1, 0}} {
		var u [2]float64
		p.Exact(x[:], u[:])
		w1, w2 := QTensorInitial(x[0], x[1])
		if u[0] != w1 || u[1] != w2 {
			t.Errorf("Exact at t = 0 %v: %v, want the initial condition (%g, %g)", x, u, w1, w2)
		}
	}
	def, err := SolveQTensor(qtensorL, qtensorA, qtensorC, QTensorInitial, QTensorReferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var u [2]float64
	p.Exact([]float64{0.4, -1.2, 1.3}, u[:])
	if w1, w2 := def.At(0.4, -1.2, 1.3); u[0] != w1 || u[1] != w2 {
		t.Errorf("Exact at t = 1.3: %v, want the default reference's (%g, %g)", u, w1, w2)
	}
}

func TestQTensorReferenceRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		L   float64
		opt QTensorReferenceOptions
	}{{0, QTensorReferenceOptions{}}, {1, QTensorReferenceOptions{N: 1}}, {1, QTensorReferenceOptions{Frame: -1}}} {
		if _, err := SolveQTensor(tc.L, -0.2, 1, QTensorInitial, tc.opt); err == nil {
			t.Errorf("L=%v %+v: no error", tc.L, tc.opt)
		}
	}
}

func BenchmarkQTensorReference(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := SolveQTensor(qtensorL, qtensorA, qtensorC, QTensorInitial, QTensorReferenceOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// A strong nematic bulk (a = −50, c = 50) takes the step from the bulk
// terms, not the diffusion, and drives the centre to the uniform
// equilibrium q1² + q2² = −a/(2c) = ½ within a few relaxation times 1/|a|.
func TestQTensorReferenceStrongBulk(t *testing.T) {
	r, err := SolveQTensor(1, -50, 50, QTensorInitial, QTensorReferenceOptions{N: 20, T: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if want := 0.1 / 150; r.Dt > want {
		t.Errorf("step %g, want at most 0.1/(|a| + 2c) = %g", r.Dt, want)
	}
	q1, q2 := r.At(0, 0, 0.5)
	if m := q1*q1 + q2*q2; math.Abs(m-0.5) > 1e-3 {
		t.Errorf("q1² + q2² at the centre = %g, want the equilibrium 0.5", m)
	}
}
