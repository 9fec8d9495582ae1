package report

import (
	"errors"
	"fmt"
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
		x, y := finite(t.Col("step"), t.Col(metric))
		bySteps = append(bySteps, figures.Series{Name: labels[k], X: x, Y: y, Group: labels[k]})
		x, y = finite(t.Col("seconds"), t.Col(metric))
		byTime = append(byTime, figures.Series{Name: labels[k], X: x, Y: y, Group: labels[k]})
	}
	// Both axes logarithmic: runs of 100 and of 10⁵ steps on one axis
	// (step 0 is left out).
	return figures.LinePanels(path, []figures.LinePanel{
		{Series: bySteps, Title: what + " against step", XLabel: "Step", YLabel: what},
		{Series: byTime, Title: what + " against wall-clock time", XLabel: "Seconds", YLabel: what},
	}, figures.LinePanelsOptions{Size: figures.Size{Width: 1680, Height: 640}, Cols: 2, LogX: true, LogY: true})
}
