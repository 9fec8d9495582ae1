package model

import "math"

// The element-wise kernels of the hot path: each maps whole rows (one
// stream of one point, a hidden layer wide) in one loop, so the compiler
// drops the bounds checks and keeps everything in registers. Each has a
// portable scalar form here (the *Go functions) and, in builds with
// GOEXPERIMENT=simd on amd64, a vector form (kernels_simd_amd64.go) that
// performs the same IEEE operations in the same order on every element, so
// both builds give the same bits (TestKernelsMatchScalar). The explicit
// float64 conversions stop the compiler from fusing a multiply and an add
// into one FMA (it does with GOAMD64=v3), which would change the bits.

// Coefficients of math.Tanh's rational approximation of tanh on
// |x| < 0.625 (from Cephes): x + x·s·((P0·s + P1)·s + P2) /
// (((s + Q0)·s + Q1)·s + Q2), s = x².
const (
	tanhP0 = -9.64399179425052238628e-1
	tanhP1 = -9.92877231001918586564e1
	tanhP2 = -1.61468768441708447952e3
	tanhQ0 = 1.12811678491632931402e2
	tanhQ1 = 2.23548839060100448583e3
	tanhQ2 = 4.84406305325125486048e3
)

// tanhPv and tanhQv hold the coefficients as math.Tanh does, in tables
// read at run time rather than as constants: with GOAMD64=v3 the compiler
// then fuses the multiply-adds below as it fuses math.Tanh's (with
// constants it fused them differently: other bits). Never written.
var (
	tanhPv = [...]float64{tanhP0, tanhP1, tanhP2}
	tanhQv = [...]float64{tanhQ0, tanhQ1, tanhQ2}
)

// tanhBiasGo sets t = tanh(a + b) (b nil: tanh(a)); with keep it also
// stores a + b back into a. Where most values of a hidden layer fall
// (0 < |x| < 0.625: all of the wave network's at initialization) it
// evaluates math.Tanh's rational approximation by math.Tanh's own
// operations in the loop, with no call per value (a quarter faster); it
// calls math.Tanh elsewhere. The same bits as math.Tanh (TestTanhIsMathTanh,
// also with GOAMD64=v3): no float64 conversions here, so that the compiler
// fuses these multiply-adds exactly where it fuses math.Tanh's.
func tanhBiasGo(t, a, b []float64, keep bool) {
	a = a[:len(t)]
	if b != nil {
		b = b[:len(t)]
	}
	for j, x := range a {
		if b != nil {
			x = float64(x + b[j])
			if keep {
				a[j] = x
			}
		}
		if z := math.Abs(x); z < 0.625 && x != 0 {
			s := x * x
			t[j] = x + x*s*((tanhPv[0]*s+tanhPv[1])*s+tanhPv[2])/(((s+tanhQv[0])*s+tanhQv[1])*s+tanhQv[2])
		} else {
			t[j] = math.Tanh(x)
		}
	}
}

// tanhD1Go sets d1 = σ' = 1 − t² from t = tanh(a).
func tanhD1Go(d1, t []float64) {
	t = t[:len(d1)]
	for j, v := range t {
		d1[j] = 1 - float64(v*v)
	}
}

// tanhD12Go sets d1 = σ' and d2 = σ” = −2tσ' from t = tanh(a).
func tanhD12Go(d1, d2, t []float64) {
	t, d2 = t[:len(d1)], d2[:len(d1)]
	for j, v := range t {
		s1 := 1 - float64(v*v)
		d1[j] = s1
		d2[j] = float64(-2*v) * s1
	}
}

// tanhD123Go sets d1, d2 and d3 = σ”' = −2σ'(σ' − 2t²) from t = tanh(a).
func tanhD123Go(d1, d2, d3, t []float64) {
	t, d2, d3 = t[:len(d1)], d2[:len(d1)], d3[:len(d1)]
	for j, v := range t {
		s1 := 1 - float64(v*v)
		d1[j] = s1
		d2[j] = float64(-2*v) * s1
		d3[j] = float64(-2*s1) * (s1 - float64(float64(2*v)*v))
	}
}

