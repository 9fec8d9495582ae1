package figures

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrorRateOptions configures an ErrorRatePlot. Zero values take the
// defaults noted.
type ErrorRateOptions struct {
	Size                         // default 960×640 px
	Title, XLabel, YLabel string // axis labels default to "Number of samples N" and "Mean squared error"
	// Label names the data in the legend; default "MSE".
	Label string
	// RefSlope is the slope of the reference line; 0 means −1, the
	// O(1/N) Monte Carlo rate.
	RefSlope float64
	// RefLabel labels the reference line; default "O(N⁻¹) reference"
	// (with the exponent of RefSlope).
	RefLabel string
	// Predicted are further curves drawn beside the data, such as a
	// theoretical bound or an exact expectation (Dashed reads best).
	Predicted []Series
}

// ErrorRatePlot writes a log-log PNG of an estimator's mean squared error
// against the number of samples N (the paper's Figure 6): the errors with
// standard-error bars, a dashed reference line of slope RefSlope through
// the centre of the data, and, in the legend, the slope fitted by
// FitLogLog with its 95% interval (when at least three points are usable).
// stderr may be nil. Points with a non-positive or non-finite N or error
// are skipped.
func ErrorRatePlot(path string, n, mse, stderr []float64, opt ErrorRateOptions) error {
	sz, err := opt.Size.resolve(960, 640)
	if err != nil {
		return fmt.Errorf("figures: error-rate plot %q: %w", path, err)
	}
	if len(n) != len(mse) || (stderr != nil && len(stderr) != len(n)) {
		return fmt.Errorf("figures: error-rate plot %q: n, mse and stderr have %d, %d and %d values", path, len(n), len(mse), len(stderr))
	}
	if len(n) == 0 {
		return fmt.Errorf("figures: error-rate plot %q: %w", path, ErrNoData)
	}
	if opt.XLabel == "" {
		opt.XLabel = "Number of samples N"
	}
	if opt.YLabel == "" {
		opt.YLabel = "Mean squared error"
	}
	if opt.Label == "" {
		opt.Label = "MSE"
	}
	if opt.RefSlope == 0 {
		opt.RefSlope = -1
	}
	if opt.RefLabel == "" {
		opt.RefLabel = "O(N" + exponent(opt.RefSlope) + ") reference"
	}

	label := opt.Label
	if slope, _, lo, hi, err := FitLogLog(n, mse); err == nil {
		label = fmt.Sprintf("%s: fitted slope %s, 95%% CI [%s, %s]", label, signed(slope), signed(lo), signed(hi))
	}
	ref, ok := centredReference(n, mse, opt.RefSlope)
	var refs []Reference
	if ok {
		ref.Label = opt.RefLabel
		refs = append(refs, ref)
	}
	s := Series{Name: label, X: n, Y: mse, Err: stderr, Style: SolidMarkers}
	ax := axes{opt.Title, opt.XLabel, opt.YLabel, true, true}
	ch, err := buildLines(append([]Series{s}, opt.Predicted...), refs, ax)
	if err != nil {
		return fmt.Errorf("figures: error-rate plot %q: %w", path, err)
	}
	if err := writePNG(path, sz, ch.draw); err != nil {
		return fmt.Errorf("figures: write error-rate plot %q: %w", path, err)
	}
	return nil
}

// centredReference returns the line of the given slope through the mean of
// the usable (log10 x, log10 y) points.
func centredReference(x, y []float64, slope float64) (Reference, bool) {
	var mx, my float64
	k := 0
	for i := range x {
		if usable(x[i], true) && usable(y[i], true) {
			mx += math.Log10(x[i])
			my += math.Log10(y[i])
			k++
		}
	}
	if k == 0 || !isFinite(slope) {
		return Reference{}, false
	}
	return Reference{Slope: slope, X0: math.Pow(10, mx/float64(k)), Y0: math.Pow(10, my/float64(k))}, true
}

// exponent writes a slope as a superscript exponent: −1 as "⁻¹", −0.5 as
// "^{-0.5}" (see richText).
func exponent(slope float64) string {
	if slope == math.Trunc(slope) && math.Abs(slope) < 1e6 {
		return superscript(int(slope))
	}
	return "^{" + strconv.FormatFloat(slope, 'g', 3, 64) + "}"
}

// signed formats v with two decimals and a true minus sign.
func signed(v float64) string {
	return strings.Replace(strconv.FormatFloat(v, 'f', 2, 64), "-", "−", 1)
}
