package report

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"ntkbus/coordinator/figures"
)

// CompareRuns draws one figure of several runs' solution error (column
// metric of train.csv: error_l2, error_max or error_rms) against the step
// (left) and against wall-clock seconds (right): optimizers compared from
// the same seed and points. labels name the runs in the legend (default:
// the folder names).
func CompareRuns(path string, dirs, labels []string, metric string) error {
	if len(dirs) == 0 {
		return errors.New("compare: no runs")
	}
	if labels == nil {
		for _, d := range dirs {
			labels = append(labels, filepath.Base(d))
		}
	}
	if len(labels) != len(dirs) {
		return fmt.Errorf("compare: %d labels for %d runs", len(labels), len(dirs))
	}
	what, ok := map[string]string{
		"error_l2":  "Relative L² error",
		"error_max": "Max |u − u*|",
		"error_rms": "RMS error",
	}[metric]
	if !ok {
		return fmt.Errorf("compare: metric %q: want error_l2, error_max or error_rms", metric)
	}
	var bySteps, byTime []figures.Series
	for k, d := range dirs {
		t, err := ReadTable(filepath.Join(d, "train.csv"))
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		if !t.Has(metric) {
			return fmt.Errorf("compare: %s has no %s column with values (a problem without an exact solution, or an older run)", d, metric)
		}
		// Row t holds the error of θ_t, before step t: it is drawn at
		// t + 1 on the log step axis (θ₀ at 1), and at the time step t−1
		// ended; the error after the last step (summary.json's) closes
		// each curve.
		step, secs, e := t.Col("step"), t.Col("seconds"), t.Col(metric)
		var xs, xt, ys, yt []float64
		for i := range e {
			if math.IsNaN(e[i]) || math.IsInf(e[i], 0) {
				continue
			}
			xs, ys = append(xs, step[i]+1), append(ys, e[i])
			if i > 0 {
				xt, yt = append(xt, secs[i-1]), append(yt, e[i])
			}
		}
		if sum, err := readSummary(d); err == nil && sum.Steps > 0 {
			if v := map[string]*float64{"error_l2": sum.ErrorL2, "error_max": sum.ErrorMax, "error_rms": sum.ErrorRMS}[metric]; v != nil && (len(xs) == 0 || xs[len(xs)-1] < float64(sum.Steps+1)) {
				xs, ys = append(xs, float64(sum.Steps+1)), append(ys, *v)
				xt, yt = append(xt, sum.Seconds), append(yt, *v)
			}
		}
		style := figures.Solid
		if len(xs) <= 60 {
			style = figures.SolidMarkers // few points: each one shown
		}
		bySteps = append(bySteps, figures.Series{Name: labels[k], X: xs, Y: ys, Group: labels[k], Style: style})
		byTime = append(byTime, figures.Series{Name: labels[k], X: xt, Y: yt, Group: labels[k], Style: style})
	}
	// Both axes logarithmic: runs of 100 and of 10⁵ steps on one axis,
	// from step 1.
	return figures.LinePanels(path, []figures.LinePanel{
		{Series: bySteps, Title: what + " against the steps taken", XLabel: "steps taken + 1 (θ₀ at 1)", YLabel: what},
		{Series: byTime, Title: what + " against wall-clock time", XLabel: "seconds", YLabel: what},
	}, figures.LinePanelsOptions{Size: figures.Size{Width: 1680, Height: 640}, Cols: 2, LogX: true, LogY: true})
}
