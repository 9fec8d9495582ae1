package sketch

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// eps is the unit roundoff of float64 (half the machine epsilon).
const eps = 0x1p-53

// Nystrom is the stabilized Nyström approximation K̂ = U diag(Lambda) Uᵀ of a
// PSD n×n K from s probe columns Y = KΩ (Tropp, Yurtsever, Udell & Cevher
// 2017: shift ν, Cholesky of Ωᵀ(Y+νΩ), triangular solve, thin SVD, remove ν).
type Nystrom struct {
	N      int
	Rank   int       // numerical rank kept (≤ s)
	U      []float64 // N×Rank, orthonormal columns
	Lambda []float64 // Rank eigenvalues of K̂, descending, ≥ 0
	// Shift is the ν that was added to K before the factorization and
	// taken off the eigenvalues afterwards. Eigenvalues of K̂ at or below
	// it are not resolved by the sketch and are not kept.
	Shift float64
	// Asymmetry is ‖asym(QᵀY)‖_F / ‖sym(QᵀY)‖_F for an orthonormal basis Q
	// of range(Ω): zero to rounding when Y = KΩ exactly, about the relative
	// error of the columns when Y comes from a difference quotient.
	Asymmetry float64
}

// NewNystrom builds K̂ from Ω (n×s) and Y = KΩ (n×s).
//
// Ω is first replaced by an orthonormal basis Q of its range, and Y by KQ
// (through the thin SVD of Ω): the Nyström approximation depends only on
// range(Ω), and this makes a rank-deficient Ω (a zero column, fewer live
// rows than probes, repeated probes) harmless and the shift a plain
// multiple of the identity on the core. The core QᵀY is symmetrized (an
// error in Y, such as a difference quotient's, makes it unsymmetric) and
// shifted by Tropp et al.'s ν = √n·ulp(‖KQ‖_F). When its Cholesky
// factorization fails (rounding or an error in Y made it indefinite), ν
// is raised past the core's most negative eigenvalue and the
// factorization repeated. Eigenvalues of K̂ not above ν are dropped.
//
// A larger shift does not help against errors in Y: on test matrices with
// independent or quadratic (forward-difference-like) column errors, the
// error of K̂ grew with any shift above the rounding level; with it,
// ‖K̂ − K‖_F/‖K‖_F stayed within about ten times the columns' relative
// error.
func NewNystrom(omega, y []float64, n, s int) (*Nystrom, error) {
	if err := checkSketch(omega, y, n, s); err != nil {
		return nil, err
	}
	ym, _ := maskRows(omega, y, n, s)

	// Q = P_k and KQ = Y V_k S_k⁻¹ from the thin SVD Ω = P S Vᵀ.
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(n, s, omega), mat.SVDThin) {
		return nil, errors.New("nystrom: the SVD of the probe matrix did not converge")
	}
	sv := svd.Values(nil)
	k := 0
	for _, v := range sv {
		if v > float64(max(n, s))*2*eps*sv[0] {
			k++
		}
	}
	if k == 0 {
		return nil, errors.New("nystrom: the probe matrix is zero")
	}
	var pm, vm mat.Dense
	svd.UTo(&pm)
	svd.VTo(&vm)
	m := len(sv)
	q := make([]float64, n*k)
	for i := 0; i < n; i++ {
		copy(q[i*k:(i+1)*k], pm.RawMatrix().Data[i*m:i*m+k])
	}
	vk := make([]float64, s*k)
	for i := 0; i < s; i++ {
		for j := 0; j < k; j++ {
			vk[i*k+j] = vm.At(i, j) / sv[j]
		}
	}
	yq := make([]float64, n*k)
	gemm(blas.NoTrans, blas.NoTrans, 1, general(n, s, ym), general(s, k, vk), 0, general(n, k, yq))

	// The core QᵀKQ, its unsymmetric part, and the shift.
	h := make([]float64, k*k)
	gemm(blas.Trans, blas.NoTrans, 1, general(n, k, q), general(n, k, yq), 0, general(k, k, h))
	asym := symmetrize(h, k)
	nu := math.Sqrt(float64(n)) * ulp(frobenius(yq))
	if nu == 0 {
		nu = math.SmallestNonzeroFloat64
	}
	c, nu, err := shiftedCholesky(h, k, nu)
	if err != nil {
		return nil, fmt.Errorf("nystrom: %w", err)
	}

	// F = (KQ + νQ) C⁻¹, so that K̂ + ν·QQᵀ = F Fᵀ; its thin SVD gives K̂'s
	// eigenvectors, and its squared singular values minus ν its eigenvalues.
	f := yq
	for i := range f {
		f[i] += nu * q[i]
	}
	blas64.Trsm(blas.Right, blas.NoTrans, 1, upper(k, c), general(n, k, f))
	var fsvd mat.SVD
	if !fsvd.Factorize(mat.NewDense(n, k, f), mat.SVDThin) {
		return nil, errors.New("nystrom: the SVD of the Nyström factor did not converge")
	}
	sig := fsvd.Values(nil)
	ny := &Nystrom{N: n, Shift: nu, Asymmetry: asym / frobenius(h)}
	for _, v := range sig {
		if l := v*v - nu; l > nu {
			ny.Lambda = append(ny.Lambda, l)
		}
	}
	ny.Rank = len(ny.Lambda)
	var uf mat.Dense
	fsvd.UTo(&uf)
	ny.U = make([]float64, n*ny.Rank)
	w := len(sig)
	for i := 0; i < n; i++ {
		copy(ny.U[i*ny.Rank:(i+1)*ny.Rank], uf.RawMatrix().Data[i*w:i*w+ny.Rank])
	}
	return ny, nil
}

