package model

import (
	"math"
	"runtime"
	"testing"
)

// The element-wise work and the pieces of the matrix products split over
// several goroutines give the same bits as on one: R, Jᵀv with per-block
// gradients, J w, the diagonal and K.
func TestSplitIsBitIdentical(t *testing.T) {
	s := mustSetup(t, "wave", []int{2, 48, 40, 1})
	eval := func(procs int) [][]float64 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		ev, theta := newEval(t, s, 4)
		cutAll(ev) // the products in pieces, as on the wave network
		if procs > 1 && ev.(*pinn).splitParts(ev.(*pinn).npts, 48*ev.(*pinn).rows/ev.(*pinn).npts) < 2 {
			t.Fatal("the test network is too small to be split")
		}
		lay := ev.Layout()
		n, p := lay.N, lay.P
		r, r2, jw, diag := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		ev.Forward(theta, r)
		shifted := append([]float64(nil), theta...)
		for i := range shifted {
			shifted[i] *= 1.001
		}
		ev.Residual(shifted, r2)
		g, full := randVec(2, n), make([]float64, p)
		per := make([][]float64, len(lay.Blocks))
		for b := range per {
			per[b] = make([]float64, p)
		}
		ev.Backward([]Cotangent{{V: g, Dst: full}, {V: r, PerBlock: per}})
		ev.JVP(randVec(3, p), jw)
		ev.Diagonal(diag)
		K := make([]float64, n*n)
		if err := ev.NTK(K); err != nil {
			t.Fatal(err)
		}
		return append([][]float64{r, r2, full, jw, diag, K}, per...)
	}
	one, four := eval(1), eval(4)
	for k := range one {
		for i := range one[k] {
			if math.Float64bits(one[k][i]) != math.Float64bits(four[k][i]) {
				t.Fatalf("result %d differs at %d: %v on one thread, %v on four", k, i, one[k][i], four[k][i])
			}
		}
	}
}
