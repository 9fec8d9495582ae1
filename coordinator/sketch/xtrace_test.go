package sketch

import (
	"math"
	"math/rand/v2"
	"testing"
)

// blockTraces returns the exact traces of K's diagonal blocks.
func (tk *testKernel) blockTraces(sizes []int) []float64 {
	tr := make([]float64, len(sizes))
	row := 0
	for b, m := range sizes {
		for i := row; i < row+m; i++ {
			tr[b] += tk.k[i*tk.n+i]
		}
		row += m
	}
	return tr
}

// With rank K < s every leave-one-out approximation is K itself and the
// estimates are exact; with rank K < s − 1 so are the jackknife's
// leave-two-out ones, and the standard error is zero (to 1e-6 of the
// trace: at s = rank + 2 the leave-two-out cores are nearly singular and
// amplify rounding).
func TestXNysTraceExactBelowRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	tk := newTestKernel(t, rng, lowRank(50, 7, 3, 1, 0.4, 0.1))
	sizes := []int{10, 0, 25, 15}
	want := tk.blockTraces(sizes)
	for _, s := range []int{6, 7, 12} {
		omega, y := tk.sketch(rng, s)
		e, err := XNysBlockTraces(omega, y, tk.n, s, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(e.Trace()-tk.trace()) > 1e-10*tk.trace() {
			t.Errorf("s = %d: trace %.15g, want %.15g", s, e.Trace(), tk.trace())
		}
		if s > 6 && e.TraceSE() > 1e-6*tk.trace() {
			t.Errorf("s = %d: standard error %g, want 0", s, e.TraceSE())
		}
		for b := range sizes {
			if math.Abs(e.Traces[b]-want[b]) > 1e-10*tk.trace() {
				t.Errorf("s = %d: block %d trace %.15g, want %.15g", s, b, e.Traces[b], want[b])
			}
		}
		d := make([]float64, tk.n)
		if err := XNysDiagonal(omega, y, tk.n, s, d); err != nil {
			t.Fatal(err)
		}
		for i, v := range d {
			if math.Abs(v-tk.k[i*tk.n+i]) > 1e-10*tk.trace() {
				t.Errorf("s = %d: diagonal %d = %g, want %g", s, i, v, tk.k[i*tk.n+i])
			}
		}
		tr, se, err := XNysTrace(omega, y, tk.n, s)
		if err != nil || math.Abs(tr-e.Trace()) > 1e-12*tr || math.Abs(se-e.TraceSE()) > 1e-6*se+1e-12*tr {
			t.Errorf("XNysTrace = %v ± %v (%v), want the block estimate's %v ± %v", tr, se, err, e.Trace(), e.TraceSE())
		}
	}
}

// More probes than live rows, repeated probes and masked rows: Ω is
// rank-deficient, and the estimate is the exact trace of D K D.
func TestXNysTraceRankDeficient(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	n := 20
	tk := newTestKernel(t, rng, geometric(n, 0.5))
	masked := map[int]bool{3: true, 11: true}
	s := 25
	omega := gaussian(rng, n*s)
	for i := range masked {
		clear(omega[i*s : (i+1)*s])
	}
	for i := 0; i < n; i++ {
		omega[i*s+7] = omega[i*s+1]
	}
	y := tk.apply(omega, s)
	var want float64
	for i := 0; i < n; i++ {
		if !masked[i] {
			want += tk.k[i*n+i]
		}
	}
	tr, se, err := XNysTrace(omega, y, n, s)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(tr-want) > 1e-10*want || se > 1e-10*want {
		t.Errorf("trace %.15g ± %g, want %.15g ± 0", tr, se, want)
	}
}

// xnysRun is one estimate's block traces, their covariance and the
// delta-method weights λ_b = Tr K/Tr K_bb with their standard errors.
type xnysRun struct {
	trace, traceSE   float64
	blocks, blockSE  []float64
	lambda, lambdaSE []float64
}

func xnysRuns(t *testing.T, tk *testKernel, rng *rand.Rand, s, M int, sizes []int, masked map[int]bool) []xnysRun {
	t.Helper()
	runs := make([]xnysRun, M)
	B := len(sizes)
	for m := range runs {
		omega := gaussian(rng, tk.n*s)
		for i := range masked {
			clear(omega[i*s : (i+1)*s])
		}
		y := tk.apply(omega, s)
		e, err := XNysBlockTraces(omega, y, tk.n, s, sizes)
		if err != nil {
			t.Fatal(err)
		}
		r := xnysRun{trace: e.Trace(), traceSE: e.TraceSE()}
		T := e.Trace()
		for b := 0; b < B; b++ {
			r.blocks = append(r.blocks, e.Traces[b])
			r.blockSE = append(r.blockSE, e.SE(b))
			// ∂λ_b/∂T_c = 1/T_b − [b = c]·T/T_b².
			grad := make([]float64, B)
			for c := range grad {
				grad[c] = 1 / e.Traces[b]
			}
			grad[b] -= T / (e.Traces[b] * e.Traces[b])
			var v float64
			for c := 0; c < B; c++ {
				for d := 0; d < B; d++ {
					v += grad[c] * e.Cov[c*B+d] * grad[d]
				}
			}
			r.lambda = append(r.lambda, T/e.Traces[b])
			r.lambdaSE = append(r.lambdaSE, math.Sqrt(v))
		}
		runs[m] = r
	}
	return runs
}