// shiftedCholesky factors the symmetric k×k core h + νI = CᵀC (C upper,
// returned row-major). When it fails, ν grows past the most negative
// eigenvalue of h and the factorization is repeated.
func shiftedCholesky(h []float64, k int, nu float64) ([]float64, float64, error) {
	a := make([]float64, k*k)
	for attempt := 0; ; attempt++ {
		copy(a, h)
		for i := 0; i < k; i++ {
			a[i*k+i] += nu
		}
		var ch mat.Cholesky
		if ch.Factorize(mat.NewSymDense(k, a)) {
			var u mat.TriDense
			ch.UTo(&u)
			c := make([]float64, k*k)
			for i := 0; i < k; i++ {
				for j := i; j < k; j++ {
					c[i*k+j] = u.At(i, j)
				}
			}
			return c, nu, nil
		}
		if attempt == 4 {
			return nil, nu, fmt.Errorf("the shifted core is not positive definite even with shift %g", nu)
		}
		var es mat.EigenSym
		if !es.Factorize(mat.NewSymDense(k, append([]float64(nil), h...)), false) {
			return nil, nu, errors.New("the eigenvalues of the core did not converge")
		}
		vals := es.Values(nil)
		nu = 2*nu + 2*math.Max(-vals[0], 0)
	}
}

// Diagonal sets dst[i] = K̂_ii.
func (ny *Nystrom) Diagonal(dst []float64) {
	ny.checkLen(dst, "dst")
	r := ny.Rank
	for i := range dst {
		var v float64
		for k, u := range ny.U[i*r : (i+1)*r] {
			v += u * u * ny.Lambda[k]
		}
		dst[i] = v
	}
}

// MulVec sets dst = K̂ v.
func (ny *Nystrom) MulVec(dst, v []float64) {
	ny.checkLen(dst, "dst")
	ny.checkLen(v, "v")
	t := ny.project(v)
	for k := range t {
		t[k] *= ny.Lambda[k]
	}
	ny.expand(0, dst, t)
}

// SolveShifted sets dst = (K̂ + μI)^{-1} b by Woodbury through the
// eigendecomposition; μ > 0; dst and b must not overlap:
// (K̂ + μI)^{-1} = I/μ + U((Λ + μI)^{-1} − I/μ)Uᵀ.
func (ny *Nystrom) SolveShifted(mu float64, dst, b []float64) {
	if !(mu > 0) {
		panic(fmt.Sprintf("sketch: SolveShifted with μ = %v, want μ > 0", mu))
	}
	ny.checkLen(dst, "dst")
	ny.checkLen(b, "b")
	t := ny.project(b)
	for k, l := range ny.Lambda {
		t[k] *= 1/(l+mu) - 1/mu
	}
	for i, v := range b {
		dst[i] = v / mu
	}
	ny.expand(1, dst, t)
}

