//go:build goexperiment.simd

package model

import (
	"math"
	"math/bits"
	"simd/archsimd"
)

// The kernels four values at a time with AVX2 (Go's experimental SIMD,
// GOEXPERIMENT=simd), falling back to the scalar loops without AVX2 and for
// the tails. Every lane performs the scalar loop's IEEE operations in its
// order (vector multiplies and adds are never fused), so the results are the
// same bits (TestKernelsMatchScalar).
//
// Every kernel ends with VZEROUPPER (archsimd.ClearAVXUpperBits): while the
// upper halves of the vector registers are "dirty", code that mixes SSE and
// VEX encodings pays a state transition on this project's Xeon, and
// math.Exp, whose assembly does, ran 100 times slower (1.3 µs a call; 11 ns
// clean; XGETBV(1) shows the state). Go 1.26's SIMD experiment has a second
// source of that state which no kernel can clear for others: asynchronous
// preemption saves and restores the vector registers with 256- and 512-bit
// moves and returns without VZEROUPPER, so after a goroutine is preempted
// its thread runs math.Exp slowly until the next VZEROUPPER (and code built
// with GOAMD64=v3, whose FMAs are VEX, slowly everywhere: a test of pure Go
// code took 300 s instead of 5). GODEBUG=asyncpreemptoff=1 removes it. So
// the SIMD build is an opt-in for runs that set that too (scripts/
// bench-pytorch.sh SIMD=1), not the default.

var haveAVX2 = archsimd.X86.AVX2()

// The backward pass keeps its vector kernels one by one (fusedShape).
const fusedKernels = false

// vectorKernels reports whether this build's kernels are vector ones.
const vectorKernels = true

func bc(x float64) archsimd.Float64x4 { return archsimd.BroadcastFloat64x4(x) }

func load(s []float64) archsimd.Float64x4 { return archsimd.LoadFloat64x4Slice(s) }

func tanhBias(t, a, b []float64, keep bool) {
	if !haveAVX2 || len(t) < 4 {
		tanhBiasGo(t, a, b, keep)
		return
	}
	n := len(t)
	a = a[:n]
	if b != nil {
		b = b[:n]
	}
	// math.Tanh's rational approximation for 0 < |x| < 0.625,
	//
	//	x + x·s·((P0·s + P1)·s + P2) / (((s + Q0)·s + Q1)·s + Q2), s = x²,
	//
	// by its operations (with GOAMD64=v3 the compiler fuses math.Tanh's
	// multiply-adds, and so does this: fusedTanh).
	p0, p1, p2 := bc(tanhP0), bc(tanhP1), bc(tanhP2)
	q0, q1, q2 := bc(tanhQ0), bc(tanhQ1), bc(tanhQ2)
	absMask := archsimd.BroadcastUint64x4(0x7fffffffffffffff)
	limit, zero := bc(0.625), bc(0)
	// Chunks of up to 256 values: the vector pass marks the groups of four
	// with a lane outside the rational range (zeros, whose sign math.Tanh
	// keeps, large values, NaNs), and math.Tanh itself redoes those lanes
	// once the vector state is cleared.
	var saved [256]float64 // the redone lanes' arguments: t may be a itself
	for c := 0; c < n; c += 256 {
		end := min(c+256, n)
		var redo uint64
		j := c
		for ; j+4 <= end; j += 4 {
			x := load(a[j:])
			if b != nil {
				x = x.Add(load(b[j:]))
				if keep {
					x.StoreSlice(a[j:])
				}
			}
			s := x.Mul(x)
			var num, den archsimd.Float64x4
			if fusedTanh {
				num = p0.MulAdd(s, p1).MulAdd(s, p2)
				den = s.Add(q0).MulAdd(s, q1).MulAdd(s, q2)
			} else {
				num = p0.Mul(s).Add(p1).Mul(s).Add(p2)
				den = s.Add(q0).Mul(s).Add(q1).Mul(s).Add(q2)
			}
			z := x.AsUint64x4().And(absMask).AsFloat64x4()
			if z.Less(limit).And(z.Greater(zero)).ToBits() != 0xf {
				redo |= 1 << ((j - c) / 4)
				x.StoreSlice(saved[j-c:])
			}
			x.Add(x.Mul(s).Mul(num).Div(den)).StoreSlice(t[j:])
		}
		archsimd.ClearAVXUpperBits()
		for ; redo != 0; redo &= redo - 1 {
			k := 4 * bits.TrailingZeros64(redo)
			for i := k; i < k+4; i++ {
				t[c+i] = math.Tanh(saved[i])
			}
		}
		for ; j < end; j++ { // the tail, fewer than four
			x := a[j]
			if b != nil {
				x = float64(x + b[j])
				if keep {
					a[j] = x
				}
			}
			t[j] = math.Tanh(x)
		}
	}
}

