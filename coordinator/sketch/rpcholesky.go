package sketch

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// Randomly pivoted Cholesky (Chen, Epperly, Tropp & Webber 2023) builds a
// rank-k factor F with K ≈ F Fᵀ from the diagonal of a PSD K and k of its
// columns, chosen at random with probability proportional to the diagonal
// of the residual K − F Fᵀ. Its expected trace error is within (1+ε) of the
// best rank-r approximation's once k ≥ r/ε + r·log(1/(εη)), η the best
// rank-r relative trace error: near-optimal from k columns, without the
// n×n matrix.
//
// The pivots are drawn in rounds, as in accelerated RPCholesky (Epperly,
// Tropp & Webber 2024): b candidates i.i.d. from the residual diagonal,
// their columns evaluated together (one call of the column function), then
// accepted or rejected in order by rejection sampling on the b×b residual
// block, which simulates the one-pivot-at-a-time algorithm exactly. Rejected
// candidates cost a column each; the factor reports how many were evaluated.

// KernelColumns sets dst (len(idx)×n, row-major) so that row q is the column
// K[:, idx[q]].
type KernelColumns func(idx []int, dst []float64) error

// RPCholeskyOptions control RPCholesky.
type RPCholeskyOptions struct {
	MaxRank int // the most pivots k (columns of F); at most n
	// Block is the most candidates drawn per round, whose columns are
	// evaluated together (default 16). The first round draws at most 8;
	// each later one twice as many as the last round accepted, at least 4
	// and at most Block: on a fast-decaying spectrum each pivot changes the
	// residual so much that most of a large block would be rejected.
	Block int
	Tol   float64 // stop once Tr(K − F Fᵀ) ≤ Tol·Tr K (0: run to MaxRank)
	Seed  uint64  // the candidates and acceptances are drawn from (Seed, round)
	// Progress, when set, is called after every round with the rank so far
	// and the residual trace Tr(K − F Fᵀ).
	Progress func(rank int, residualTrace float64)
}

// CholeskyFactor is a low-rank factor K ≈ F Fᵀ from RPCholesky.
type CholeskyFactor struct {
	N, Rank int
	F       []float64 // N×Rank, row-major
	Pivots  []int     // the residuals whose columns were accepted, in order
	// Trace is Tr K from the diagonal; ResidualTrace is Tr(K − F Fᵀ) from
	// the residual diagonal (entries below n·ε·max K_ii count as zero:
	// rounding, not residual).
	Trace, ResidualTrace float64
	Evaluated            int  // columns evaluated, accepted or not
	Rounds               int  // calls of the column function
	Exhausted            bool // the residual diagonal fell to rounding level: F Fᵀ is K to working precision
}

// rpcEmptyRounds bounds consecutive rounds without an accepted pivot (only
// possible when the residual is at rounding level).
const rpcEmptyRounds = 32

