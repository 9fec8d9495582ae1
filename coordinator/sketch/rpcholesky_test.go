package sketch

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// psdWithSpectrum returns K = Q diag(lambda) Qᵀ (n×n) with Q a random
// orthogonal matrix from seed.
func psdWithSpectrum(lambda []float64, seed uint64) []float64 {
	n := len(lambda)
	r := rand.New(rand.NewPCG(seed, 1))
	a := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			a.Set(i, j, r.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(a)
	var q mat.Dense
	qr.QTo(&q)
	K := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			var s float64
			for k, l := range lambda {
				s += q.At(i, k) * l * q.At(j, k)
			}
			K[i*n+j], K[j*n+i] = s, s
		}
	}
	return K
}

// denseColumns serves columns of a dense K and counts the calls.
type denseColumns struct {
	K     []float64
	n     int
	calls int
	cols  int
}

func (c *denseColumns) columns(idx []int, dst []float64) error {
	c.calls++
	c.cols += len(idx)
	for q, j := range idx {
		for i := 0; i < c.n; i++ {
			dst[q*c.n+i] = c.K[i*c.n+j]
		}
	}
	return nil
}

func diagOf(K []float64, n int) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = K[i*n+i]
	}
	return d
}

// traceError is Tr(K − F Fᵀ) computed from K and F directly.
func traceError(K []float64, f *CholeskyFactor) float64 {
	n, r := f.N, f.Rank
	var s float64
	for i := 0; i < n; i++ {
		v := K[i*n+i]
		for k := 0; k < r; k++ {
			v -= f.F[i*r+k] * f.F[i*r+k]
		}
		s += v
	}
	return s
}

func maxResidual(K []float64, f *CholeskyFactor) float64 {
	n, r := f.N, f.Rank
	var m float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v := K[i*n+j]
			for k := 0; k < r; k++ {
				v -= f.F[i*r+k] * f.F[j*r+k]
			}
			m = math.Max(m, math.Abs(v))
		}
	}
	return m
}

// At rank ≥ the true rank the factor is K to rounding, with exactly the
// true rank's pivots, whether the stopping rule or the rounding floor ends
// it; its eigenvalues are K's nonzero ones.
func TestRPCholeskyExactAtTrueRank(t *testing.T) {
	const n, rank = 80, 7
	lambda := make([]float64, n)
	for i := 0; i < rank; i++ {
		lambda[i] = math.Pow(10, -float64(i)) // spread over 6 decades
	}
	K := psdWithSpectrum(lambda, 3)
	scale := 1.0
	for _, tc := range []struct {
		name  string
		block int
		tol   float64
	}{{"one pivot per round", 1, 0}, {"block 8, no tolerance", 8, 0}, {"block 5, tolerance", 5, 1e-13}, {"block 40", 40, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			dc := &denseColumns{K: K, n: n}
			f, err := RPCholesky(diagOf(K, n), dc.columns, RPCholeskyOptions{MaxRank: 30, Block: tc.block, Tol: tc.tol, Seed: 11})
			if err != nil {
				t.Fatal(err)
			}
			if f.Rank != rank {
				t.Fatalf("rank %d, want the true rank %d (pivots %v)", f.Rank, rank, f.Pivots)
			}
			if m := maxResidual(K, f); m > 1e-13*scale {
				t.Errorf("max |K − F Fᵀ| = %.2e", m)
			}
			if f.ResidualTrace > 1e-12 || !f.Exhausted {
				t.Errorf("residual trace %v, exhausted %v: want rounding level", f.ResidualTrace, f.Exhausted)
			}
			if dc.calls != f.Rounds || dc.cols != f.Evaluated {
				t.Errorf("column calls %d/%d, the factor reports %d/%d", dc.calls, dc.cols, f.Rounds, f.Evaluated)
			}
			ev, err := f.Eigenvalues()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < rank; i++ {
				if math.Abs(ev[i]-lambda[i]) > 1e-9*lambda[i] {
					t.Errorf("eigenvalue %d: %v, want %v", i, ev[i], lambda[i])
				}
			}
			t.Logf("%d rounds, %d columns evaluated for rank %d", f.Rounds, f.Evaluated, f.Rank)
		})
	}
}

// rpcBound is Chen, Epperly, Tropp & Webber's bound on the expected trace
// error of k RPCholesky pivots: E Tr(K − F Fᵀ) ≤ (1+ε) Tr(K − ⟦K⟧_r)
// whenever k ≥ r/ε + r·log(1/(εη)), η = Tr(K − ⟦K⟧_r)/Tr K; the best r and
// the smallest ε allowed for it (the logarithm taken as at least 0, which
// only asks for more columns).
func rpcBound(lambda []float64, k int) float64 {
	var tr float64
	for _, l := range lambda {
		tr += l
	}
	best := tr
	tail := tr
	for r := 1; r < k && r < len(lambda); r++ {
		tail -= lambda[r-1]
		if tail <= 0 {
			return 0
		}
		eta := tail / tr
		need := func(eps float64) float64 {
			return float64(r)/eps + float64(r)*math.Max(0, math.Log(1/(eps*eta)))
		}
		lo, hi := 1e-12, 1e12
		if need(hi) > float64(k) {
			continue
		}
		for i := 0; i < 200; i++ {
			mid := math.Sqrt(lo * hi)
			if need(mid) <= float64(k) {
				hi = mid
			} else {
				lo = mid
			}
		}
		best = math.Min(best, (1+hi)*tail)
	}
	return best
}

