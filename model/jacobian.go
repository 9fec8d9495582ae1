package model

import "fmt"

// Jacobian sets dst (n×p, row-major) to J at the evaluator's base point,
// one backward pass per residual. It is the plain route that the structured
// NTK and Diagonal are checked against, so it refuses sizes over limit bytes.
func Jacobian(e Evaluator, dst []float64, limit int64) error {
	lay := e.Layout()
	n, p := lay.N, lay.P
	if need := 8 * int64(n) * int64(p); need > limit {
		return fmt.Errorf("the %d×%d Jacobian needs %s, over the limit of %s", n, p, formatBytes(need), formatBytes(limit))
	}
	v := make([]float64, n)
	for i := 0; i < n; i++ {
		v[i] = 1
		e.Backward([]Cotangent{{V: v, Dst: dst[i*p : (i+1)*p]}})
		v[i] = 0
	}
	return nil
}

// BlockTraces sets dst[b] = Tr K_bb, the exact block traces, from the
// diagonal of K; diag is scratch of length n.
func BlockTraces(e Evaluator, diag, dst []float64) {
	e.Diagonal(diag)
	e.Layout().BlockSums(diag, dst)
}

// Weights returns the NTK loss weights λ_b = Tr K / Tr K_bb (paper eq. 5)
// from block traces. A block with a zero trace gets weight +Inf.
func Weights(blockTraces, dst []float64) {
	var tr float64
	for _, t := range blockTraces {
		tr += t
	}
	for b, t := range blockTraces {
		dst[b] = tr / t
	}
}

// CheckKernelMemory reports whether an n×n kernel fits in limit bytes,
// before a caller allocates one.
func CheckKernelMemory(lay *Layout, limit int64) error {
	if limit <= 0 {
		limit = DefaultMaxMemory
	}
	if need := 8 * int64(lay.N) * int64(lay.N); need > limit {
		return fmt.Errorf("a %d×%d kernel needs %s, over the limit of %s: use fewer collocation points or raise the limit", lay.N, lay.N, formatBytes(need), formatBytes(limit))
	}
	return nil
}
