package sketch

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/mat"
)

// BlockTraces is the XNysTrace estimate of the traces of the diagonal
// blocks K_bb of a partition of the rows into contiguous blocks, with the
// per-probe estimates it averages and their covariance.
type BlockTraces struct {
	Sizes  []int     // the rows of each block, in order
	Traces []float64 // Tr K_bb: the mean over probes of Samples
	// Samples (s×B) holds probe i's exchangeable estimate of each block
	// trace: the trace of the Nyström approximation built without probe i,
	// plus probe i's Hutchinson estimate of what that approximation misses.
	Samples []float64
	// Cov (B×B) is the estimated covariance of Traces: the jackknife over
	// probes, ((s−1)/s)·Σ_j (T₋ⱼ − T̄)(T₋ⱼ − T̄)ᵀ with T₋ⱼ the estimate
	// from all probes but j (conservative in expectation, by the
	// Efron–Stein inequality). NaN with one probe. Where Ω is
	// rank-deficient it is SampleCov.
	Cov   []float64
	Rank  int     // eigenvalues of the Nyström core kept (s unless Ω is rank-deficient)
	Shift float64 // the ν added to K before the factorization (and removed)
}

// B is the number of blocks.
func (e *BlockTraces) B() int { return len(e.Traces) }

// Probes is the number of probes s.
func (e *BlockTraces) Probes() int { return len(e.Samples) / max(len(e.Traces), 1) }

// Trace is the estimate of Tr K, the sum of the block traces.
func (e *BlockTraces) Trace() float64 {
	var t float64
	for _, v := range e.Traces {
		t += v
	}
	return t
}

// TraceSE is the standard error of Trace, from Cov.
func (e *BlockTraces) TraceSE() float64 {
	var v float64
	for _, c := range e.Cov {
		v += c
	}
	return math.Sqrt(v)
}

// SE is the standard error of block b's trace.
func (e *BlockTraces) SE(b int) float64 { return math.Sqrt(e.Cov[b*e.B()+b]) }

// XNysTrace estimates Tr K from Ω (n×s) and Y = KΩ (n×s) by the
// exchangeable Nyström trace estimator of Epperly, Tropp & Webber (2024),
// and its standard error (the jackknife over probes; see BlockTraces.Cov).
// The columns of Ω must be independent with E[ωωᵀ] = I (Gaussian or
// Rademacher) for it to be unbiased.
func XNysTrace(omega, y []float64, n, s int) (trace, se float64, err error) {
	e, err := XNysBlockTraces(omega, y, n, s, []int{n})
	if err != nil {
		return 0, 0, err
	}
	return e.Traces[0], e.TraceSE(), nil
}

// XNysBlockTraces estimates the traces of the diagonal blocks of K for the
// partition of the n rows into contiguous blocks of the given sizes, by
// the diagonal counterpart of XNysTrace: for each probe i, the block traces
// of the Nyström approximation K̂₋ᵢ built from the other probes, plus
// Σ_{j∈b} ω_ij ((K − K̂₋ᵢ)ω_i)_j, then the mean over i. Each per-probe
// estimate is unbiased, so their mean is. The covariance between blocks
// is the jackknife over probes. Blocks of size 0 are allowed (trace 0).
//
// It costs O(ns² + s³ + s²B): every K̂₋ᵢ is a rank-one downdate of the
// Nyström approximation from all s probes (K̂₋ᵢ = K̂ − z_i z_iᵀ with
// z_i = Y H⁻¹e_i / √(H⁻¹)_ii, H = ΩᵀY), and the jackknife's leave-two-out
// approximations are rank-two downdates: never separate factorizations.
func XNysBlockTraces(omega, y []float64, n, s int, sizes []int) (*BlockTraces, error) {
	sum := 0
	for b, m := range sizes {
		if m < 0 {
			return nil, fmt.Errorf("xnystrace: block %d has size %d", b, m)
		}
		sum += m
	}
	if sum != n || len(sizes) == 0 {
		return nil, fmt.Errorf("xnystrace: block sizes %v do not add up to n = %d", sizes, n)
	}
	x, err := newExchangeable(omega, y, n, s)
	if err != nil {
		return nil, err
	}
	B := len(sizes)
	e := &BlockTraces{
		Sizes:   append([]int(nil), sizes...),
		Traces:  make([]float64, B),
		Samples: make([]float64, s*B),
		Rank:    x.k,
		Shift:   x.nu,
	}
	d := x.delta()
	row := 0
	for b, m := range sizes {
		for j := row; j < row+m; j++ {
			for i, v := range d[j*s : (j+1)*s] {
				e.Samples[i*B+b] += v
			}
		}
		row += m
	}
	for i := 0; i < s; i++ {
		for b := 0; b < B; b++ {
			e.Traces[b] += e.Samples[i*B+b]
		}
	}
	for b := range e.Traces {
		e.Traces[b] /= float64(s)
	}
	e.Cov = x.jackknife(sizes)
	if e.Cov == nil {
		e.Cov = e.SampleCov()
	}
	return e, nil
}

