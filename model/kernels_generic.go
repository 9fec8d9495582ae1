//go:build !(goexperiment.simd && amd64)

package model

// Without the SIMD experiment the kernels are the portable scalar loops,
// and the backward pass fuses a point's kernels where it can (fusedShape).

const fusedKernels = true

// vectorKernels reports whether this build's kernels are vector ones.
const vectorKernels = false

func tanhBias(t, a, b []float64, keep bool)                       { tanhBiasGo(t, a, b, keep) }
func tanhD1(d1, t []float64)                                      { tanhD1Go(d1, t) }
func tanhD12(d1, d2, t []float64)                                 { tanhD12Go(d1, d2, t) }
func tanhD123(d1, d2, d3, t []float64)                            { tanhD123Go(d1, d2, d3, t) }
func mulInto(dst, x, y []float64)                                 { mulGo(dst, x, y) }
func addInto(dst, x []float64)                                    { addGo(dst, x) }
func quadInto(q []float64, c float64, x, y []float64, first bool) { quadGo(q, c, x, y, first) }
func mul2Into(dst, x1, y1, x2, y2 []float64)                      { mul2Go(dst, x1, y1, x2, y2) }
func gradBack(ak, av, d1, d2, hk, xk []float64)                   { gradBackGo(ak, av, d1, d2, hk, xk) }
func opBack(ap, av, d1, d2, d3, hp, xp, q []float64)              { opBackGo(ap, av, d1, d2, d3, hp, xp, q) }
func termBack(ai, aj, d2, hp []float64, c float64, xi, xj []float64) {
	termBackGo(ai, aj, d2, hp, c, xi, xj)
}
func axpyInto(y []float64, a float64, x []float64)  { axpyGo(y, a, x) }
func scaleInto(y []float64, a float64, x []float64) { scaleGo(y, a, x) }
func dot(a, b []float64) float64                    { return dotGo(a, b) }
