package model

import (
	"slices"
	"sync/atomic"

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
//
// The pieces are queued as tasks, each one BLAS call with its own
// destination, and a batch of them runs with the helpers taking the next
// task, largest first, until none is left: which goroutine runs a task
// changes no bit. A backward pass queues all the products of a layer (every
// cotangent's weight gradients, per-block ones included, and input
// cotangents) into one batch, so that uneven pieces (blocks of different
// sizes) even out across threads instead of each product waiting for its
// slowest piece.

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

// flops is the work of the product: a multiply-add counts two.
func (mm *mmArgs) flops() int64 { return 2 * int64(mm.m) * int64(mm.n) * int64(mm.k) }

// gemmBatch is the queued tasks (each one BLAS call, alpha 1) and the
// scratch sums of cut weight gradients to add once they have run.
type gemmBatch struct {
	tasks []mmArgs
	adds  []pieceAdd
	gk    int          // scratch buffers (e.gk) in use
	next  atomic.Int64 // the next task to take
}

// pieceAdd adds scratch buffer gk (m×n) into the rows of c.
type pieceAdd struct {
	c        []float64
	m, n, ld int
	gk       int
}

// gemm is blas64's Dgemm, counted in e.flops.
func (e *pinn) gemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	e.flops += 2 * int64(m) * int64(n) * int64(k)
	blas64.Implementation().Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmCut is gemm (alpha 1) cut into pieces when large: by the rows of C,
// or with sumK (op(A) = Aᵀ, op(B) = B, beta 0) by the sum over k. While a
// backward pass batches its layer (e.batching) it is only queued.
func (e *pinn) gemmCut(mm mmArgs) {
	e.queue(mm)
	if !e.batching {
		e.runBatch()
	}
}

// queue adds the pieces of mm (cut as gemmCut cuts it) to the batch.
func (e *pinn) queue(mm mmArgs) {
	bt := &e.batch
	e.flops += mm.flops()
	if mm.flops() < e.cutFlops {
		mm.sumK = false
		bt.tasks = append(bt.tasks, mm)
		return
	}
	if mm.sumK && (mm.tA != blas.Trans || mm.tB != blas.NoTrans || mm.beta != 0) {
		panic("model: a cut sum over k needs Aᵀ B and beta 0")
	}
	for q := range gemmPieces {
		t := mm
		t.sumK = false
		if mm.sumK {
			k0, k1 := cut(mm.k, q), cut(mm.k, q+1)
			t.k, t.a, t.b = k1-k0, mm.a[k0*mm.lda:], mm.b[k0*mm.ldb:]
			if q > 0 {
				for len(e.gk) <= bt.gk {
					e.gk = append(e.gk, nil)
				}
				e.gk[bt.gk] = resize(e.gk[bt.gk], mm.m*mm.n)
				t.c, t.ldc = e.gk[bt.gk], mm.n
				bt.adds = append(bt.adds, pieceAdd{c: mm.c, m: mm.m, n: mm.n, ld: mm.ldc, gk: bt.gk})
				bt.gk++
			}
		} else {
			r0, r1 := cut(mm.m, q), cut(mm.m, q+1)
			t.m = r1 - r0
			t.a = mm.a[r0*mm.lda:] // rows of A
			if mm.tA == blas.Trans {
				t.a = mm.a[r0:] // columns of A
			}
			t.c = mm.c[r0*mm.ldc:]
		}
		bt.tasks = append(bt.tasks, t)
	}
}

// runBatch runs the queued tasks, on the helpers when GOMAXPROCS allows
// (largest first), then adds the scratch pieces of cut weight gradients
// into their destinations in piece order, and empties the batch.
func (e *pinn) runBatch() {
	bt := &e.batch
	if len(bt.tasks) == 0 {
		return
	}
	width := 0 // one part: the tasks one after the other
	if parallelGEMM && len(bt.tasks) > 1 {
		width = minSplit // a part per task
		slices.SortStableFunc(bt.tasks, func(x, y mmArgs) int {
			fx, fy := x.flops(), y.flops()
			switch {
			case fx > fy:
				return -1
			case fx < fy:
				return 1
			}
			return 0
		})
	}
	bt.next.Store(0)
	e.split(job{kind: jobGEMM, n: len(bt.tasks)}, width)
	for _, ad := range bt.adds {
		for i := range ad.m {
			addInto(ad.c[i*ad.ld:i*ad.ld+ad.n], e.gk[ad.gk][i*ad.n:(i+1)*ad.n])
		}
	}
	clear(bt.tasks) // drop the references to the operands
	bt.tasks, bt.adds, bt.gk = bt.tasks[:0], bt.adds[:0], 0
}

// runTasks takes and runs the batch's tasks until none is left.
func (e *pinn) runTasks() {
	bt := &e.batch
	impl := blas64.Implementation()
	for {
		i := int(bt.next.Add(1) - 1)
		if i >= len(bt.tasks) {
			return
		}
		t := &bt.tasks[i]
		impl.Dgemm(t.tA, t.tB, t.m, t.n, t.k, 1, t.a, t.lda, t.b, t.ldb, t.beta, t.c, t.ldc)
	}
}

// cut is the start of piece q of n, on a multiple of 16 (the row blocks
// of the BLAS kernels).
func cut(n, q int) int {
	if q >= gemmPieces {
		return n
	}
	return n * q / gemmPieces / 16 * 16
}
