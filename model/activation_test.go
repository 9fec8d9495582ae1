package model

import (
	"math"
	"testing"
)

// tanhSlice is within 2 ulp of math.Tanh over the range where tanh is not
// ±1, keeps the sign of zero, saturates at ±1 and propagates NaN.
func TestTanhAgainstMath(t *testing.T) {
	const n = 200001
	a := make([]float64, 0, 3*n+8)
	for i := 0; i < n; i++ {
		x := (float64(i)/(n-1)*2 - 1) * 21
		a = append(a, x, x*1e-3, x*1e-9)
	}
	a = append(a, 0, math.Copysign(0, -1), 1e-310, -1e-310, 700, -700, math.Inf(1), math.Inf(-1))
	h := make([]float64, len(a))
	tanhSlice(h, a)
	worst := 0.0
	for i, x := range a {
		want := math.Tanh(x)
		if math.Float64bits(h[i]) == math.Float64bits(want) {
			continue
		}
		ulp := math.Abs(h[i]-want) / (math.Nextafter(math.Abs(want), math.Inf(1)) - math.Abs(want))
		worst = math.Max(worst, ulp)
		if ulp > 2 || math.Signbit(h[i]) != math.Signbit(want) {
			t.Fatalf("tanh(%v) = %v, math.Tanh %v (%.1f ulp)", x, h[i], want, ulp)
		}
	}
	t.Logf("largest difference from math.Tanh: %.2f ulp", worst)
	tanhSlice(h[:1], []float64{math.NaN()})
	if !math.IsNaN(h[0]) {
		t.Errorf("tanh(NaN) = %v", h[0])
	}
}
