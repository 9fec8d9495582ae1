package figures

import (
	"math"
	"testing"
)

func TestFitLogLogExactPowerLaws(t *testing.T) {
	for _, slope := range []float64{-1, -0.5, 2, 0} {
		const c = 3.7
		var x, y []float64
		for k := range 12 {
			xi := 10 * math.Pow(2, float64(k))
			x = append(x, xi)
			y = append(y, c*math.Pow(xi, slope))
		}
		got, icpt, lo, hi, err := FitLogLog(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-slope) > 1e-12 || math.Abs(icpt-math.Log10(c)) > 1e-12 {
			t.Errorf("slope %g: got slope %.15g, intercept %.15g; want %g, %.15g", slope, got, icpt, slope, math.Log10(c))
		}
		if math.Abs(lo-slope) > 1e-12 || math.Abs(hi-slope) > 1e-12 {
			t.Errorf("slope %g: interval [%g, %g] should collapse on an exact fit", slope, lo, hi)
		}
	}
}

func TestFitLogLogHandComputed(t *testing.T) {
	// log10 x = 0, 1, 2, 3 and log10 y = 0.1, 0.9, 2.2, 2.8.
	// Means 1.5 and 1.5; Sxx = 5, Sxy = 4.7, so slope = 0.94 and
	// intercept = 1.5 − 0.94·1.5 = 0.09. Residuals 0.01, −0.13, 0.23,
	// −0.11 give SSE = 0.082 on 2 degrees of freedom, so the slope's
	// standard error is √(0.082/2/5), and t(0.975; 2) = 4.302652729749464.
	x := []float64{1, 10, 100, 1000}
	y := []float64{math.Pow(10, 0.1), math.Pow(10, 0.9), math.Pow(10, 2.2), math.Pow(10, 2.8)}
	// Unusable points are skipped.
	x = append(x, -1, 5, math.NaN(), 7)
	y = append(y, 3, 0, 4, math.Inf(1))

	slope, icpt, lo, hi, err := FitLogLog(x, y)
	if err != nil {
		t.Fatal(err)
	}
	half := 4.302652729749464 * math.Sqrt(0.082/2/5)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"slope", slope, 0.94},
		{"intercept", icpt, 0.09},
		{"lower", lo, 0.94 - half},
		{"upper", hi, 0.94 + half},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %.12g, want %.12g", c.name, c.got, c.want)
		}
	}
}

func TestFitLogLogErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		x, y []float64
	}{
		{"two points", []float64{1, 10}, []float64{1, 0.1}},
		{"three points, one unusable", []float64{1, 10, 100}, []float64{1, 0.1, -1}},
		{"mismatched", []float64{1, 10, 100}, []float64{1, 0.1}},
		{"equal x", []float64{5, 5, 5, 5}, []float64{1, 2, 3, 4}},
		{"empty", nil, nil},
	} {
		if _, _, _, _, err := FitLogLog(c.x, c.y); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