// The estimates are unbiased: over 300 independent sketches, the mean
// trace and block traces are within four standard errors of the mean of
// the exact values, also with masked rows (then of D K D's).
func TestXNysTraceUnbiased(t *testing.T) {
	sizes := []int{30, 50, 20}
	for name, masked := range map[string]map[int]bool{"": nil, "masked rows": {0: true, 44: true, 99: true}} {
		rng := rand.New(rand.NewPCG(25, 26))
		tk := newTestKernel(t, rng, geometric(100, 0.85))
		if masked != nil {
			for i := 0; i < tk.n; i++ {
				for j := 0; j < tk.n; j++ {
					if masked[i] || masked[j] {
						tk.k[i*tk.n+j] = 0
					}
				}
			}
		}
		want := tk.blockTraces(sizes)
		const M = 300
		runs := xnysRuns(t, tk, rng, 10, M, sizes, masked)
		for b := -1; b < len(sizes); b++ {
			x := make([]float64, M)
			w := tk.trace()
			for m, r := range runs {
				if b < 0 {
					x[m] = r.trace
				} else {
					x[m], w = r.blocks[b], want[b]
				}
			}
			mean, std := meanStd(x)
			z := (mean - w) / (std / math.Sqrt(M))
			t.Logf("%s block %d: mean %.6g, exact %.6g, z = %.2f", name, b, mean, w, z)
			if math.Abs(z) > 4 {
				t.Errorf("%s block %d: mean %.6g is %.1f standard errors from the exact %.6g", name, b, mean, z, w)
			}
		}
	}
}

// The reported standard errors are honest and conservative: their root
// mean square over 300 independent sketches is between 0.9 and 3 times
// the spread of the estimates, for the trace, the block traces and the
// delta-method weights (which use the estimated covariance between
// blocks). Measured: 1.4–2.7. The paper's error estimate (SampleCov, the
// per-probe estimates' spread over √s) is too small by up to a factor of
// two here (0.47–0.87), which is why Cov is the jackknife.
func TestXNysTraceErrorEstimate(t *testing.T) {
	sizes := []int{30, 50, 20}
	for _, c := range []struct {
		name string
		eig  []float64
		s    int
	}{
		{"exponential 0.85^j, s = 10", geometric(100, 0.85), 10},
		{"exponential 0.85^j, s = 30", geometric(100, 0.85), 30},
		{"power law j^-2, s = 20", powerLaw(100, 2), 20},
	} {
		rng := rand.New(rand.NewPCG(27, 28))
		tk := newTestKernel(t, rng, c.eig)
		const M = 300
		runs := xnysRuns(t, tk, rng, c.s, M, sizes, nil)
		check := func(what string, est, se func(r xnysRun) float64) {
			x := make([]float64, M)
			var ms float64
			for m, r := range runs {
				x[m] = est(r)
				ms += se(r) * se(r) / M
			}
			_, std := meanStd(x)
			ratio := math.Sqrt(ms) / std
			t.Logf("%s, %s: reported SE %.3g, spread %.3g, ratio %.2f", c.name, what, math.Sqrt(ms), std, ratio)
			if ratio < 0.9 || ratio > 3 {
				t.Errorf("%s, %s: reported SE / spread = %.2f, want within [0.9, 3]", c.name, what, ratio)
			}
		}
		check("trace", func(r xnysRun) float64 { return r.trace }, func(r xnysRun) float64 { return r.traceSE })
		for b := range sizes {
			check("block "+string(rune('0'+b)), func(r xnysRun) float64 { return r.blocks[b] }, func(r xnysRun) float64 { return r.blockSE[b] })
			check("λ "+string(rune('0'+b)), func(r xnysRun) float64 { return r.lambda[b] }, func(r xnysRun) float64 { return r.lambdaSE[b] })
		}
	}
}

func TestXNysTraceBadInput(t *testing.T) {
	omega := []float64{1, 2, 3, 4, 5, 6}
	if _, err := XNysBlockTraces(omega, omega, 3, 2, []int{1, 1}); err == nil {
		t.Error("block sizes short of n: no error")
	}
	if _, err := XNysBlockTraces(omega, omega, 3, 2, []int{4, -1}); err == nil {
		t.Error("negative block size: no error")
	}
	if _, _, err := XNysTrace([]float64{1, 0, 1, 0, 1, 0}, omega, 3, 2); err == nil {
		t.Error("zero probe: no error")
	}
	if err := XNysDiagonal(omega, omega, 3, 2, make([]float64, 2)); err == nil {
		t.Error("short dst: no error")
	}
}
