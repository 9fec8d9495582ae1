package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Columns of K without the n×n matrix.
//
// K[:, j] needs, for an MLP, the same per-residual cotangents Ā that NTK
// uses (one backward pass per residual component, kept for every layer) and
// the layer inputs H of the base point; then, per layer and pair of
// (block, stream) row groups, a product of a cotangent Gram and an input
// Gram restricted to the selected residual's own rows:
//
//	K_ij = Σ_l Σ_{s,t} (Ā^l_{i,s}·Ā^l_{j,t}) (H^{l-1}_{i,s}·H^{l-1}_{j,t} + [s = t = 0]).
//
// For k columns that is two GEMMs of (rows of a group) × (k·streams) per
// layer and group: O(rows·k·Σ_l m_l) flops besides the cotangent pass, which
// is done once per base point and kept. This is what makes randomly pivoted
// Cholesky on the exact K possible for n far beyond a dense K.

// Columns sets dst (len(idx)×n, row-major) so that row q is the column
// K[:, idx[q]] of the NTK at the base point (K is symmetric, so it is also
// row idx[q]).
//
// Work memory: the cotangents of every layer, 8·C·rows·Σ_l m_l bytes (C
// residual components, rows the stream rows of all points, m_l the layer
// widths; the same store NTK uses, kept while θ and the points stay), plus
// per chunk of selected residuals their gathered rows and two tiles,
// 8·(k_c·S·(m_max+in_max) + 2·n_max·k_c·S) bytes for k_c residuals of at
// most S streams and n_max points in the largest block. The chunk size k_c
// is chosen so that the total stays within Options.MaxMemory; when the
// cotangents alone do not fit, Columns fails without allocating. dst is the
// caller's and not counted.
func (e *pinn) Columns(idx []int, dst []float64) error {
	n := e.lay.N
	if err := checkColumns(idx, dst, n); err != nil {
		return err
	}
	if len(idx) == 0 {
		return nil
	}
	cot := e.cotangentBytes()
	if cot > e.opt.MaxMemory {
		return fmt.Errorf("exact columns of K with %d residuals need %s of cotangents, over the limit of %s: use fewer collocation points or raise the limit", n, formatBytes(cot), formatBytes(e.opt.MaxMemory))
	}
	perCol := e.chunkBytesPerColumn()
	kc := int((e.opt.MaxMemory - cot) / perCol)
	if kc < 1 {
		return fmt.Errorf("exact columns of K with %d residuals need %s, over the limit of %s: use fewer collocation points or raise the limit", n, formatBytes(cot+perCol), formatBytes(e.opt.MaxMemory))
	}
	kc = min(kc, len(idx))
	e.cotangents()
	for i := range dst[:len(idx)*n] {
		dst[i] = 0
	}
	for lo := 0; lo < len(idx); lo += kc {
		hi := min(lo+kc, len(idx))
		e.columnChunk(idx[lo:hi], dst[lo*n:hi*n], e.maxStreams()*(hi-lo))
	}
	return nil
}

// chunkBytesPerColumn is the memory of Columns' gathered rows and tiles
// per selected residual.
func (e *pinn) chunkBytesPerColumn() int64 {
	maxN, maxIn := 0, 0
	for _, g := range e.groups {
		maxN = max(maxN, g.n)
	}
	for l := 0; l < e.L; l++ {
		maxIn = max(maxIn, e.net.layers[l])
	}
	return 8 * int64(e.maxStreams()) * int64(e.maxW+maxIn+2*maxN)
}

func (e *pinn) maxStreams() int {
	s := 1
	for _, g := range e.groups {
		s = max(s, g.ns)
	}
	return s
}

// cotangentBytes is the memory of the per-residual cotangents of every layer.
func (e *pinn) cotangentBytes() int64 {
	var cols int64
	for l := 1; l <= e.L; l++ {
		cols += int64(e.net.layers[l])
	}
	return 8 * int64(e.maxComps()) * int64(e.rows) * cols
}

// cotangents fills e.ntkA[c][l] (l = 1..L) with the cotangents Ā of the
// residuals of component c at every point: row c of ∂F/∂u at the output,
// then back through the layers. They depend only on θ and the points, so
// they are kept until either changes (SetPoints drops them; a new θ is
// detected by comparing with the θ they were computed at).
func (e *pinn) cotangents() {
	C := e.maxComps()
	if e.ntkA != nil && len(e.ntkAt) == len(e.theta) && sameBits(e.ntkAt, e.theta) {
		return
	}
	if len(e.ntkA) != C {
		e.ntkA = make([][][]float64, C)
	}
	for c := range e.ntkA {
		e.ntkA[c] = resizeAll(e.ntkA[c], e.L+1, func(l int) int {
			if l == 0 {
				return 0
			}
			return e.rows * e.net.layers[l]
		})
	}
	if e.dgH == nil {
		e.dgA = make([]float64, e.rows*e.maxW)
		e.dgH = make([]float64, e.rows*e.maxW)
	}
	for c := 0; c < C; c++ {
		e.componentCotangent(c, e.ntkA[c][e.L])
		for l := e.L; l > 1; l-- {
			in, m := e.net.layers[l-1], e.net.layers[l]
			hbar := e.dgH[:e.rows*in]
			w, _ := e.weights(e.theta, l)
			blas64.Implementation().Dgemm(blas.NoTrans, blas.NoTrans, e.rows, in, m, 1, e.ntkA[c][l], m, w, in, 0, hbar, in)
			e.activateBackward(l-1, hbar, e.ntkA[c][l-1])
		}
	}
	e.ntkAt = append(e.ntkAt[:0], e.theta...)
}

