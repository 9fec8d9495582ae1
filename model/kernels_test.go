package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// kernelInput is n values of mixed size and sign, with the special values
// the kernels must pass through as the scalar loops do: signed zeros,
// values at and around tanh's rational range |x| < 0.625, huge values,
// infinities and NaN.
func kernelInput(rng *rand.Rand, n int) []float64 {
	special := []float64{0, math.Copysign(0, -1), 0.625, -0.625, math.Nextafter(0.625, 0), 1e-300, 5e-324, 44, -45, 1e300, math.Inf(1), math.Inf(-1), math.NaN()}
	v := make([]float64, n)
	for i := range v {
		switch k := rng.IntN(10); {
		case k == 0:
			v[i] = special[rng.IntN(len(special))]
		case k < 4:
			v[i] = rng.NormFloat64() * 3
		default:
			v[i] = rng.NormFloat64() * 0.3
		}
	}
	return v
}

func sameSlices(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for i := range want {
		// NaN payloads may differ: the operand order of a commutative
		// operation is the compiler's choice, and results with NaN are
		// refused wherever they are used.
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			t.Fatalf("%s: value %d is %v, the scalar loop gives %v", name, i, got[i], want[i])
		}
	}
}

// The kernels of this build (vector ones with GOEXPERIMENT=simd on amd64)
// give the bits of the portable scalar loops on every length, including
// tails and rows not a multiple of the vector width, and tanhBias gives
// math.Tanh's bits.
func TestKernelsMatchScalar(t *testing.T) {
	if !vectorKernels {
		// This build's kernels are the scalar loops themselves (see
		// kernels_generic.go); .ci/run runs this test in the SIMD build.
		t.Skip("no vector kernels in this build (GOEXPERIMENT=simd builds them)")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 7, 8, 9, 31, 255, 256, 257, 500, 1000} {
		in := make([][]float64, 8)
		for k := range in {
			in[k] = kernelInput(rng, n)
		}
		c := rng.NormFloat64()
		out := func() ([]float64, []float64) {
			x := kernelInput(rng, n)
			return x, append([]float64(nil), x...)
		}
		for _, bias := range []bool{false, true} {
			for _, keep := range []bool{false, true} {
				var b []float64
				if bias {
					b = in[1]
				}
				a1, a2 := append([]float64(nil), in[0]...), append([]float64(nil), in[0]...)
				t1, t2 := make([]float64, n), make([]float64, n)
				tanhBias(t1, a1, b, keep)
				tanhBiasGo(t2, a2, b, keep)
				sameSlices(t, "tanhBias", t1, t2)
				sameSlices(t, "tanhBias kept", a1, a2)
				a3 := append([]float64(nil), in[0]...) // in place: t = a
				tanhBias(a3, a3, b, keep)
				sameSlices(t, "tanhBias in place", a3, t2)
				for i, x := range in[0] {
					if bias {
						x += b[i]
					}
					if got, want := t2[i], math.Tanh(x); math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
						t.Fatalf("tanhBiasGo(%v) = %v, math.Tanh gives %v", x, got, want)
					}
				}
			}
		}
		d1, e1 := out()
		d2, e2 := out()
		d3, e3 := out()
		tanhD1(d1, in[0])
		tanhD1Go(e1, in[0])
		sameSlices(t, "tanhD1", d1, e1)
		tanhD12(d1, d2, in[0])
		tanhD12Go(e1, e2, in[0])
		sameSlices(t, "tanhD12", d2, e2)
		tanhD123(d1, d2, d3, in[0])
		tanhD123Go(e1, e2, e3, in[0])
		sameSlices(t, "tanhD123", d3, e3)
		sameSlices(t, "tanhD123 d2", d2, e2)

		x, y := out()
		mulInto(x, in[0], in[1])
		mulGo(y, in[0], in[1])
		sameSlices(t, "mul", x, y)
		x, y = out()
		addInto(x, in[2])
		addGo(y, in[2])
		sameSlices(t, "add", x, y)
		for _, first := range []bool{true, false} {
			x, y = out()
			quadInto(x, c, in[0], in[1], first)
			quadGo(y, c, in[0], in[1], first)
			sameSlices(t, "quad", x, y)
		}
		x, y = out()
		mul2Into(x, in[0], in[1], in[2], in[3])
		mul2Go(y, in[0], in[1], in[2], in[3])
		sameSlices(t, "mul2", x, y)

		ak, bk := out()
		av, bv := out()
		gradBack(ak, av, in[0], in[1], in[2], in[3])
		gradBackGo(bk, bv, in[0], in[1], in[2], in[3])
		sameSlices(t, "gradBack ak", ak, bk)
		sameSlices(t, "gradBack av", av, bv)
		opBack(ak, av, in[0], in[1], in[2], in[3], in[4], in[5])
		opBackGo(bk, bv, in[0], in[1], in[2], in[3], in[4], in[5])
		sameSlices(t, "opBack ap", ak, bk)
		sameSlices(t, "opBack av", av, bv)
		termBack(ak, av, in[0], in[1], c, in[2], in[3])
		termBackGo(bk, bv, in[0], in[1], c, in[2], in[3])
		sameSlices(t, "termBack ai", ak, bk)
		sameSlices(t, "termBack aj", av, bv)
		termBack(ak, ak, in[0], in[1], c, in[2], in[3]) // i = j: one row
		termBackGo(bk, bk, in[0], in[1], c, in[2], in[3])
		sameSlices(t, "termBack ai = aj", ak, bk)

		x, y = out()
		axpyInto(x, c, in[0])
		axpyGo(y, c, in[0])
		sameSlices(t, "axpy", x, y)
		x, y = out()
		scaleInto(x, c, in[0])
		scaleGo(y, c, in[0])
		sameSlices(t, "scale", x, y)
		if got, want := dot(in[0], in[1]), dotGo(in[0], in[1]); math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("dot of %d values: %v, the scalar loop gives %v", n, got, want)
		}
	}
}

// tanhBiasGo evaluates math.Tanh's rational branch by its own operations:
// the same bits as math.Tanh over that whole range (a dense sweep, and the
// values around its ends and around zero), and outside it.
func TestTanhIsMathTanh(t *testing.T) {
	var xs []float64
	const n = 1 << 20
	for i := 0; i <= n; i++ {
		xs = append(xs, -0.7+1.4*float64(i)/n)
	}
	for _, c := range []float64{0.625, 0, 5e-324, 1e-8, 1, 22, 44.01} {
		x := c
		for range 64 {
			xs = append(xs, x, -x)
			x = math.Nextafter(x, math.Inf(-1))
		}
		x = c
		for range 64 {
			xs = append(xs, x, -x)
			x = math.Nextafter(x, math.Inf(1))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1 << 16 {
		xs = append(xs, rng.NormFloat64()*math.Exp2(float64(rng.IntN(40)-20)))
	}
	xs = append(xs, math.Inf(1), math.Inf(-1), math.NaN(), math.Copysign(0, -1))
	got := make([]float64, len(xs))
	tanhBiasGo(got, xs, nil, false)
	for i, x := range xs {
		if want := math.Tanh(x); math.Float64bits(got[i]) != math.Float64bits(want) && !(math.IsNaN(got[i]) && math.IsNaN(want)) {
			t.Fatalf("tanhBiasGo(%v) = %v, math.Tanh gives %v", x, got[i], want)
		}
	}
}