// On decaying spectra the mean trace error over independent seeds stays
// below the paper's bound at every k, and it falls as k grows, in blocks
// of any size.
func TestRPCholeskyTraceErrorBound(t *testing.T) {
	const n, seeds = 200, 24
	spectra := map[string][]float64{}
	pow, exp := make([]float64, n), make([]float64, n)
	for i := range pow {
		pow[i] = math.Pow(float64(i+1), -2)
		exp[i] = math.Pow(0.8, float64(i))
	}
	spectra["power i^-2"], spectra["exponential 0.8^i"] = pow, exp
	for name, lambda := range spectra {
		K := psdWithSpectrum(lambda, 5)
		diag := diagOf(K, n)
		for _, block := range []int{1, 10} {
			prev := math.Inf(1)
			for _, k := range []int{5, 10, 20, 40, 80} {
				var mean float64
				for s := 0; s < seeds; s++ {
					dc := &denseColumns{K: K, n: n}
					f, err := RPCholesky(diag, dc.columns, RPCholeskyOptions{MaxRank: k, Block: block, Seed: uint64(100 + s)})
					if err != nil {
						t.Fatal(err)
					}
					if f.Rank != k {
						t.Fatalf("%s: rank %d, want %d", name, f.Rank, k)
					}
					te := traceError(K, f)
					if math.Abs(te-f.ResidualTrace) > 1e-10*(1+te) {
						t.Errorf("%s k=%d: residual trace %v, Tr(K − F Fᵀ) %v", name, k, f.ResidualTrace, te)
					}
					mean += te / seeds
				}
				bound := rpcBound(lambda, k)
				var best float64
				for _, l := range lambda[k:] {
					best += l
				}
				t.Logf("%s, block %d, k=%d: mean trace error %.3e, bound %.3e, best rank-k %.3e", name, block, k, mean, bound, best)
				if mean > bound {
					t.Errorf("%s, block %d, k=%d: mean trace error %.3e over the bound %.3e", name, block, k, mean, bound)
				}
				if mean < best*(1-1e-9) {
					t.Errorf("%s k=%d: trace error %.3e below the best rank-k error %.3e", name, k, mean, best)
				}
				if mean >= prev {
					t.Errorf("%s, block %d: trace error did not fall from %.3e at k=%d", name, block, prev, k)
				}
				prev = mean
			}
		}
	}
}

// Same seed, same bits; another seed, other pivots. The stopping rule on
// the residual trace holds at the rank it stops at.
func TestRPCholeskyReproducibleAndStops(t *testing.T) {
	const n = 120
	lambda := make([]float64, n)
	for i := range lambda {
		lambda[i] = math.Exp(-0.5 * float64(i))
	}
	K := psdWithSpectrum(lambda, 9)
	run := func(seed uint64, tol float64) *CholeskyFactor {
		dc := &denseColumns{K: K, n: n}
		f, err := RPCholesky(diagOf(K, n), dc.columns, RPCholeskyOptions{MaxRank: n, Block: 12, Tol: tol, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := run(7, 1e-8), run(7, 1e-8)
	if a.Rank != b.Rank || len(a.F) != len(b.F) {
		t.Fatalf("same seed, ranks %d and %d", a.Rank, b.Rank)
	}
	for i := range a.F {
		if math.Float64bits(a.F[i]) != math.Float64bits(b.F[i]) {
			t.Fatalf("same seed, F differs at %d", i)
		}
	}
	c := run(8, 1e-8)
	same := len(c.Pivots) == len(a.Pivots)
	for i := 0; same && i < len(c.Pivots); i++ {
		same = c.Pivots[i] == a.Pivots[i]
	}
	if same {
		t.Error("seeds 7 and 8 chose the same pivots")
	}
	if a.ResidualTrace > 1e-8*a.Trace {
		t.Errorf("stopped at rank %d with residual trace %.3e > 1e-8·Tr K", a.Rank, a.ResidualTrace)
	}
	if te := traceError(K, a); te > 1e-8*a.Trace {
		t.Errorf("Tr(K − F Fᵀ) = %.3e > 1e-8·Tr K", te)
	}
	// Its top eigenvalues are K's to the stopping tolerance.
	ev, err := a.Eigenvalues()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float64(nil), lambda...)
	sort.Sort(sort.Reverse(sort.Float64Slice(want)))
	for i := 0; i < 10; i++ {
		if math.Abs(ev[i]-want[i]) > 1e-8*want[0] {
			t.Errorf("eigenvalue %d: %v, want %v", i, ev[i], want[i])
		}
	}
	t.Logf("tolerance 1e-8: rank %d in %d rounds, %d columns evaluated", a.Rank, a.Rounds, a.Evaluated)
}

func TestRPCholeskyBadInput(t *testing.T) {
	cols := func(idx []int, dst []float64) error { return nil }
	for name, tc := range map[string]struct {
		diag []float64
		opt  RPCholeskyOptions
	}{
		"empty":    {nil, RPCholeskyOptions{MaxRank: 1}},
		"rank 0":   {[]float64{1}, RPCholeskyOptions{}},
		"NaN":      {[]float64{1, math.NaN()}, RPCholeskyOptions{MaxRank: 1}},
		"negative": {[]float64{1}, RPCholeskyOptions{MaxRank: 1, Tol: -1}},
	} {
		if _, err := RPCholesky(tc.diag, cols, tc.opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A zero matrix has nothing to factor.
	f, err := RPCholesky([]float64{0, 0, 0}, cols, RPCholeskyOptions{MaxRank: 2})
	if err != nil || f.Rank != 0 || !f.Exhausted {
		t.Errorf("zero matrix: %+v, %v", f, err)
	}
}
