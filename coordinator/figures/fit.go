package figures

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// FitLogLog fits the power law y = 10^intercept · x^slope by ordinary least
// squares on (log10 x, log10 y) and returns the slope, the intercept and a
// 95% confidence interval [slopeLo, slopeHi] for the slope from Student's t
// with n−2 degrees of freedom. A Monte Carlo error that falls as O(1/N)
// has slope −1.
//
// Points with a non-finite or non-positive x or y are skipped. It is an
// error if x and y differ in length, if fewer than three points remain, or
// if the remaining x are all equal.
func FitLogLog(x, y []float64) (slope, intercept, slopeLo, slopeHi float64, err error) {
	if len(x) != len(y) {
		return 0, 0, 0, 0, fmt.Errorf("figures: fit log-log: x has %d values but y has %d", len(x), len(y))
	}
	var lx, ly []float64
	for i := range x {
		if x[i] > 0 && y[i] > 0 && isFinite(x[i]) && isFinite(y[i]) {
			lx = append(lx, math.Log10(x[i]))
			ly = append(ly, math.Log10(y[i]))
		}
	}
	n := len(lx)
	if n < 3 {
		return 0, 0, 0, 0, fmt.Errorf("figures: fit log-log: %d positive finite points, need at least 3", n)
	}
	var mx, my float64
	for i := range lx {
		mx += lx[i]
		my += ly[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, sxy float64
	for i := range lx {
		dx := lx[i] - mx
		sxx += dx * dx
		sxy += dx * (ly[i] - my)
	}
	if sxx == 0 {
		return 0, 0, 0, 0, errors.New("figures: fit log-log: all x are equal")
	}
	slope = sxy / sxx
	intercept = my - slope*mx
	var sse float64
	for i := range lx {
		r := ly[i] - intercept - slope*lx[i]
		sse += r * r
	}
	df := float64(n - 2)
	se := math.Sqrt(sse / df / sxx)
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(0.975)
	return slope, intercept, slope - t*se, slope + t*se, nil
}
