package sketch

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// At s ≥ rank K the Nyström approximation is K itself.
func TestNystromExactAtFullRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tk := newTestKernel(t, rng, lowRank(60, 10, 5, 2, 1, 0.5))
	for _, s := range []int{5, 8, 10, 20} {
		omega, y := tk.sketch(rng, s)
		ny, err := NewNystrom(omega, y, tk.n, s)
		if err != nil {
			t.Fatal(err)
		}
		if ny.Rank != 5 {
			t.Errorf("s = %d: rank %d, want 5", s, ny.Rank)
		}
		if rel := frobenius(diff(ny.dense(), tk.k)) / tk.frobenius(); rel > 1e-10 {
			t.Errorf("s = %d: ‖K̂ − K‖_F/‖K‖_F = %.3g, want ≤ 1e-10", s, rel)
		}
		for m, l := range ny.Lambda {
			if math.Abs(l-tk.eig[m]) > 1e-10*tk.eig[0] {
				t.Errorf("s = %d: λ_%d = %.15g, want %g", s, m+1, l, tk.eig[m])
			}
		}
		// U is orthonormal.
		u := mat.NewDense(tk.n, ny.Rank, ny.U)
		var utu mat.Dense
		utu.Mul(u.T(), u)
		if !mat.EqualApprox(&utu, eye(ny.Rank), 1e-12) {
			t.Errorf("s = %d: UᵀU is not I", s)
		}
	}
}

// Diagonal and MulVec agree with the dense U diag(Λ) Uᵀ.
func TestNystromDiagonalMulVec(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tk := newTestKernel(t, rng, geometric(40, 0.6))
	omega, y := tk.sketch(rng, 8)
	ny, err := NewNystrom(omega, y, tk.n, 8)
	if err != nil {
		t.Fatal(err)
	}
	kh := ny.dense()
	d := make([]float64, tk.n)
	ny.Diagonal(d)
	v := gaussian(rng, tk.n)
	kv := make([]float64, tk.n)
	ny.MulVec(kv, v)
	for i := 0; i < tk.n; i++ {
		if math.Abs(d[i]-kh[i*tk.n+i]) > 1e-14 {
			t.Errorf("diagonal %d: %g, want %g", i, d[i], kh[i*tk.n+i])
		}
		var want float64
		for j := 0; j < tk.n; j++ {
			want += kh[i*tk.n+j] * v[j]
		}
		if math.Abs(kv[i]-want) > 1e-13 {
			t.Errorf("K̂v[%d] = %g, want %g", i, kv[i], want)
		}
	}
}

// The expected trace-norm error of the Nyström approximation from a
// Gaussian sketch of s columns is at most (1 + r/(s−r−1))·Σ_{j>r} λ_j for
// every r ≤ s−2 (Tropp, Yurtsever, Udell & Cevher 2017, eq. 2.5; Halko,
// Martinsson & Tropp 2011). K − K̂ is PSD, so its trace norm is its trace.
// The mean over 60 seeds must be below the bound plus three of its
// standard errors.
func TestNystromErrorBound(t *testing.T) {
	spectra := map[string][]float64{
		"exponential 0.8^j": geometric(120, 0.8),
		"power law j^-2":    powerLaw(120, 2),
		"power law j^-1.5":  powerLaw(120, 1.5),
	}
	for name, eig := range spectra {
		rng := rand.New(rand.NewPCG(5, 6))
		tk := newTestKernel(t, rng, eig)
		for _, s := range []int{10, 25} {
			bound := math.Inf(1)
			for r := 0; r <= s-2; r++ {
				var tail float64
				for _, l := range eig[r:] {
					tail += l
				}
				bound = math.Min(bound, (1+float64(r)/float64(s-r-1))*tail)
			}
			const M = 60
			errs := make([]float64, M)
			for m := range errs {
				omega, y := tk.sketch(rng, s)
				ny, err := NewNystrom(omega, y, tk.n, s)
				if err != nil {
					t.Fatal(err)
				}
				var th float64
				for _, l := range ny.Lambda {
					th += l
				}
				errs[m] = tk.trace() - th
				if errs[m] < -1e-12*tk.trace() {
					t.Errorf("%s, s = %d: Tr K̂ > Tr K by %g", name, s, -errs[m])
				}
			}
			mean, std := meanStd(errs)
			t.Logf("%s, s = %d: E Tr(K − K̂) ≈ %.4g ± %.2g, bound %.4g", name, s, mean, std/math.Sqrt(M), bound)
			if mean > bound+3*std/math.Sqrt(M) {
				t.Errorf("%s, s = %d: mean error %.4g above the bound %.4g", name, s, mean, bound)
			}
		}
	}
}