func tanhD1(d1, t []float64) {
	n := len(d1)
	if !haveAVX2 || n < 4 {
		tanhD1Go(d1, t)
		return
	}
	t = t[:n]
	one := bc(1)
	j := 0
	for ; j+4 <= n; j += 4 {
		v := load(t[j:])
		one.Sub(v.Mul(v)).StoreSlice(d1[j:])
	}
	archsimd.ClearAVXUpperBits()
	tanhD1Go(d1[j:], t[j:])
}

func tanhD12(d1, d2, t []float64) {
	n := len(d1)
	if !haveAVX2 || n < 4 {
		tanhD12Go(d1, d2, t)
		return
	}
	t, d2 = t[:n], d2[:n]
	one, m2 := bc(1), bc(-2)
	j := 0
	for ; j+4 <= n; j += 4 {
		v := load(t[j:])
		s1 := one.Sub(v.Mul(v))
		s1.StoreSlice(d1[j:])
		m2.Mul(v).Mul(s1).StoreSlice(d2[j:])
	}
	archsimd.ClearAVXUpperBits()
	tanhD12Go(d1[j:], d2[j:], t[j:])
}

func tanhD123(d1, d2, d3, t []float64) {
	n := len(d1)
	if !haveAVX2 || n < 4 {
		tanhD123Go(d1, d2, d3, t)
		return
	}
	t, d2, d3 = t[:n], d2[:n], d3[:n]
	one, m2, two := bc(1), bc(-2), bc(2)
	j := 0
	for ; j+4 <= n; j += 4 {
		v := load(t[j:])
		s1 := one.Sub(v.Mul(v))
		s1.StoreSlice(d1[j:])
		m2.Mul(v).Mul(s1).StoreSlice(d2[j:])
		m2.Mul(s1).Mul(s1.Sub(two.Mul(v).Mul(v))).StoreSlice(d3[j:])
	}
	archsimd.ClearAVXUpperBits()
	tanhD123Go(d1[j:], d2[j:], d3[j:], t[j:])
}

func mulInto(dst, x, y []float64) {
	n := len(dst)
	if !haveAVX2 || n < 4 {
		mulGo(dst, x, y)
		return
	}
	x, y = x[:n], y[:n]
	j := 0
	for ; j+4 <= n; j += 4 {
		load(x[j:]).Mul(load(y[j:])).StoreSlice(dst[j:])
	}
	archsimd.ClearAVXUpperBits()
	mulGo(dst[j:], x[j:], y[j:])
}

func addInto(dst, x []float64) {
	n := len(dst)
	if !haveAVX2 || n < 4 {
		addGo(dst, x)
		return
	}
	x = x[:n]
	j := 0
	for ; j+4 <= n; j += 4 {
		load(dst[j:]).Add(load(x[j:])).StoreSlice(dst[j:])
	}
	archsimd.ClearAVXUpperBits()
	addGo(dst[j:], x[j:])
}

func quadInto(q []float64, c float64, x, y []float64, first bool) {
	n := len(q)
	if !haveAVX2 || n < 4 {
		quadGo(q, c, x, y, first)
		return
	}
	x, y = x[:n], y[:n]
	cv := bc(c)
	j := 0
	for ; j+4 <= n; j += 4 {
		v := cv.Mul(load(x[j:])).Mul(load(y[j:]))
		if !first {
			v = load(q[j:]).Add(v)
		}
		v.StoreSlice(q[j:])
	}
	archsimd.ClearAVXUpperBits()
	quadGo(q[j:], c, x[j:], y[j:], first)
}

func mul2Into(dst, x1, y1, x2, y2 []float64) {
	n := len(dst)
	if !haveAVX2 || n < 4 {
		mul2Go(dst, x1, y1, x2, y2)
		return
	}
	x1, y1, x2, y2 = x1[:n], y1[:n], x2[:n], y2[:n]
	j := 0
	for ; j+4 <= n; j += 4 {
		load(x1[j:]).Mul(load(y1[j:])).Add(load(x2[j:]).Mul(load(y2[j:]))).StoreSlice(dst[j:])
	}
	archsimd.ClearAVXUpperBits()
	mul2Go(dst[j:], x1[j:], y1[j:], x2[j:], y2[j:])
}

