package model

import (
	"math"
	"testing"
)

// columnCases are the problems the column tests run on, with small point
// counts so that the dense K and the Jacobian route stay quick.
func columnCases(t *testing.T) []struct {
	name string
	s    *Setup
} {
	return []struct {
		name string
		s    *Setup
	}{
		{"streams", mustBind(t, streamsProblem(), Config{})},
		{"poisson1d", mustSetup(t, "poisson1d", []int{1, 12, 1})},
		{"wave", mustSetup(t, "wave", []int{2, 7, 6, 1})},
		{"qtensor", mustSetup(t, "qtensor", []int{3, 6, 5, 2})},
		{"quadratic", mustSetup(t, "quadratic", nil)},
	}
}

func smallEval(t *testing.T, s *Setup, opt Options) (Evaluator, []float64) {
	t.Helper()
	counts := make([]int, len(s.Problem.Blocks))
	for b := range counts {
		counts[b] = min(s.Problem.Blocks[b].Count, 6)
	}
	c, err := s.DrawPoints(4, 0, counts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.NewEvaluator(c, opt)
	if err != nil {
		t.Fatal(err)
	}
	theta := s.InitTheta(4)
	for i := range theta {
		theta[i] += 0.05 * math.Sin(float64(i)) // non-zero biases
	}
	r := make([]float64, ev.Layout().N)
	ev.Forward(theta, r)
	return ev, theta
}

func maxAbs(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// checkColumnsAgainst compares Columns(idx) with the dense K.
func checkColumnsAgainst(t *testing.T, ev Evaluator, K []float64, idx []int, tol float64) {
	t.Helper()
	n := ev.Layout().N
	got := make([]float64, len(idx)*n)
	for i := range got {
		got[i] = math.NaN() // Columns must overwrite everything
	}
	if err := ev.Columns(idx, got); err != nil {
		t.Fatal(err)
	}
	scale := maxAbs(K)
	for q, j := range idx {
		for i := 0; i < n; i++ {
			if d := math.Abs(got[q*n+i] - K[i*n+j]); !(d <= tol*scale) {
				t.Fatalf("column %d (request %d) row %d: %v, dense K %v (|diff|/max|K| = %.1e)", j, q, i, got[q*n+i], K[i*n+j], d/scale)
			}
		}
	}
}

// Every column equals the dense structured K to 1e-12 relative, for every
// kind of block (several streams, operators, two-component residuals, an
// empty block), in any order and with repeats; and it equals K e_i computed
// the plain way, J(Jᵀe_i): one backward and one forward-mode pass.
func TestColumnsEqualDenseNTK(t *testing.T) {
	for _, tc := range columnCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ev, _ := smallEval(t, tc.s, Options{})
			lay := ev.Layout()
			n, p := lay.N, lay.P
			K := make([]float64, n*n)
			if err := ev.NTK(K); err != nil {
				t.Fatal(err)
			}
			all := make([]int, n)
			for i := range all {
				all[i] = n - 1 - i
			}
			checkColumnsAgainst(t, ev, K, all, 1e-12)
			checkColumnsAgainst(t, ev, K, []int{n / 2, 0, n / 2, n - 1}, 1e-12)
			checkColumnsAgainst(t, ev, K, nil, 0)

			e := make([]float64, n)
			jte := make([]float64, p)
			kei := make([]float64, n)
			col := make([]float64, n)
			for _, i := range []int{0, n / 3, n - 1} {
				e[i] = 1
				ev.Backward([]Cotangent{{V: e, Dst: jte}})
				e[i] = 0
				ev.JVP(jte, kei)
				if err := ev.Columns([]int{i}, col); err != nil {
					t.Fatal(err)
				}
				if d := maxAbs(sub(col, kei)); d > 1e-12*maxAbs(kei) {
					t.Errorf("column %d: max |Columns − J(Jᵀe_i)| = %.1e of %.1e", i, d, maxAbs(kei))
				}
			}
		})
	}
}