// Rows where Ω is zero in every column (the probes' dropped rows) are
// outside the kernel: K̂ approximates D K D. A zero column, a repeated
// column and more probes than live rows leave Ω rank-deficient; the
// approximation is still exact at full rank.
func TestNystromMaskedAndRankDeficient(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	n := 30
	tk := newTestKernel(t, rng, lowRank(n, 4, 3, 2, 1))
	masked := map[int]bool{0: true, 7: true, 19: true, 29: true}
	dkd := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if !masked[i] && !masked[j] {
				dkd[i*n+j] = tk.k[i*n+j]
			}
		}
	}
	cases := map[string]int{"s = 8": 8, "s = 40 > live rows": 40}
	for name, s := range cases {
		omega := gaussian(rng, n*s)
		for i := range masked {
			clear(omega[i*s : (i+1)*s])
		}
		for i := 0; i < n; i++ {
			omega[i*s+2] = 0                 // a zero column
			omega[i*s+5] = omega[i*s+4] * -3 // a repeated direction
		}
		y := tk.apply(omega, s)
		ny, err := NewNystrom(omega, y, n, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rel := frobenius(diff(ny.dense(), dkd)) / frobenius(dkd); rel > 1e-10 {
			t.Errorf("%s: ‖K̂ − DKD‖_F/‖DKD‖_F = %.3g", name, rel)
		}
	}
}

// With an error E in Y (a difference quotient), ΩᵀY is unsymmetric and the
// shift rises to the error's level: eigenvalues hidden by the error are not
// kept, and ‖K̂ − K‖_F/‖K‖_F stays within 30 times ‖E‖_F/‖Y‖_F (measured:
// 4–11 times here). K has rank 12 < s, so all of the error is the columns'.
func TestNystromNoisyColumns(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	eig := lowRank(80, geometric(12, 0.3)...)
	tk := newTestKernel(t, rng, eig)
	s := 20
	for _, level := range []float64{1e-12, 1e-8, 1e-5} {
		omega, y := tk.sketch(rng, s)
		e := gaussian(rng, len(y))
		scale := level * frobenius(y) / frobenius(e)
		for i := range y {
			y[i] += scale * e[i]
		}
		ny, err := NewNystrom(omega, y, tk.n, s)
		if err != nil {
			t.Fatalf("noise %g: %v", level, err)
		}
		rel := frobenius(diff(ny.dense(), tk.k)) / tk.frobenius()
		t.Logf("‖E‖_F/‖Y‖_F = %g: rank %d, shift %.3g, ‖K̂ − K‖_F/‖K‖_F = %.3g", level, ny.Rank, ny.Shift, rel)
		if rel > 30*level {
			t.Errorf("‖E‖_F/‖Y‖_F = %g: relative error %.3g above 30 times that", level, rel)
		}
		for m, l := range ny.Lambda {
			if l < ny.Shift {
				t.Errorf("noise %g: kept λ_%d = %g below the shift %g", level, m, l, ny.Shift)
			}
		}
	}
}

// A symmetric error that makes ΩᵀY indefinite (here Y = (K − δI)Ω) fails
// the first Cholesky factorization: the shift must grow past it, and the
// result is the Nyström approximation of K − δI + νI less ν, whose
// leading eigenvalues are K's within a multiple of δ.
func TestNystromFailedCholesky(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tk := newTestKernel(t, rng, geometric(50, 0.2))
	s := 12
	omega, y := tk.sketch(rng, s)
	const delta = 1e-6
	for i := range y {
		y[i] -= delta * omega[i]
	}
	ny, err := NewNystrom(omega, y, tk.n, s)
	if err != nil {
		t.Fatal(err)
	}
	if ny.Shift < delta {
		t.Errorf("shift %g: want it raised above δ = %g", ny.Shift, delta)
	}
	for m := 0; m < 3; m++ {
		if math.Abs(ny.Lambda[m]-tk.eig[m]) > 50*delta {
			t.Errorf("λ_%d = %.12g, want %.12g within 50δ", m+1, ny.Lambda[m], tk.eig[m])
		}
	}
}