// SampleCov is the error estimate of Epperly, Tropp & Webber: the sample
// covariance of the per-probe estimates over s, as if they were
// independent. They are not (they share most of their Nyström part), and
// on test matrices it underestimates the spread over independent sketches
// by up to a factor of two once the spectrum is resolved; Cov uses the
// jackknife instead.
func (e *BlockTraces) SampleCov() []float64 {
	B, s := e.B(), e.Probes()
	cov := make([]float64, B*B)
	if s < 2 {
		for i := range cov {
			cov[i] = math.NaN()
		}
		return cov
	}
	for i := 0; i < s; i++ {
		t := e.Samples[i*B : (i+1)*B]
		for b := 0; b < B; b++ {
			for c := 0; c < B; c++ {
				cov[b*B+c] += (t[b] - e.Traces[b]) * (t[c] - e.Traces[c])
			}
		}
	}
	for i := range cov {
		cov[i] /= float64(s * (s - 1))
	}
	return cov
}

// XNysDiagonal sets dst (length n) to the exchangeable Nyström estimate of
// diag(K): the mean over probes i of diag(K̂₋ᵢ) + ω_i ⊙ (K − K̂₋ᵢ)ω_i.
func XNysDiagonal(omega, y []float64, n, s int, dst []float64) error {
	if len(dst) != n {
		return fmt.Errorf("xnysdiag: len(dst) = %d, want n = %d", len(dst), n)
	}
	x, err := newExchangeable(omega, y, n, s)
	if err != nil {
		return err
	}
	d := x.delta()
	for j := range dst {
		var v float64
		for _, di := range d[j*s : (j+1)*s] {
			v += di
		}
		dst[j] = v / float64(s)
	}
	return nil
}

// exchangeable is the Nyström approximation from all s probes in the form
// the leave-one-out (and leave-two-out) estimates need: with
// H = sym(Ωᵀ(Y+νΩ)), G = H⁻¹ and P = (Y+νΩ)G, removing the probes in S
// gives K̂₋S = K̂ − P_S (G_SS)⁻¹ P_Sᵀ.
type exchangeable struct {
	n, s, k  int
	omega    []float64 // n×s, the caller's
	yn       []float64 // n×s, Y + νΩ with the untouched rows zeroed
	f        []float64 // n×k, K̂ + ν·(projector) = F Fᵀ
	p        []float64 // n×s, P = F Lᵀ
	g        []float64 // s×s, G = L Lᵀ = H⁺
	kw       []float64 // n×s, K̂Ω = F FᵀΩ
	scale    []float64 // s, 1/√G_ii for probes whose removal changes K̂, else 0
	live     []bool
	fullRank bool
	nu       float64
}

