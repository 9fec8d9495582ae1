package model

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// The large matrix products of a pass (a hidden layer's forward product,
// input cotangent and weight gradient) are cut into gemmPieces fixed
// pieces, which run on the evaluator's helpers when GOMAXPROCS allows and
// one after the other when not. The cut depends only on the shapes, never
// on the number of threads, so the bits do not either: OpenBLAS's own
// threading cannot promise that (its results change with
// OPENBLAS_NUM_THREADS, as they do with the rows a call covers), which is
// why the OpenBLAS build runs it on one thread per call (blas_openblas.go).
// Products by rows of C (forward and input cotangent) cut C's rows; the
// weight gradient, a sum over all rows, cuts that sum: piece 0 goes to the
// destination, the others to scratch, added in piece order.

// gemmPieces is the number of pieces of a large product.
const gemmPieces = 2

// minGEMMCut is the least work (flops) of a product that is cut (the
// evaluator's cutFlops; tests lower it to cut every product).
const minGEMMCut = 1 << 27

// mmArgs is one product C = op(A) op(B) + beta C in row-major storage.
type mmArgs struct {
	tA, tB  blas.Transpose
	m, n, k int
	a, b, c []float64
	lda     int
	ldb     int
	ldc     int
	beta    float64
	sumK    bool // cut the sum over k (else the rows of C)
}

// gemm is blas64's Dgemm, counted in e.flops.
func (e *pinn) gemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	e.flops += 2 * int64(m) * int64(n) * int64(k)
	blas64.Implementation().Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmCut is gemm (alpha 1) cut into pieces when large: by the rows of C,
// or with sumK (op(A) = Aᵀ, op(B) = B, beta 0) by the sum over k.
func (e *pinn) gemmCut(mm mmArgs) {
	flops := 2 * int64(mm.m) * int64(mm.n) * int64(mm.k)
	if flops < e.cutFlops {
		e.gemm(mm.tA, mm.tB, mm.m, mm.n, mm.k, 1, mm.a, mm.lda, mm.b, mm.ldb, mm.beta, mm.c, mm.ldc)
		return
	}
	e.flops += flops
	if mm.sumK {
		if mm.tA != blas.Trans || mm.tB != blas.NoTrans || mm.beta != 0 {
			panic("model: a cut sum over k needs Aᵀ B and beta 0")
		}
		for len(e.gk) < gemmPieces-1 {
			e.gk = append(e.gk, nil)
		}
		for q := range e.gk {
			e.gk[q] = resize(e.gk[q], mm.m*mm.n)
		}
	}
	width := 0 // one part: the pieces one after the other
	if parallelGEMM {
		width = minSplit // a part per piece
	}
	e.split(job{kind: jobGEMM, n: gemmPieces, mm: mm}, width)
	if mm.sumK {
		for q := range gemmPieces - 1 {
			for i := range mm.m {
				addInto(mm.c[i*mm.ldc:i*mm.ldc+mm.n], e.gk[q][i*mm.n:(i+1)*mm.n])
			}
		}
	}
}

// gemmPiece computes piece q of the cut product mm.
func (e *pinn) gemmPiece(mm *mmArgs, q int) {
	impl := blas64.Implementation()
	if mm.sumK {
		k0, k1 := cut(mm.k, q), cut(mm.k, q+1)
		c, ldc := mm.c, mm.ldc
		if q > 0 {
			c, ldc = e.gk[q-1], mm.n
		}
		impl.Dgemm(mm.tA, mm.tB, mm.m, mm.n, k1-k0, 1, mm.a[k0*mm.lda:], mm.lda, mm.b[k0*mm.ldb:], mm.ldb, 0, c, ldc)
		return
	}
	r0, r1 := cut(mm.m, q), cut(mm.m, q+1)
	a := mm.a[r0*mm.lda:] // rows of A
	if mm.tA == blas.Trans {
		a = mm.a[r0:] // columns of A
	}
	impl.Dgemm(mm.tA, mm.tB, r1-r0, mm.n, mm.k, 1, a, mm.lda, mm.b, mm.ldb, mm.beta, mm.c[r0*mm.ldc:], mm.ldc)
}

// cut is the start of piece q of n, on a multiple of 16 (the row blocks
// of the BLAS kernels).
func cut(n, q int) int {
	if q >= gemmPieces {
		return n
	}
	return n * q / gemmPieces / 16 * 16
}