// SolveShifted is (K̂ + μI)^{-1} b by a dense solve.
func TestNystromSolveShifted(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	tk := newTestKernel(t, rng, powerLaw(50, 2))
	omega, y := tk.sketch(rng, 10)
	ny, err := NewNystrom(omega, y, tk.n, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, mu := range []float64{1e-6, 1e-2, 10} {
		a := mat.NewDense(tk.n, tk.n, ny.dense())
		for i := 0; i < tk.n; i++ {
			a.Set(i, i, a.At(i, i)+mu)
		}
		b := gaussian(rng, tk.n)
		var want mat.VecDense
		if err := want.SolveVec(a, mat.NewVecDense(tk.n, b)); err != nil {
			t.Fatal(err)
		}
		got := make([]float64, tk.n)
		ny.SolveShifted(mu, got, b)
		rel := frobenius(diff(got, want.RawVector().Data)) / frobenius(want.RawVector().Data)
		if rel > 1e-10 {
			t.Errorf("μ = %g: relative difference from the dense solve %.3g", mu, rel)
		}
	}
}

// The Nyström preconditioner of Frangella, Tropp & Udell (2023): for any
// Nyström K̂ of rank ℓ with error E = K − K̂ ⪰ 0, the preconditioned
// K + μI has condition number at most (λ̂_ℓ + μ + ‖E‖)/μ (their
// Proposition 5.3), and with a sketch of ℓ = 2⌈1.5·d_eff(μ)⌉ + 1 columns
// its expectation is below 28 (Theorem 5.1), d_eff(μ) = Tr K(K + μI)⁻¹.
// Precondition applies P⁻¹, checked against the dense matrix.
func TestNystromPreconditioner(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for name, eig := range map[string][]float64{
		"power law j^-2":     powerLaw(200, 2),
		"exponential 0.85^j": geometric(200, 0.85),
	} {
		tk := newTestKernel(t, rng, eig)
		mu := 1e-2
		var deff float64
		for _, l := range eig {
			deff += l / (l + mu)
		}
		s := 2*int(math.Ceil(1.5*deff)) + 1
		const M = 8
		var sum float64
		for m := 0; m < M; m++ {
			omega, y := tk.sketch(rng, s)
			ny, err := NewNystrom(omega, y, tk.n, s)
			if err != nil {
				t.Fatal(err)
			}
			kappa, bound := preconditionedCond(t, tk, ny, mu)
			if kappa > bound*(1+1e-8) {
				t.Errorf("%s: κ = %g above the bound (λ̂_ℓ + μ + ‖E‖)/μ = %g", name, kappa, bound)
			}
			sum += kappa
		}
		t.Logf("%s: d_eff(μ) = %.1f, ℓ = %d, mean κ = %.3g (κ(K + μI) = %.3g)", name, deff, s, sum/M, (eig[0]+mu)/(eig[len(eig)-1]+mu))
		if sum/M >= 28 {
			t.Errorf("%s: mean κ = %g, want < 28", name, sum/M)
		}
	}
}

// preconditionedCond returns κ(P^{-1/2}(K + μI)P^{-1/2}) and the bound of
// Proposition 5.3, and checks Precondition against the dense P⁻¹.
func preconditionedCond(t *testing.T, tk *testKernel, ny *Nystrom, mu float64) (kappa, bound float64) {
	t.Helper()
	n, r := tk.n, ny.Rank
	lr := ny.Lambda[r-1]
	pinv := eye(n)
	pinvHalf := eye(n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var a, b float64
			for m := 0; m < r; m++ {
				uu := ny.U[i*r+m] * ny.U[j*r+m]
				a += uu * ((lr+mu)/(ny.Lambda[m]+mu) - 1)
				b += uu * (math.Sqrt((lr+mu)/(ny.Lambda[m]+mu)) - 1)
			}
			pinv.Set(i, j, pinv.At(i, j)+a)
			pinvHalf.Set(i, j, pinvHalf.At(i, j)+b)
		}
	}
	v := gaussian(rand.New(rand.NewPCG(1, 1)), n)
	got := make([]float64, n)
	ny.Precondition(mu, got, v)
	var want mat.VecDense
	want.MulVec(pinv, mat.NewVecDense(n, v))
	if rel := frobenius(diff(got, want.RawVector().Data)) / frobenius(v); rel > 1e-12 {
		t.Errorf("Precondition differs from the dense P⁻¹ by %.3g", rel)
	}

	a := mat.NewDense(n, n, append([]float64(nil), tk.k...))
	for i := 0; i < n; i++ {
		a.Set(i, i, a.At(i, i)+mu)
	}
	var pa, pap mat.Dense
	pa.Mul(pinvHalf, a)
	pap.Mul(&pa, pinvHalf)
	ev := symEigenvalues(t, &pap, n)
	kappa = ev[n-1] / ev[0]

	e := symEigenvalues(t, mat.NewDense(n, n, diff(tk.k, ny.dense())), n)
	if e[0] < -1e-12*tk.eig[0] {
		t.Errorf("K − K̂ is not PSD: smallest eigenvalue %g", e[0])
	}
	return kappa, (lr + mu + e[n-1]) / mu
}

func symEigenvalues(t *testing.T, a *mat.Dense, n int) []float64 {
	t.Helper()
	sym := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			sym.SetSym(i, j, (a.At(i, j)+a.At(j, i))/2)
		}
	}
	var es mat.EigenSym
	if !es.Factorize(sym, false) {
		t.Fatal("eigenvalues did not converge")
	}
	return es.Values(nil)
}

func eye(n int) *mat.Dense {
	d := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		d.Set(i, i, 1)
	}
	return d
}

// Bad shapes and values are errors, not panics.
func TestNystromBadInput(t *testing.T) {
	if _, err := NewNystrom(make([]float64, 6), make([]float64, 5), 3, 2); err == nil {
		t.Error("short Y: no error")
	}
	y := make([]float64, 6)
	y[3] = math.NaN()
	if _, err := NewNystrom([]float64{1, 0, 0, 1, 1, 1}, y, 3, 2); err == nil {
		t.Error("NaN in Y: no error")
	}
	if _, err := NewNystrom(make([]float64, 6), make([]float64, 6), 3, 2); err == nil {
		t.Error("zero Ω: no error")
	}
}