// RPCholesky factors the PSD matrix with diagonal diag and columns cols.
// The result depends only on the seed and on the values cols returns: the
// same inputs give the same bits. Memory: F, 8·n·Rank bytes (grown as
// pivots are accepted, then laid out as n×Rank), and 8·n·Block per round for
// the candidates' columns.
func RPCholesky(diag []float64, cols KernelColumns, opt RPCholeskyOptions) (*CholeskyFactor, error) {
	n := len(diag)
	if opt.Block == 0 {
		opt.Block = 16
	}
	switch {
	case n == 0:
		return nil, errors.New("rpcholesky: empty diagonal")
	case opt.MaxRank < 1:
		return nil, fmt.Errorf("rpcholesky: rank %d: want at least 1", opt.MaxRank)
	case opt.Block < 1:
		return nil, fmt.Errorf("rpcholesky: block %d: want at least 1", opt.Block)
	case opt.Tol < 0 || math.IsNaN(opt.Tol):
		return nil, fmt.Errorf("rpcholesky: tolerance %v: want a number ≥ 0", opt.Tol)
	}
	opt.MaxRank = min(opt.MaxRank, n)
	d := make([]float64, n)
	f := &CholeskyFactor{N: n}
	var dmax float64
	for i, v := range diag {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("rpcholesky: diagonal entry %d is %v", i, v)
		}
		d[i] = max(v, 0)
		f.Trace += d[i]
		dmax = max(dmax, d[i])
	}
	// Residual diagonal entries at or below floor are rounding, not
	// residual (LAPACK's dpstrf takes n·ε·max K_ii as zero): they are set
	// to zero, and a candidate whose residual is that small is rejected, as
	// its pivot would divide rounding by its square root.
	floor := float64(n) * 0x1p-52 * dmax
	var (
		g      []float64 // the factor's columns as rows: Rank×n
		cum    = make([]float64, n)
		cand   []int
		uniq   []int
		where  = map[int]int{}
		C      []float64 // residual columns of the unique candidates, |uniq|×n
		gs     []float64 // G[:, uniq]ᵀ, |uniq|×rank
		H      []float64 // b×b residual block of the candidates, in candidate order
		L      []float64 // its partial Cholesky factor
		accept []int
	)
	resid := rpcSum(d)
	empty := 0
	blockSize := min(opt.Block, 8)
	for f.Rank < opt.MaxRank && resid > opt.Tol*f.Trace && resid > 0 {
		rng := rand.New(rand.NewPCG(opt.Seed, uint64(f.Rounds)))
		f.Rounds++
		b := blockSize
		// b candidates i.i.d. with probability d_i / Σd.
		var acc float64
		for i, v := range d {
			acc += v
			cum[i] = acc
		}
		cand = cand[:0]
		for j := 0; j < b; j++ {
			u := rpcUniform(rng) * acc
			i := sort.SearchFloat64s(cum, u)
			for i < n-1 && (cum[i] <= u || d[i] == 0) {
				i++ // u on a boundary or in an empty stretch
			}
			cand = append(cand, i)
		}
		uniq = uniq[:0]
		clear(where)
		for _, i := range cand {
			if _, ok := where[i]; !ok {
				where[i] = len(uniq)
				uniq = append(uniq, i)
			}
		}
		nu := len(uniq)
		C = rpcGrow(C, nu*n)
		if err := cols(uniq, C); err != nil {
			return nil, fmt.Errorf("rpcholesky: columns of round %d: %w", f.Rounds, err)
		}
		f.Evaluated += nu
		for q := range C[:nu*n] {
			if v := C[q]; math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("rpcholesky: column %d has a non-finite entry %v", uniq[q/n], v)
			}
		}
		// Residual columns: C − G[:, uniq]ᵀ G.
		if r := f.Rank; r > 0 {
			gs = rpcGrow(gs, nu*r)
			for q, i := range uniq {
				for k := 0; k < r; k++ {
					gs[q*r+k] = g[k*n+i]
				}
			}
			blas64.Implementation().Dgemm(blas.NoTrans, blas.NoTrans, nu, n, r, -1, gs, r, g, n, 1, C, n)
		}
		// Rejection sampling on the residual block, in candidate order: a
		// candidate is accepted with probability (its residual given the
		// pivots accepted before it) / (its residual at the round's start);
		// only the lower triangle of H is kept up to date.
		H = rpcGrow(H, b*b)
		for j, sj := range cand {
			for k, sk := range cand {
				H[j*b+k] = C[where[sj]*n+sk]
			}
		}
		L = rpcGrow(L, b*b)
		clear(L[:b*b])
		accept = accept[:0]
		for j, sj := range cand {
			if len(accept) == opt.MaxRank-f.Rank {
				break
			}
			h := H[j*b+j]
			if !(h > floor) || rpcUniform(rng)*d[sj] >= h {
				continue
			}
			accept = append(accept, j)
			s := math.Sqrt(h)
			for k := j; k < b; k++ {
				L[k*b+j] = H[k*b+j] / s
			}
			for k := j + 1; k < b; k++ {
				lk := L[k*b+j]
				for m := j + 1; m <= k; m++ {
					H[k*b+m] -= lk * L[m*b+j]
				}
			}
		}
		if len(accept) == 0 {
			if empty++; empty >= rpcEmptyRounds {
				f.Exhausted = true
				break
			}
			continue
		}
		empty = 0
		blockSize = min(opt.Block, max(4, 2*len(accept)))
		// New rows of G: L_acc⁻¹ (residual columns of the accepted).
		a := len(accept)
		r := f.Rank
		g = slices.Grow(g, a*n)[:(r+a)*n]
		rows := g[r*n : (r+a)*n]
		la := make([]float64, a*a)
		for p, j := range accept {
			copy(rows[p*n:(p+1)*n], C[where[cand[j]]*n:(where[cand[j]]+1)*n])
			for q, k := range accept[:p+1] {
				la[p*a+q] = L[j*b+k]
			}
			f.Pivots = append(f.Pivots, cand[j])
		}
		blas64.Implementation().Dtrsm(blas.Left, blas.Lower, blas.NoTrans, blas.NonUnit, a, n, 1, la, a, rows, n)
		f.Rank += a
		for p := 0; p < a; p++ {
			row := rows[p*n : (p+1)*n]
			for i, v := range row {
				d[i] -= v * v
			}
		}
		for _, piv := range f.Pivots[r:] {
			d[piv] = 0 // a pivot's residual is zero in exact arithmetic
		}
		for i, v := range d {
			if v <= floor {
				d[i] = 0
			}
		}
		resid = rpcSum(d)
		if opt.Progress != nil {
			opt.Progress(f.Rank, resid)
		}
	}
	f.ResidualTrace = resid
	if resid == 0 {
		f.Exhausted = true
	}
	f.F = make([]float64, n*f.Rank)
	for k := 0; k < f.Rank; k++ {
		for i, v := range g[k*n : (k+1)*n] {
			f.F[i*f.Rank+k] = v
		}
	}
	return f, nil
}

// Eigenvalues returns the eigenvalues of F Fᵀ, descending: the squared
// singular values of F by a thin SVD (not FᵀF, whose eigenvalues would
// lose the small ones to rounding).
func (f *CholeskyFactor) Eigenvalues() ([]float64, error) {
	if f.Rank == 0 {
		return nil, nil
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(f.N, f.Rank, f.F), mat.SVDNone) {
		return nil, errors.New("rpcholesky: the SVD of the factor did not converge")
	}
	s := svd.Values(nil)
	for i, v := range s {
		s[i] = v * v
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	return s, nil
}

// uniform is a uniform draw in [0, 1) from 53 random bits: the same value
// on every platform and Go version for a given PCG state.
func rpcUniform(r *rand.Rand) float64 { return float64(r.Uint64()>>11) * 0x1p-53 }

func rpcSum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

func rpcGrow(s []float64, n int) []float64 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float64, n)
}
