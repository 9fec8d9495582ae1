package model

import (
	"fmt"
	"math"
)

// Activation is a smooth elementwise nonlinearity of a hidden layer. The
// model needs its first three derivatives: the second derivative carries
// second-order input derivatives forward, and the backward pass through that
// needs the third.
type Activation int

// The supported activations.
const (
	Tanh Activation = iota
	Sin
	Softplus
)

var activationNames = [...]string{Tanh: "tanh", Sin: "sin", Softplus: "softplus"}

func (a Activation) String() string {
	if int(a) < len(activationNames) {
		return activationNames[a]
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// ParseActivation returns the activation with the given name.
func ParseActivation(name string) (Activation, error) {
	for i, n := range activationNames {
		if n == name {
			return Activation(i), nil
		}
	}
	return 0, fmt.Errorf("unknown activation %q (want one of %v)", name, activationNames)
}

// eval sets h = σ(a), d1 = σ'(a), d2 = σ”(a) and, when d3 is not nil,
// d3 = σ”'(a), elementwise over a.
func (act Activation) eval(a, h, d1, d2, d3 []float64) {
	h = h[:len(a)]
	d1 = d1[:len(a)]
	d2 = d2[:len(a)]
	if d3 != nil {
		d3 = d3[:len(a)]
	}
	switch act {
	case Tanh:
		tanhSlice(h, a)
		if d3 == nil {
			for j, t := range h {
				s1 := 1 - t*t
				d1[j] = s1
				d2[j] = -2 * t * s1
			}
			break
		}
		for j, t := range h {
			s1 := 1 - t*t
			d1[j] = s1
			d2[j] = -2 * t * s1
			d3[j] = -2 * s1 * (s1 - 2*t*t)
		}
	case Sin:
		for j, x := range a {
			s, c := math.Sincos(x)
			h[j] = s
			d1[j] = c
			d2[j] = -s
			if d3 != nil {
				d3[j] = -c
			}
		}
	case Softplus:
		for j, x := range a {
			var sg, sp float64
			if x > 0 {
				e := math.Exp(-x)
				sg = 1 / (1 + e)
				sp = x + math.Log1p(e)
			} else {
				e := math.Exp(x)
				sg = e / (1 + e)
				sp = math.Log1p(e)
			}
			h[j] = sp
			d1[j] = sg
			d2[j] = sg * (1 - sg)
			if d3 != nil {
				d3[j] = sg * (1 - sg) * (1 - 2*sg)
			}
		}
	default:
		panic(fmt.Sprintf("model: %v has no derivatives", act))
	}
}

// value sets h = σ(a) only.
func (act Activation) value(a, h []float64) {
	h = h[:len(a)]
	switch act {
	case Tanh:
		tanhSlice(h, a)
	case Sin:
		for j, x := range a {
			h[j] = math.Sin(x)
		}
	case Softplus:
		for j, x := range a {
			if x > 0 {
				h[j] = x + math.Log1p(math.Exp(-x))
			} else {
				h[j] = math.Log1p(math.Exp(x))
			}
		}
	default:
		panic(fmt.Sprintf("model: %v has no value", act))
	}
}

// The constants of tanh: ln 2 split so that k·ln2Hi is exact for the k
// that occur, and the clamp beyond which tanh rounds to ±1.
const (
	ln2Hi   = 6.93147180369123816490e-01
	ln2Lo   = 1.90821492927058770002e-10
	log2e   = 1.44269504088896338700e+00
	tanhMax = 20     // tanh(x) rounds to 1 for x ≥ 19.1
	roundK  = 0x1p52 // adding and subtracting 1.5·2^52 rounds to an integer
)

// tanhSlice sets t[j] = tanh(a[j]) = sign(a)·m/(m+2) with m = expm1(2|a|),
// to within 2 ulp of math.Tanh. expm1(y) = 2^k·expm1(r) + (2^k − 1) with
// y = k·ln2 + r, |r| ≤ ln2/2, and expm1(r) = r + r²·P(r), P the Taylor
// polynomial through r^11/13! (truncation below 1e−17 relative) evaluated
// by Estrin's scheme, so the dependency chains stay short. Unlike math.Tanh
// it is a loop body, not a call per element; plain multiplications and
// additions (no math.FMA, which costs a CPU check per call on amd64 v1)
// give the same bits on every x86-64 CPU. NaN propagates.
//
// Go 1.26's experimental SIMD (GOEXPERIMENT=simd) ran the same operations
// 4.5 times faster eight at a time, but in that build math.Exp and
// math.Tanh elsewhere in the process ran about 80 times slower (dirty upper
// AVX state in front of SSE code), so it is not used.
func tanhSlice(t, a []float64) {

	t = t[:len(a)]
	for j, x := range a {
		ax := math.Abs(x)
		if ax > tanhMax {
			ax = tanhMax
		}
		y := 2 * ax
		kr := y*log2e + 1.5*roundK
		k := kr - 1.5*roundK
		r := (y - k*ln2Hi) - k*ln2Lo
		r2 := r * r
		r4 := r2 * r2
		q0 := 1.0/2 + r*(1.0/6)
		q1 := 1.0/24 + r*(1.0/120)
		q2 := 1.0/720 + r*(1.0/5040)
		q3 := 1.0/40320 + r*(1.0/362880)
		q4 := 1.0/3628800 + r*(1.0/39916800)
		q5 := 1.0/479001600 + r*(1.0/6227020800)
		s0 := q0 + r2*q1
		s1 := q2 + r2*q3
		s2 := q4 + r2*q5
		p := s0 + r4*(s1+r4*s2)
		em := r + r2*p
		s := math.Float64frombits((math.Float64bits(kr) + 1023) << 52)
		em = s*em + (s - 1)
		t[j] = math.Copysign(em/(em+2), x)
	}
}