// newExchangeable builds the Nyström approximation of all s probes.
//
// The core is H = sym(Ωᵀ(Y + νΩ)) with ν = √n·ulp(‖Y‖_F) (a quotient
// error makes ΩᵀY unsymmetric). When ΩᵀΩ has full rank and H is not
// safely positive definite, ν grows until it is. When ΩᵀΩ is
// rank-deficient (more probes than live rows, or repeated probes), H⁻¹ is
// the pseudo-inverse over the eigenvalues that are not zero to rounding,
// and a probe whose removal does not lower H's rank leaves the
// approximation unchanged (its downdate is zero; Albert 1969).
func newExchangeable(omega, y []float64, n, s int) (*exchangeable, error) {
	if err := checkSketch(omega, y, n, s); err != nil {
		return nil, fmt.Errorf("xnystrace: %w", err)
	}
	ym, live := maskRows(omega, y, n, s)

	gram := make([]float64, s*s)
	gemm(blas.Trans, blas.NoTrans, 1, general(n, s, omega), general(n, s, omega), 0, general(s, s, gram))
	for i := 0; i < s; i++ {
		if gram[i*s+i] == 0 {
			return nil, fmt.Errorf("xnystrace: probe %d is zero", i)
		}
	}
	var ges mat.EigenSym
	if !ges.Factorize(mat.NewSymDense(s, append([]float64(nil), gram...)), false) {
		return nil, errors.New("xnystrace: the eigenvalues of ΩᵀΩ did not converge")
	}
	gv := ges.Values(nil)
	gmin, gmax := gv[0], gv[s-1]
	fullRank := gmin > float64(max(n, s))*2*eps*gmax

	h0 := make([]float64, s*s)
	gemm(blas.Trans, blas.NoTrans, 1, general(n, s, omega), general(n, s, ym), 0, general(s, s, h0))
	symmetrize(h0, s)
	nu := math.Sqrt(float64(n)) * ulp(frobenius(ym))
	if nu == 0 {
		nu = math.SmallestNonzeroFloat64
	}

	// Eigendecomposition of H = sym(ΩᵀY) + νΩᵀΩ, raising ν while needed.
	h := make([]float64, s*s)
	var theta []float64
	var v mat.Dense
	for attempt := 0; ; attempt++ {
		for i := range h {
			h[i] = h0[i] + nu*gram[i]
		}
		var es mat.EigenSym
		if !es.Factorize(mat.NewSymDense(s, h), true) {
			return nil, errors.New("xnystrace: the eigenvalues of the core did not converge")
		}
		theta = es.Values(theta)
		es.VectorsTo(&v)
		if !fullRank || theta[0] > float64(s)*2*eps*theta[s-1] {
			break
		}
		if attempt == 4 {
			return nil, fmt.Errorf("xnystrace: the core is not positive definite even with shift %g", nu)
		}
		nu = 2*nu + 2*math.Max(-theta[0], 0)/gmin
	}

	// L = V_k Θ_k^{-1/2} (s×k) over the kept eigenvalues, so that H⁺ = L Lᵀ.
	tol := float64(s) * 2 * eps * theta[s-1]
	var keep []int
	for j := s - 1; j >= 0; j-- {
		if theta[j] > tol {
			keep = append(keep, j)
		}
	}
	k := len(keep)
	if k == 0 {
		return nil, errors.New("xnystrace: the Nyström core is zero")
	}
	l := make([]float64, s*k)
	lev := make([]float64, s)
	for i := 0; i < s; i++ {
		for c, j := range keep {
			vij := v.At(i, j)
			l[i*k+c] = vij / math.Sqrt(theta[j])
			lev[i] += vij * vij
		}
	}

	x := &exchangeable{n: n, s: s, k: k, omega: omega, yn: ym, live: live, fullRank: fullRank, nu: nu}
	for i := range x.yn {
		x.yn[i] += nu * omega[i]
	}
	x.f = make([]float64, n*k)
	gemm(blas.NoTrans, blas.NoTrans, 1, general(n, s, x.yn), general(s, k, l), 0, general(n, k, x.f))
	x.p = make([]float64, n*s)
	gemm(blas.NoTrans, blas.Trans, 1, general(n, k, x.f), general(s, k, l), 0, general(n, s, x.p))
	x.g = make([]float64, s*s)
	gemm(blas.NoTrans, blas.Trans, 1, general(s, k, l), general(s, k, l), 0, general(s, s, x.g))
	w := make([]float64, k*s)
	gemm(blas.Trans, blas.NoTrans, 1, general(n, k, x.f), general(n, s, omega), 0, general(k, s, w))
	x.kw = make([]float64, n*s)
	gemm(blas.NoTrans, blas.NoTrans, 1, general(n, k, x.f), general(k, s, w), 0, general(n, s, x.kw))
	x.scale = make([]float64, s)
	for i := 0; i < s; i++ {
		essential := fullRank || lev[i] > 1-math.Sqrt(2*eps)
		if gii := x.g[i*s+i]; essential && gii > 0 {
			x.scale[i] = 1 / math.Sqrt(gii)
		}
	}
	return x, nil
}