func sameBits(a, b []float64) bool {
	for i, v := range a {
		if math.Float64bits(v) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

// colSel is one selected residual: its position in the request, its point
// and component.
type colSel struct{ q, pt, comp int }

// columnChunk adds the columns of the residuals sel into dst (len(sel)×n,
// zeroed), with gathered rows for at most width stream rows.
func (e *pinn) columnChunk(sel []int, dst []float64, width int) {
	n := e.lay.N
	maxN := 0
	for _, g := range e.groups {
		maxN = max(maxN, g.n)
	}
	e.colA = resize(e.colA, width*e.maxW)
	e.colH = resize(e.colH, width*e.maxW)
	e.colTA = resize(e.colTA, maxN*width)
	e.colTH = resize(e.colTH, maxN*width)
	// Selected residuals by the block they belong to.
	byGroup := make([][]colSel, len(e.groups))
	for q, r := range sel {
		for gi := range e.groups {
			h := &e.groups[gi]
			if r >= h.res && r < h.res+h.n*h.comps {
				byGroup[gi] = append(byGroup[gi], colSel{q: q, pt: (r - h.res) / h.comps, comp: (r - h.res) % h.comps})
				break
			}
		}
	}
	impl := blas64.Implementation()
	for l := 1; l <= e.L; l++ {
		in, m := e.net.layers[l-1], e.net.layers[l]
		H := e.h[l-1]
		for hi := range e.groups {
			h, es := &e.groups[hi], byGroup[hi]
			if len(es) == 0 {
				continue
			}
			// Gather the selected residuals' rows, stream-major: row t·k+e.
			k := len(es)
			w := h.ns * k
			SA, SH := e.colA[:w*m], e.colH[:w*in]
			for t := 0; t < h.ns; t++ {
				for j, s := range es {
					r := h.rowOf(t, s.pt)
					copy(SA[(t*k+j)*m:(t*k+j+1)*m], e.ntkA[s.comp][l][r*m:(r+1)*m])
					copy(SH[(t*k+j)*in:(t*k+j+1)*in], H[r*in:(r+1)*in])
				}
			}
			for gi := range e.groups {
				g := &e.groups[gi]
				if g.n == 0 {
					continue
				}
				TA, TH := e.colTA[:g.n*w], e.colTH[:g.n*w]
				for s := 0; s < g.ns; s++ {
					rs := g.rowOf(s, 0)
					impl.Dgemm(blas.NoTrans, blas.Trans, g.n, w, in, 1, H[rs*in:(rs+g.n)*in], in, SH, in, 0, TH, w)
					if s == 0 {
						for a := 0; a < g.n; a++ {
							for j := range es {
								TH[a*w+j]++ // bias: ∂a_v/∂b = 1 (stream 0 of both)
							}
						}
					}
					for c := 0; c < g.comps; c++ {
						impl.Dgemm(blas.NoTrans, blas.Trans, g.n, w, m, 1, e.ntkA[c][l][rs*m:(rs+g.n)*m], m, SA, m, 0, TA, w)
						for a := 0; a < g.n; a++ {
							ta, th := TA[a*w:(a+1)*w], TH[a*w:(a+1)*w]
							i := g.res + a*g.comps + c
							for j, s := range es {
								var v float64
								for t := 0; t < h.ns; t++ {
									v += ta[t*k+j] * th[t*k+j]
								}
								dst[s.q*n+i] += v
							}
						}
					}
				}
			}
		}
	}
}

// Columns sets dst (len(idx)×n) to the columns K[:, idx[q]] in closed form:
// K_ij = Σ_k (2θ_k u_k(x_i))(2θ_k u_k(x_j)). No work memory.
func (e *quadEval) Columns(idx []int, dst []float64) error {
	n := len(e.x)
	if err := checkColumns(idx, dst, n); err != nil {
		return err
	}
	for q, j := range idx {
		b := e.jac(j)
		col := dst[q*n : (q+1)*n]
		for i := range col {
			a := e.jac(i)
			col[i] = a[0]*b[0] + a[1]*b[1] + a[2]*b[2]
		}
	}
	return nil
}

func checkColumns(idx []int, dst []float64, n int) error {
	for _, j := range idx {
		if j < 0 || j >= n {
			return fmt.Errorf("column %d of a kernel with %d residuals", j, n)
		}
	}
	if len(dst) < len(idx)*n {
		return fmt.Errorf("%d columns of %d residuals need %d values, got %d", len(idx), n, len(idx)*n, len(dst))
	}
	return nil
}

// KernelBytes is the memory an exact dense K of e needs: the n×n matrix and
// NTK's work memory. Callers compare it with their limit to choose between
// NTK and a low-rank factor from Columns.
func KernelBytes(e Evaluator) int64 {
	n := int64(e.Layout().N)
	if p, ok := e.(*pinn); ok {
		return p.ntkWorkBytes() + 8*n*n
	}
	return 8 * n * n
}

// ColumnBytes is the memory Columns keeps for e: the cotangents of every
// layer (zero for the quadratic problem). Chunk buffers come on top, within
// the evaluator's limit.
func ColumnBytes(e Evaluator) int64 {
	if p, ok := e.(*pinn); ok {
		return p.cotangentBytes()
	}
	return 0
}

// ColumnChunkBytes is the memory of Columns' gathered rows and tiles for a
// request of k columns, on top of ColumnBytes.
func ColumnChunkBytes(e Evaluator, k int) int64 {
	if p, ok := e.(*pinn); ok {
		return int64(k) * p.chunkBytesPerColumn()
	}
	return 0
}