// Precondition sets dst = P^{-1} r, the randomized Nyström preconditioner
// of Frangella, Tropp & Udell (2023) for K + μI:
// P^{-1} = (λ_r + μ) U (Λ + μI)^{-1} Uᵀ + (I − U Uᵀ).
// With rank 0 it is the identity. dst and r must not overlap.
func (ny *Nystrom) Precondition(mu float64, dst, r []float64) {
	if !(mu > 0) {
		panic(fmt.Sprintf("sketch: Precondition with μ = %v, want μ > 0", mu))
	}
	ny.checkLen(dst, "dst")
	ny.checkLen(r, "r")
	copy(dst, r)
	if ny.Rank == 0 {
		return
	}
	t := ny.project(r)
	lr := ny.Lambda[ny.Rank-1]
	for k, l := range ny.Lambda {
		t[k] *= (lr+mu)/(l+mu) - 1
	}
	ny.expand(1, dst, t)
}

// project returns Uᵀv.
func (ny *Nystrom) project(v []float64) []float64 {
	t := make([]float64, ny.Rank)
	if ny.Rank > 0 {
		blas64.Gemv(blas.Trans, 1, general(ny.N, ny.Rank, ny.U), vec(v), 0, vec(t))
	}
	return t
}

// expand sets dst = beta·dst + U t.
func (ny *Nystrom) expand(beta float64, dst, t []float64) {
	if ny.Rank == 0 {
		if beta == 0 {
			clear(dst)
		}
		return
	}
	blas64.Gemv(blas.NoTrans, 1, general(ny.N, ny.Rank, ny.U), vec(t), beta, vec(dst))
}

func (ny *Nystrom) checkLen(v []float64, name string) {
	if len(v) != ny.N {
		panic(fmt.Sprintf("sketch: len(%s) = %d, want N = %d", name, len(v), ny.N))
	}
}

// checkSketch validates the shapes and values of a sketch.
func checkSketch(omega, y []float64, n, s int) error {
	if n < 1 || s < 1 {
		return fmt.Errorf("sketch of %d×%d: want n ≥ 1 and s ≥ 1", n, s)
	}
	if len(omega) != n*s {
		return fmt.Errorf("Ω has %d values, want n·s = %d", len(omega), n*s)
	}
	if len(y) != n*s {
		return fmt.Errorf("Y has %d values, want n·s = %d", len(y), n*s)
	}
	for i := range omega {
		if math.IsNaN(omega[i]) || math.IsInf(omega[i], 0) || math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
			return fmt.Errorf("sketch value %d (row %d, column %d) is not finite", i, i/s, i%s)
		}
	}
	return nil
}

// maskRows returns a copy of y (n×s) with the rows zeroed where Ω is zero
// in every column, and whether each row is live.
func maskRows(omega, y []float64, n, s int) ([]float64, []bool) {
	ym := append([]float64(nil), y...)
	live := make([]bool, n)
	for i := 0; i < n; i++ {
		for _, v := range omega[i*s : (i+1)*s] {
			if v != 0 {
				live[i] = true
				break
			}
		}
		if !live[i] {
			clear(ym[i*s : (i+1)*s])
		}
	}
	return ym, live
}

// symmetrize replaces the k×k matrix h by (h + hᵀ)/2 and returns the
// Frobenius norm of (h − hᵀ)/2.
func symmetrize(h []float64, k int) float64 {
	var asym float64
	for i := 0; i < k; i++ {
		for j := i + 1; j < k; j++ {
			a, b := h[i*k+j], h[j*k+i]
			d := (a - b) / 2
			asym += 2 * d * d
			m := (a + b) / 2
			h[i*k+j], h[j*k+i] = m, m
		}
	}
	return math.Sqrt(asym)
}

func ulp(x float64) float64 { return math.Nextafter(x, math.Inf(1)) - x }

func frobenius(a []float64) float64 {
	return blas64.Nrm2(blas64.Vector{N: len(a), Inc: 1, Data: a})
}

func general(r, c int, data []float64) blas64.General {
	return blas64.General{Rows: r, Cols: c, Stride: c, Data: data}
}

func upper(k int, data []float64) blas64.Triangular {
	return blas64.Triangular{Uplo: blas.Upper, Diag: blas.NonUnit, N: k, Stride: k, Data: data}
}

func vec(v []float64) blas64.Vector { return blas64.Vector{N: len(v), Inc: 1, Data: v} }

func gemm(ta, tb blas.Transpose, alpha float64, a, b blas64.General, beta float64, c blas64.General) {
	blas64.Gemm(ta, tb, alpha, a, b, beta, c)
}