// delta returns, for every row j and probe i (n×s), the per-probe diagonal
// estimate δ_ji = (K̂₋ᵢ)_jj + ω_ji ((K − K̂₋ᵢ)ω_i)_j, with K̂₋ᵢ = K̂ − z_i z_iᵀ
// and z_i = P e_i / √G_ii:
// δ_ji = (FFᵀ)_jj − ν − z_ji² + ω_ji ((Y+νΩ)_ji − (K̂Ω)_ji + (z_iᵀω_i) z_ji).
func (x *exchangeable) delta() []float64 {
	n, s, k := x.n, x.s, x.k
	c := make([]float64, s)
	for j := 0; j < n; j++ {
		for i := 0; i < s; i++ {
			c[i] += x.p[j*s+i] * x.scale[i] * x.omega[j*s+i]
		}
	}
	d := make([]float64, n*s)
	for j := 0; j < n; j++ {
		df := 0.0
		for _, fv := range x.f[j*k : (j+1)*k] {
			df += fv * fv
		}
		if x.live[j] {
			df -= x.nu
		}
		for i := 0; i < s; i++ {
			o := j*s + i
			z := x.p[o] * x.scale[i]
			d[o] = df - z*z + x.omega[o]*(x.yn[o]-x.kw[o]+c[i]*z)
		}
	}
	return d
}

// jackknife returns the jackknife covariance (B×B) of the block-trace
// estimates, or nil where it does not apply (Ω rank-deficient, one probe,
// or a pair of probes whose leave-two-out core is singular to rounding).
//
// The estimate without probe j is the mean over i ≠ j of probe i's
// estimate against K̂₋{i,j} = K̂ − P_S G_SS⁻¹ P_Sᵀ (S = {i, j}), whose
// block traces and products with ω_i need only the s×s block Grams
// PᵀD_bP and PᵀD_bΩ.
func (x *exchangeable) jackknife(sizes []int) []float64 {
	s, k := x.s, x.k
	if !x.fullRank || s < 2 {
		return nil
	}
	B := len(sizes)
	base := make([]float64, B)    // Tr_b(FFᵀ) − ν·(live rows of b)
	hutch := make([]float64, B*s) // ω_iᵀD_b((Y+νΩ)e_i − K̂ω_i)
	pdp := make([][]float64, B)   // PᵀD_bP
	pdo := make([][]float64, B)   // PᵀD_bΩ
	po := make([]float64, s*s)    // PᵀΩ
	row := 0
	for b, m := range sizes {
		pdp[b], pdo[b] = make([]float64, s*s), make([]float64, s*s)
		if m > 0 {
			pb, ob := x.p[row*s:(row+m)*s], x.omega[row*s:(row+m)*s]
			gemm(blas.Trans, blas.NoTrans, 1, general(m, s, pb), general(m, s, pb), 0, general(s, s, pdp[b]))
			gemm(blas.Trans, blas.NoTrans, 1, general(m, s, pb), general(m, s, ob), 0, general(s, s, pdo[b]))
		}
		for j := row; j < row+m; j++ {
			for _, fv := range x.f[j*k : (j+1)*k] {
				base[b] += fv * fv
			}
			if x.live[j] {
				base[b] -= x.nu
			}
			for i := 0; i < s; i++ {
				o := j*s + i
				hutch[b*s+i] += x.omega[o] * (x.yn[o] - x.kw[o])
			}
		}
		for i, v := range pdo[b] {
			po[i] += v
		}
		row += m
	}
	g := x.g
	loo := make([]float64, s*B)
	for j := 0; j < s; j++ {
		for i := 0; i < s; i++ {
			if i == j {
				continue
			}
			gii, gij, gjj := g[i*s+i], g[i*s+j], g[j*s+j]
			det := gii*gjj - gij*gij
			if !(det > 1e-12*gii*gjj) {
				return nil
			}
			a, c, d := gjj/det, -gij/det, gii/det // G_SS⁻¹
			v0, v1 := po[i*s+i], po[j*s+i]        // P_Sᵀω_i
			for b := 0; b < B; b++ {
				pp, pw := pdp[b], pdo[b]
				tr := a*pp[i*s+i] + 2*c*pp[i*s+j] + d*pp[j*s+j]
				u0, u1 := pw[i*s+i], pw[j*s+i] // P_SᵀD_bω_i
				quad := u0*(a*v0+c*v1) + u1*(c*v0+d*v1)
				loo[j*B+b] += (base[b] - tr + hutch[b*s+i] + quad) / float64(s-1)
			}
		}
	}
	mean := make([]float64, B)
	for j := 0; j < s; j++ {
		for b := 0; b < B; b++ {
			mean[b] += loo[j*B+b] / float64(s)
		}
	}
	cov := make([]float64, B*B)
	for j := 0; j < s; j++ {
		t := loo[j*B : (j+1)*B]
		for b := 0; b < B; b++ {
			for c := 0; c < B; c++ {
				cov[b*B+c] += (t[b] - mean[b]) * (t[c] - mean[c])
			}
		}
	}
	for i := range cov {
		cov[i] *= float64(s-1) / float64(s)
	}
	return cov
}
