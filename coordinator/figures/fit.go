package figures

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Line is an ordinary least-squares fit y = Intercept + Slope·x, with the
// slope's 95% confidence interval [SlopeLo, SlopeHi] from Student's t with
// n−2 degrees of freedom and R², the fraction of the variance of y the
// line explains.
type Line struct {
	Slope, Intercept float64
	SlopeLo, SlopeHi float64
	R2               float64
}

// FitLine fits a line to (x, y). It is an error if x and y differ in
// length, if there are fewer than three points, or if all x are equal.
func FitLine(x, y []float64) (Line, error) {
	if len(x) != len(y) {
		return Line{}, fmt.Errorf("figures: fit line: x has %d values but y has %d", len(x), len(y))
	}
	n := len(x)
	if n < 3 {
		return Line{}, fmt.Errorf("figures: fit line: %d points, need at least 3", n)
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, sxy, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return Line{}, errors.New("figures: fit line: all x are equal")
	}
	l := Line{Slope: sxy / sxx, R2: 1}
	l.Intercept = my - l.Slope*mx
	var sse float64
	for i := range x {
		r := y[i] - l.Intercept - l.Slope*x[i]
		sse += r * r
	}
	if syy > 0 {
		l.R2 = 1 - sse/syy
	}
	df := float64(n - 2)
	se := math.Sqrt(sse / df / sxx)
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(0.975)
	l.SlopeLo, l.SlopeHi = l.Slope-t*se, l.Slope+t*se
	return l, nil
}

// FitLogLog fits the power law y = 10^intercept · x^slope by ordinary least
// squares on (log10 x, log10 y) and returns the slope, the intercept and a
// 95% confidence interval [slopeLo, slopeHi] for the slope (see FitLine).
// A Monte Carlo error that falls as O(1/N) has slope −1.
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
	if len(lx) < 3 {
		return 0, 0, 0, 0, fmt.Errorf("figures: fit log-log: %d positive finite points, need at least 3", len(lx))
	}
	l, err := FitLine(lx, ly)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	return l.Slope, l.Intercept, l.SlopeLo, l.SlopeHi, nil
}