func sub(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

// A memory limit just above the cotangents splits a request into chunks of
// two columns with the same result; below the cotangents it is an error,
// not a crash.
func TestColumnsMemoryLimit(t *testing.T) {
	s := mustSetup(t, "wave", []int{2, 7, 6, 1})
	ev, _ := smallEval(t, s, Options{})
	pe := ev.(*pinn)
	n := pe.lay.N
	K := make([]float64, n*n)
	if err := ev.NTK(K); err != nil {
		t.Fatal(err)
	}
	perCol := ColumnChunkBytes(ev, 1)
	cot := pe.cotangentBytes()

	tight, theta := smallEval(t, s, Options{MaxMemory: cot + 2*perCol})
	idx := []int{3, 1, 4, 1, 5, 9, 2, 6, n - 1}
	checkColumnsAgainst(t, tight, K, idx, 1e-12)
	_ = theta

	small, _ := smallEval(t, s, Options{MaxMemory: cot - 1})
	err := small.Columns([]int{0}, make([]float64, n))
	if err == nil {
		t.Fatal("Columns over the memory limit did not fail")
	}
	t.Log(err)
	if err := ev.Columns([]int{n}, make([]float64, n)); err == nil {
		t.Error("a column index out of range did not fail")
	}
	if err := ev.Columns([]int{0, 1}, make([]float64, n)); err == nil {
		t.Error("a short dst did not fail")
	}
}

// The kept cotangents follow the base point: after Forward at another θ,
// and after SetPoints with other points, columns are those of the new K.
func TestColumnsFollowBasePoint(t *testing.T) {
	s := mustBind(t, streamsProblem(), Config{})
	ev, theta := smallEval(t, s, Options{})
	n := ev.Layout().N
	idx := []int{0, 2, n - 1}
	col := make([]float64, len(idx)*n)
	if err := ev.Columns(idx, col); err != nil {
		t.Fatal(err)
	}
	theta2 := append([]float64(nil), theta...)
	for i := range theta2 {
		theta2[i] *= 1.1
	}
	r := make([]float64, n)
	ev.Forward(theta2, r)
	K := make([]float64, n*n)
	if err := ev.NTK(K); err != nil {
		t.Fatal(err)
	}
	checkColumnsAgainst(t, ev, K, idx, 1e-12)

	c, err := s.DrawPoints(5, 0, []int{4, 3, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.SetPoints(c); err != nil {
		t.Fatal(err)
	}
	n = ev.Layout().N
	r = make([]float64, n)
	ev.Forward(theta2, r)
	K = make([]float64, n*n)
	if err := ev.NTK(K); err != nil {
		t.Fatal(err)
	}
	checkColumnsAgainst(t, ev, K, []int{n - 1, 0, 5}, 1e-12)

	// And against an evaluator that never saw the first points.
	fresh, err := s.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fresh.Forward(theta2, r)
	Kf := make([]float64, n*n)
	if err := fresh.NTK(Kf); err != nil {
		t.Fatal(err)
	}
	checkColumnsAgainst(t, ev, Kf, []int{1, 2, 3}, 1e-12)
}

func TestKernelBytes(t *testing.T) {
	s := mustSetup(t, "wave", []int{2, 5, 1})
	c, _ := s.DrawPoints(1, 0, nil, nil)
	ev, err := s.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := int64(ev.Layout().N)
	if got := ColumnBytes(ev); got != ev.(*pinn).cotangentBytes() || got <= 0 {
		t.Errorf("ColumnBytes = %d", got)
	}
	if got := KernelBytes(ev); got <= 8*n*n {
		t.Errorf("KernelBytes = %d, want more than the n×n matrix's %d", got, 8*n*n)
	}
}

// BenchmarkWaveColumns times 16 exact columns of the wave network's K
// (n = 900) with the cotangents already kept; BenchmarkWaveCotangents the
// pass that computes them once per base point.
func BenchmarkWaveColumns(b *testing.B) {
	w := newWaveBench(b)
	idx := make([]int, 16)
	for i := range idx {
		idx[i] = i * 53
	}
	dst := make([]float64, len(idx)*w.ev.Layout().N)
	if err := w.ev.Columns(idx, dst); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.ev.Columns(idx, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWaveCotangents(b *testing.B) {
	w := newWaveBench(b)
	pe := w.ev.(*pinn)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pe.ntkAt = pe.ntkAt[:0]
		pe.cotangents()
	}
}
