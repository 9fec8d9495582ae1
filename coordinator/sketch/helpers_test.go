package sketch

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// testKernel is a PSD n×n matrix with a chosen spectrum, K = U diag(eig) Uᵀ
// with U a random orthogonal matrix.
type testKernel struct {
	n   int
	k   []float64 // row-major
	eig []float64 // descending
}

func newTestKernel(t *testing.T, rng *rand.Rand, eig []float64) *testKernel {
	t.Helper()
	n := len(eig)
	u := randomOrthogonal(t, rng, n)
	k := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			var v float64
			for m, l := range eig {
				v += u[i*n+m] * l * u[j*n+m]
			}
			k[i*n+j], k[j*n+i] = v, v
		}
	}
	return &testKernel{n: n, k: k, eig: eig}
}

func randomOrthogonal(t *testing.T, rng *rand.Rand, n int) []float64 {
	t.Helper()
	a := mat.NewDense(n, n, gaussian(rng, n*n))
	var qr mat.QR
	qr.Factorize(a)
	var q mat.Dense
	qr.QTo(&q)
	return append([]float64(nil), q.RawMatrix().Data...)
}

func gaussian(rng *rand.Rand, m int) []float64 {
	g := make([]float64, m)
	for i := range g {
		g[i] = rng.NormFloat64()
	}
	return g
}

// sketch returns a Gaussian Ω (n×s) and Y = KΩ.
func (tk *testKernel) sketch(rng *rand.Rand, s int) (omega, y []float64) {
	omega = gaussian(rng, tk.n*s)
	return omega, tk.apply(omega, s)
}

// apply returns K X for X (n×s).
func (tk *testKernel) apply(x []float64, s int) []float64 {
	var y mat.Dense
	y.Mul(mat.NewDense(tk.n, tk.n, tk.k), mat.NewDense(tk.n, s, x))
	return append([]float64(nil), y.RawMatrix().Data...)
}

func (tk *testKernel) trace() float64 {
	var t float64
	for i := 0; i < tk.n; i++ {
		t += tk.k[i*tk.n+i]
	}
	return t
}

func (tk *testKernel) frobenius() float64 { return frobenius(tk.k) }

// dense returns K̂ = U diag(Λ) Uᵀ as an n×n matrix.
func (ny *Nystrom) dense() []float64 {
	n, r := ny.N, ny.Rank
	k := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var v float64
			for m := 0; m < r; m++ {
				v += ny.U[i*r+m] * ny.Lambda[m] * ny.U[j*r+m]
			}
			k[i*n+j] = v
		}
	}
	return k
}

func diff(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

func geometric(n int, ratio float64) []float64 {
	e := make([]float64, n)
	for i := range e {
		e[i] = math.Pow(ratio, float64(i))
	}
	return e
}

func powerLaw(n int, p float64) []float64 {
	e := make([]float64, n)
	for i := range e {
		e[i] = math.Pow(float64(i+1), -p)
	}
	return e
}

func lowRank(n int, top ...float64) []float64 {
	e := make([]float64, n)
	copy(e, top)
	return e
}

func meanStd(x []float64) (mean, std float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(x)-1))
}