// mulGo sets dst = x ⊙ y.
func mulGo(dst, x, y []float64) {
	x, y = x[:len(dst)], y[:len(dst)]
	for j := range dst {
		dst[j] = x[j] * y[j]
	}
}

// addGo sets dst += x.
func addGo(dst, x []float64) {
	x = x[:len(dst)]
	for j := range dst {
		dst[j] += x[j]
	}
}

// quadGo sets q = c·x ⊙ y (first) or q += c·x ⊙ y: one term of an
// operator's quadratic form.
func quadGo(q []float64, c float64, x, y []float64, first bool) {
	x, y = x[:len(q)], y[:len(q)]
	if first {
		for j := range q {
			q[j] = float64(c*x[j]) * y[j]
		}
		return
	}
	for j := range q {
		q[j] += float64(float64(c*x[j]) * y[j])
	}
}

// mul2Go sets dst = x1 ⊙ y1 + x2 ⊙ y2.
func mul2Go(dst, x1, y1, x2, y2 []float64) {
	x1, y1, x2, y2 = x1[:len(dst)], y1[:len(dst)], x2[:len(dst)], y2[:len(dst)]
	for j := range dst {
		dst[j] = float64(x1[j]*y1[j]) + float64(x2[j]*y2[j])
	}
}

// gradBackGo is the backward map of a first-derivative stream:
// ak = d1 ⊙ hk, and av += (d2 ⊙ hk) ⊙ xk.
func gradBackGo(ak, av, d1, d2, hk, xk []float64) {
	av, d1, d2, hk, xk = av[:len(ak)], d1[:len(ak)], d2[:len(ak)], hk[:len(ak)], xk[:len(ak)]
	for j, v := range hk {
		ak[j] = d1[j] * v
		av[j] += float64(float64(d2[j]*v) * xk[j])
	}
}

// opBackGo is the backward map of an operator stream:
// ap = d1 ⊙ hp, and av += (d2 ⊙ hp) ⊙ xp + (d3 ⊙ hp) ⊙ q.
func opBackGo(ap, av, d1, d2, d3, hp, xp, q []float64) {
	av, d1, d2, d3, hp, xp, q = av[:len(ap)], d1[:len(ap)], d2[:len(ap)], d3[:len(ap)], hp[:len(ap)], xp[:len(ap)], q[:len(ap)]
	for j, v := range hp {
		ap[j] = d1[j] * v
		av[j] += float64(float64(float64(d2[j]*v)*xp[j]) + float64(float64(d3[j]*v)*q[j]))
	}
}

// termBackGo is the backward map of one term c·a_i a_j of an operator's
// quadratic form: with w = (d2 ⊙ hp)·c, ai += w ⊙ xj, then aj += w ⊙ xi
// (ai and aj may be the same row).
func termBackGo(ai, aj, d2, hp []float64, c float64, xi, xj []float64) {
	aj, d2, hp, xi, xj = aj[:len(ai)], d2[:len(ai)], hp[:len(ai)], xi[:len(ai)], xj[:len(ai)]
	for j, v := range hp {
		w := float64(d2[j]*v) * c
		ai[j] += float64(w * xj[j])
		aj[j] += float64(w * xi[j])
	}
}

// axpyGo sets y += a·x.
func axpyGo(y []float64, a float64, x []float64) {
	x = x[:len(y)]
	for j := range y {
		y[j] += float64(a * x[j])
	}
}

// scaleGo sets y = a·x.
func scaleGo(y []float64, a float64, x []float64) {
	x = x[:len(y)]
	for j := range y {
		y[j] = a * x[j]
	}
}

// dotGo is Σ a_j b_j with four running sums (lane j mod 4), added as
// (s0 + s1) + (s2 + s3).
func dotGo(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(a); j += 4 {
		s0 += float64(a[j] * b[j])
		s1 += float64(a[j+1] * b[j+1])
		s2 += float64(a[j+2] * b[j+2])
		s3 += float64(a[j+3] * b[j+3])
	}
	for ; j < len(a); j++ {
		s0 += float64(a[j] * b[j])
	}
	return (s0 + s1) + (s2 + s3)
}