func gradBack(ak, av, d1, d2, hk, xk []float64) {
	n := len(ak)
	if !haveAVX2 || n < 4 {
		gradBackGo(ak, av, d1, d2, hk, xk)
		return
	}
	av, d1, d2, hk, xk = av[:n], d1[:n], d2[:n], hk[:n], xk[:n]
	j := 0
	for ; j+4 <= n; j += 4 {
		v := load(hk[j:])
		load(d1[j:]).Mul(v).StoreSlice(ak[j:])
		load(av[j:]).Add(load(d2[j:]).Mul(v).Mul(load(xk[j:]))).StoreSlice(av[j:])
	}
	archsimd.ClearAVXUpperBits()
	gradBackGo(ak[j:], av[j:], d1[j:], d2[j:], hk[j:], xk[j:])
}

func opBack(ap, av, d1, d2, d3, hp, xp, q []float64) {
	n := len(ap)
	if !haveAVX2 || n < 4 {
		opBackGo(ap, av, d1, d2, d3, hp, xp, q)
		return
	}
	av, d1, d2, d3, hp, xp, q = av[:n], d1[:n], d2[:n], d3[:n], hp[:n], xp[:n], q[:n]
	j := 0
	for ; j+4 <= n; j += 4 {
		v := load(hp[j:])
		load(d1[j:]).Mul(v).StoreSlice(ap[j:])
		u := load(d2[j:]).Mul(v).Mul(load(xp[j:])).Add(load(d3[j:]).Mul(v).Mul(load(q[j:])))
		load(av[j:]).Add(u).StoreSlice(av[j:])
	}
	archsimd.ClearAVXUpperBits()
	opBackGo(ap[j:], av[j:], d1[j:], d2[j:], d3[j:], hp[j:], xp[j:], q[j:])
}

func termBack(ai, aj, d2, hp []float64, c float64, xi, xj []float64) {
	n := len(ai)
	if !haveAVX2 || n < 4 {
		termBackGo(ai, aj, d2, hp, c, xi, xj)
		return
	}
	aj, d2, hp, xi, xj = aj[:n], d2[:n], hp[:n], xi[:n], xj[:n]
	cv := bc(c)
	j := 0
	for ; j+4 <= n; j += 4 {
		w := load(d2[j:]).Mul(load(hp[j:])).Mul(cv)
		load(ai[j:]).Add(w.Mul(load(xj[j:]))).StoreSlice(ai[j:])
		load(aj[j:]).Add(w.Mul(load(xi[j:]))).StoreSlice(aj[j:]) // after ai's store: ai and aj may be one row
	}
	archsimd.ClearAVXUpperBits()
	termBackGo(ai[j:], aj[j:], d2[j:], hp[j:], c, xi[j:], xj[j:])
}

func axpyInto(y []float64, a float64, x []float64) {
	n := len(y)
	if !haveAVX2 || n < 4 {
		axpyGo(y, a, x)
		return
	}
	x = x[:n]
	av := bc(a)
	j := 0
	for ; j+4 <= n; j += 4 {
		load(y[j:]).Add(av.Mul(load(x[j:]))).StoreSlice(y[j:])
	}
	archsimd.ClearAVXUpperBits()
	axpyGo(y[j:], a, x[j:])
}

func scaleInto(y []float64, a float64, x []float64) {
	n := len(y)
	if !haveAVX2 || n < 4 {
		scaleGo(y, a, x)
		return
	}
	x = x[:n]
	av := bc(a)
	j := 0
	for ; j+4 <= n; j += 4 {
		av.Mul(load(x[j:])).StoreSlice(y[j:])
	}
	archsimd.ClearAVXUpperBits()
	scaleGo(y[j:], a, x[j:])
}

// dot keeps the scalar loop's four running sums as the four lanes of one
// vector, so the same bits.
func dot(a, b []float64) float64 {
	n := len(a)
	if !haveAVX2 || n < 8 {
		return dotGo(a, b)
	}
	b = b[:n]
	var acc archsimd.Float64x4
	j := 0
	for ; j+4 <= n; j += 4 {
		acc = acc.Add(load(a[j:]).Mul(load(b[j:])))
	}
	var s [4]float64
	acc.StoreSlice(s[:])
	archsimd.ClearAVXUpperBits()
	s0, s1, s2, s3 := s[0], s[1], s[2], s[3]
	for ; j < n; j++ {
		s0 += float64(a[j] * b[j])
	}
	return (s0 + s1) + (s2 + s3)
}
