// Package report draws the figures of a training run or a study from what
// its folder holds (train.csv, final.json, saved kernels; errors.csv), so a
// user never writes plotting code: the paper's Figures 1 to 10 come from
// here.
package report

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"ntkbus/coordinator"
	"ntkbus/coordinator/figures"
	"ntkbus/coordinator/study"
	"ntkbus/model"
)

// MaxTableBytes bounds a CSV file a figure reads (a train.csv of a million
// steps with 40 columns is about 800 MB: a run's figures read at most this).
const MaxTableBytes = 1 << 30

// Table is a CSV file by column; empty cells are NaN.
type Table struct {
	Columns []string
	Rows    int
	cols    map[string][]float64
	text    map[string][]string
}

// ReadTable reads a CSV file with a header.
func ReadTable(path string) (*Table, error) {
	f, err := model.OpenRegular(path, MaxTableBytes)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	t := &Table{Columns: recs[0], cols: map[string][]float64{}, text: map[string][]string{}}
	for _, rec := range recs[1:] {
		if len(rec) != len(t.Columns) {
			continue // a torn last line
		}
		t.Rows++
		for i, c := range t.Columns {
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil {
				v = math.NaN()
			}
			t.cols[c] = append(t.cols[c], v)
			t.text[c] = append(t.text[c], rec[i])
		}
	}
	return t, nil
}

// Col is a column (nil if absent).
func (t *Table) Col(name string) []float64 { return t.cols[name] }

// Text is a column's raw text.
func (t *Table) Text(name string) []string { return t.text[name] }

// Has reports whether the column exists with a finite value.
func (t *Table) Has(name string) bool {
	for _, v := range t.cols[name] {
		if !math.IsNaN(v) {
			return true
		}
	}
	return false
}

// finite keeps the points where y is finite (steps where a quantity was computed).
func finite(x, y []float64) (fx, fy []float64) {
	for i := range y {
		if !math.IsNaN(y[i]) && !math.IsInf(y[i], 0) {
			fx = append(fx, x[i])
			fy = append(fy, y[i])
		}
	}
	return fx, fy
}

// RunFigures draws a training run's figures into its folder and returns
// their paths:
//
//	loss.png          mean squared residual per block and their sum (Figure 1)
//	weights.png       λ_b with 95% intervals, exact λ_b dashed (Figures 2a, 8)
//	eigenvalues.png   the largest eigenvalues of K, when logged (Figure 2b)
//	average_loss.png, average_gradient.png   time averages with O(1/T) (Figure 3)
//	error.png         solution error against the exact solution (or reference)
//	solution.png      the solution: a curve (1-D), prediction/truth/error maps
//	                  (2-D, Figure 9), light intensity and directors (Q-tensor, Figure 10)
//	kernels.png       exact and estimated K at the first and last step (Figure 7)
func RunFigures(dir string) ([]string, error) {
	var rc coordinator.RunConfig
	data, err := model.ReadFileLimit(filepath.Join(dir, "config.json"), coordinator.MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("run figures: %w", err)
	}
	if err := json.Unmarshal(data, &rc); err != nil {
		return nil, fmt.Errorf("run figures: config.json: %w", err)
	}
	setup, err := model.NewSetup(rc.Model)
	if err != nil {
		return nil, err
	}
	t, err := ReadTable(filepath.Join(dir, "train.csv"))
	if err != nil {
		return nil, fmt.Errorf("run figures: %w", err)
	}
	if t.Rows == 0 {
		return nil, errors.New("run figures: train.csv has no steps yet")
	}
	blocks := setup.Problem.BlockNames()
	step := t.Col("step")
	var out []string
	add := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, filepath.Join(dir, name))
		return nil
	}

	// Loss per block.
	series := []figures.Series{{Name: "total (Σ blocks)", X: step, Y: t.Col("loss")}}
	for _, b := range blocks {
		series = append(series, figures.Series{Name: b, X: step, Y: t.Col("loss_" + b)})
	}
	if err := add("loss.png", figures.LinePlot(filepath.Join(dir, "loss.png"), series, figures.LineOptions{
		Title: "Loss: mean squared residual per block", XLabel: "Step", YLabel: "Mean squared residual", LogY: true,
	})); err != nil {
		return out, err
	}

	// Weights, with intervals, and the exact ones dashed; none with fixed
	// weights (the figure would be flat lines at the weights given).
	if rc.Train.Mode != coordinator.Fixed {
		if err := add("weights.png", weightsFigure(filepath.Join(dir, "weights.png"), t, blocks, rc.Train.Mode)); err != nil {
			return out, err
		}
	} else {
		os.Remove(filepath.Join(dir, "weights.png")) // drawn by an earlier version
	}

	// Eigenvalues.
	series = nil
	for k := 1; t.Has("eig_" + strconv.Itoa(k)); k++ {
		x, y := finite(step, t.Col("eig_"+strconv.Itoa(k)))
		series = append(series, figures.Series{Name: fmt.Sprintf("eigenvalue %d", k), X: x, Y: y})
	}
	if len(series) > 0 {
		if err := add("eigenvalues.png", figures.LinePlot(filepath.Join(dir, "eigenvalues.png"), series, figures.LineOptions{
			Title: "Largest eigenvalues of the exact NTK", XLabel: "Step", YLabel: "Eigenvalue", LogY: true,
		})); err != nil {
			return out, err
		}
	}

	// Time averages with O(1/T) (Theorems 1 and 2).
	for _, a := range []struct{ file, col, what, sym string }{
		{"average_loss.png", "loss", "loss", "L(θ_{t})"},
		{"average_gradient.png", "grad_norm2", "squared gradient norm", "‖Jᵀ Λ R‖² at step t"},
	} {
		if !t.Has(a.col) {
			continue // natural-gradient steps take no gradient
		}
		T, avg := timeAverage(t.Col(a.col))
		ref := figures.Reference{Label: "O(T⁻¹)", Slope: -1, X0: T[len(T)-1], Y0: avg[len(avg)-1]}
		if err := add(a.file, figures.LinePlot(filepath.Join(dir, a.file), []figures.Series{{Name: "time average", X: T, Y: avg}}, figures.LineOptions{
			Title: "Time-averaged " + a.what, XLabel: "T (steps)", YLabel: "(1/T) Σ_{t<T} " + a.sym, LogX: true, LogY: true,
			References: []figures.Reference{ref},
		})); err != nil {
			return out, err
		}
	}

	// Solution error.
	if series := errorSeries(dir, t); series != nil {
		if err := add("error.png", figures.LinePlot(filepath.Join(dir, "error.png"), series, figures.LineOptions{Title: "Error against the " + setup.Problem.Truth, XLabel: "Step", YLabel: "Error", LogY: true})); err != nil {
			return out, err
		}
	}

	// The solution.
	snap, err := model.ReadSnapshot(filepath.Join(dir, "final.json"))
	if err == nil {
		fs, coll, theta, err := snap.Resolve()
		if err != nil {
			return out, err
		}
		if err := add("solution.png", Solution(filepath.Join(dir, "solution.png"), fs, theta, coll)); err != nil {
			return out, err
		}
	}

	// Kernels at the first and last step.
	if _, err := os.Stat(filepath.Join(dir, "kernel_exact_first.csv")); err == nil {
		var panels []figures.Matrix
		for _, k := range []struct{ file, title string }{
			{"kernel_exact_first.csv", "Exact NTK, first step"},
			{"kernel_estimate_first.csv", "Estimated NTK, first step"},
			{"kernel_exact_last.csv", "Exact NTK, last step"},
			{"kernel_estimate_last.csv", "Estimated NTK, last step"},
		} {
			m, _, err := coordinator.ReadMatrixCSV(filepath.Join(dir, k.file))
			if err != nil {
				return out, err
			}
			panels = append(panels, figures.Matrix{Title: k.title, Data: m})
		}
		if err := add("kernels.png", figures.Heatmaps(filepath.Join(dir, "kernels.png"), panels, figures.HeatmapOptions{Cols: 2, XLabel: "column j", YLabel: "row i"})); err != nil {
			return out, err
		}
	}
	return out, nil
}

// errorSeries are the solution errors of a run's train.csv against the
// step, and after the last step (summary.json's, at the step count: the
// rows hold the error of θ_t before step t), or nil without them.
func errorSeries(dir string, t *Table) []figures.Series {
	if !t.Has("error_max") {
		return nil
	}
	step := t.Col("step")
	x1, y1 := finite(step, t.Col("error_max"))
	x2, y2 := finite(step, t.Col("error_rms"))
	series := []figures.Series{
		{Name: "max |u − u*|", X: x1, Y: y1, Style: figures.SolidMarkers},
		{Name: "RMS error", X: x2, Y: y2, Style: figures.SolidMarkers},
	}
	if t.Has("error_l2") {
		x3, y3 := finite(step, t.Col("error_l2"))
		series = append(series, figures.Series{Name: "relative L² error", X: x3, Y: y3, Style: figures.SolidMarkers})
	}
	if sum, err := readSummary(dir); err == nil && sum.Steps > 0 {
		for i, v := range []*float64{sum.ErrorMax, sum.ErrorRMS, sum.ErrorL2} {
			if i < len(series) && v != nil && !math.IsNaN(*v) && (len(series[i].X) == 0 || series[i].X[len(series[i].X)-1] < float64(sum.Steps)) {
				series[i].X = append(series[i].X, float64(sum.Steps))
				series[i].Y = append(series[i].Y, *v)
			}
		}
	}
	return series
}

// weightsFigure draws the loss weights λ_b against the step: with
// estimated weights each block's estimate with its 95% band and the exact
// weight dashed, in a panel of its own when there are three blocks or more
// (their bands would overlap into one mass); with exact weights one plot.
func weightsFigure(path string, t *Table, blocks []string, mode coordinator.WeightMode) error {
	step := t.Col("step")
	estimated := mode == coordinator.Estimated
	blockSeries := func(b string) []figures.Series {
		s := figures.Series{Name: "λ " + b, X: step, Y: t.Col("lambda_" + b), Group: b}
		var out []figures.Series
		if estimated {
			s.Name += " estimate (95% band)"
			s.Lo, s.Hi = t.Col("lambda_"+b+"_lo"), t.Col("lambda_"+b+"_hi")
			for i := range s.Lo { // a lower bound ≤ 0 cannot show on a log axis
				if s.Lo[i] <= 0 {
					s.Lo[i] = s.Y[i] / 10
				}
			}
		}
		out = append(out, s)
		if estimated && t.Has("exact_lambda_"+b) {
			x, y := finite(step, t.Col("exact_lambda_"+b))
			out = append(out, figures.Series{Name: "λ " + b + " exact", X: x, Y: y, Style: figures.Dashed, Group: b})
		}
		return out
	}
	const title = "NTK loss weights λ_b = Tr K / Tr K_bb"
	if !estimated || len(blocks) < 3 {
		var series []figures.Series
		for _, b := range blocks {
			series = append(series, blockSeries(b)...)
		}
		return figures.LinePlot(path, series, figures.LineOptions{Title: title, XLabel: "Step", YLabel: "Loss weight", LogY: true})
	}
	var panels []figures.LinePanel
	for k, b := range blocks {
		series := blockSeries(b)
		for i := range series {
			// The figure's title says what is drawn: no legend per panel.
			series[i].Color, series[i].Name = figures.SeriesColor(k), ""
		}
		panels = append(panels, figures.LinePanel{Title: "block " + b, XLabel: "Step", YLabel: "λ_{" + b + "}", Series: series})
	}
	return figures.LinePanels(path, panels, figures.LinePanelsOptions{Title: title + ": estimate with its 95% band, exact dashed", LogY: true})
}

// readSummary reads a run's summary.json (written when the run ends).
func readSummary(dir string) (*coordinator.Summary, error) {
	data, err := model.ReadFileLimit(filepath.Join(dir, "summary.json"), coordinator.MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	var s coordinator.Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// timeAverage returns T = 1..len(v) and (1/T) Σ_{t<T} v_t.
func timeAverage(v []float64) (T, avg []float64) {
	var sum float64
	for i, x := range v {
		sum += x
		T = append(T, float64(i+1))
		avg = append(avg, sum/float64(i+1))
	}
	return T, avg
}

// Solution draws the solution of a setup at θ: for 1-D problems the
// prediction, the truth and the points (the data, for the quadratic
// problem: Figure 4); for 2-D problems prediction, truth and error maps
// (Figure 9), a row per output; for the Q-tensor the light intensity with
// its directors at t = 0, 0.5 and 2 (Figure 10); for other problems of
// three or more coordinates the maps over the first two at the lowest,
// middle and highest value of the third (the others at their middle).
func Solution(path string, s *model.Setup, theta []float64, c *model.Collocation) error {
	p := s.Problem
	switch {
	case p.Dim == 1 && p.Outputs == 1:
		return solution1D(path, s, theta, c)
	case p.Dim == 1:
		return solutionOutputs1D(path, s, theta)
	case p.Name == "qtensor" && p.Dim == 3 && p.Outputs == 2:
		return QTensorFigure(path, []*model.Setup{s}, [][]float64{theta}, []string{"Q-tensor PINN"}, []float64{0, 0.5, 2})
	case p.Dim == 2:
		return solution2D(path, s, theta, [][]float64{nil})
	}
	var slices [][]float64
	for _, f := range []float64{0, 0.5, 1} {
		extra := make([]float64, p.Dim-2)
		for k := range extra {
			b := p.Box[k+2]
			extra[k] = b[0] + (b[1]-b[0])/2
		}
		b := p.Box[2]
		extra[0] = b[0] + (b[1]-b[0])*f
		slices = append(slices, extra)
	}
	return solution2D(path, s, theta, slices)
}

// solutionOutputs1D draws every output of a 1-D problem and its truth.
func solutionOutputs1D(path string, s *model.Setup, theta []float64) error {
	p := s.Problem
	const n = 401
	x := make([]float64, n)
	for i := range x {
		x[i] = p.Box[0][0] + (p.Box[0][1]-p.Box[0][0])*float64(i)/float64(n-1)
	}
	u := make([]float64, n*p.Outputs)
	s.Predict(theta, x, u)
	truth := make([]float64, n*p.Outputs)
	var series []figures.Series
	names := p.OutputColumns()
	for o, name := range names {
		y, w := make([]float64, n), make([]float64, n)
		for i := range x {
			y[i] = u[i*p.Outputs+o]
			if p.Exact != nil {
				p.Exact(x[i:i+1], truth[i*p.Outputs:(i+1)*p.Outputs])
				w[i] = truth[i*p.Outputs+o]
			}
		}
		if p.Exact != nil {
			series = append(series, figures.Series{Name: name + " (" + p.Truth + ")", X: x, Y: w, Style: figures.Dashed})
		}
		series = append(series, figures.Series{Name: name + " (network)", X: x, Y: y})
	}
	return figures.LinePlot(path, series, figures.LineOptions{Title: p.Name + ": solution", XLabel: p.Coords[0], YLabel: "outputs"})
}

func solution1D(path string, s *model.Setup, theta []float64, c *model.Collocation) error {
	p := s.Problem
	const n = 401
	x := make([]float64, n)
	for i := range x {
		x[i] = p.Box[0][0] + (p.Box[0][1]-p.Box[0][0])*float64(i)/(n-1)
	}
	u := make([]float64, n)
	s.Predict(theta, x, u)
	series := []figures.Series{}
	if p.Name == "quadratic" {
		b := c.Blocks[0]
		series = append(series, figures.Series{Name: "data y", X: b.X, Y: b.Y, Style: figures.Markers})
	} else {
		// Where the residuals were evaluated.
		var px, pu []float64
		for _, b := range c.Blocks {
			v := make([]float64, b.Count())
			s.Predict(theta, b.X, v)
			px = append(px, b.X...)
			pu = append(pu, v...)
		}
		series = append(series, figures.Series{Name: "collocation points", X: px, Y: pu, Style: figures.Markers})
	}
	if p.Exact != nil {
		truth := make([]float64, n)
		for i := range x {
			p.Exact(x[i:i+1], truth[i:i+1])
		}
		series = append(series, figures.Series{Name: "exact", X: x, Y: truth, Style: figures.Dashed})
	}
	name := "network"
	if !p.IsNetwork() {
		name = "fitted model"
	}
	series = append(series, figures.Series{Name: name, X: x, Y: u})
	return figures.LinePlot(path, series, figures.LineOptions{Title: p.Name + ": solution", XLabel: p.Coords[0], YLabel: "u"})
}

func solution2D(path string, s *model.Setup, theta []float64, slices [][]float64) error {
	p := s.Problem
	const nx, ny = 101, 101
	g := figures.Grid{Nx: nx, Ny: ny, XMin: p.Box[0][0], XMax: p.Box[0][1], YMin: p.Box[1][0], YMax: p.Box[1][1]}
	O := p.Outputs
	names := p.OutputColumns()
	truthTitle, truthShort := "Exact solution", "exact"
	if p.Reference != nil {
		truthTitle, truthShort = "Reference data", "reference"
	}
	var panels []figures.FieldPanel
	for _, extra := range slices {
		at := ""
		for k, v := range extra {
			at += fmt.Sprintf(", %s = %.3g", p.Coords[k+2], v)
		}
		x := gridPoints(g, extra)
		u := make([]float64, nx*ny*O)
		s.Predict(theta, x, u)
		truth := make([]float64, nx*ny*O)
		for i := 0; i < nx*ny; i++ {
			pt := x[i*p.Dim : (i+1)*p.Dim]
			if !p.Inside(pt) { // a hole: drawn grey
				for o := 0; o < O; o++ {
					u[i*O+o], truth[i*O+o] = math.NaN(), math.NaN()
				}
				continue
			}
			if p.Exact != nil {
				p.Exact(pt, truth[i*O:(i+1)*O])
			}
		}
		for o := 0; o < O; o++ {
			pred, want, diff := make([]float64, nx*ny), make([]float64, nx*ny), make([]float64, nx*ny)
			for i := range pred {
				pred[i], want[i] = u[i*O+o], truth[i*O+o]
				diff[i] = pred[i] - want[i]
			}
			label := ""
			if O > 1 {
				label = " " + names[o]
			}
			panels = append(panels, figures.FieldPanel{Title: "Neural network prediction" + label + at, Grid: g, Z: pred})
			if p.Exact != nil {
				panels = append(panels,
					figures.FieldPanel{Title: truthTitle + label + at, Grid: g, Z: want},
					figures.FieldPanel{Title: "Error (prediction − " + truthShort + ")" + label + at, Grid: g, Z: diff, Diverging: true})
			}
		}
	}
	cols := 0
	if p.Exact != nil {
		cols = 3 // a row per output and slice: prediction, truth, error
	} else if O > 1 || len(slices) > 1 {
		cols = max(O, len(slices))
	}
	// One colour range only where every panel shows one output.
	return figures.FieldMaps(path, panels, figures.FieldOptions{XLabel: p.Coords[0], YLabel: p.Coords[1], SharedRange: O == 1, Cols: cols})
}

// gridPoints lists the grid's nodes (x, y) in the figures' order (x fastest),
// with extra coordinates appended to each point.
func gridPoints(g figures.Grid, extra []float64) []float64 {
	d := 2 + len(extra)
	x := make([]float64, 0, g.Nx*g.Ny*d)
	for j := 0; j < g.Ny; j++ {
		for i := 0; i < g.Nx; i++ {
			x = append(x, g.XMin+(g.XMax-g.XMin)*float64(i)/float64(g.Nx-1), g.YMin+(g.YMax-g.YMin)*float64(j)/float64(g.Ny-1))
			x = append(x, extra...)
		}
	}
	return x
}

// QTensorFigure draws, for each run (a row) and each time (a column), the
// light passing through the liquid crystal, |λ₁ (v₁·e₁)| with λ₁ the
// positive eigenvalue of Q and v₁ its eigenvector, as a contour map with
// the directors v₁ (the paper's Figure 10). For Q = [[q₁, q₂], [q₂, −q₁]],
// λ₁ = √(q₁² + q₂²) and v₁ = (cos φ, sin φ) with φ = ½ atan2(q₂, q₁).
//
// When the problem has a reference solution (the finite-difference one of
// the Q-tensor flow), it is drawn as the first row, in the same way.
func QTensorFigure(path string, setups []*model.Setup, thetas [][]float64, labels []string, times []float64) error {
	if len(setups) == 0 {
		return fmt.Errorf("q-tensor figure: no runs to draw")
	}
	return figures.FieldMaps(path, qtensorPanels(setups, thetas, labels, times), figures.FieldOptions{
		Title: "Light intensity |λ₁ (v₁·e₁)| and directors v₁", XLabel: "x", YLabel: "y",
		Cols: len(times), SharedRange: true, EqualAspect: true,
	})
}

// qtensorGrid is the grid of QTensorFigure's intensity maps.
func qtensorGrid(p *model.Problem) figures.Grid {
	return figures.Grid{Nx: 81, Ny: 81, XMin: p.Box[0][0], XMax: p.Box[0][1], YMin: p.Box[1][0], YMax: p.Box[1][1]}
}

// QTensorErrors returns, for each run and time, the largest and the RMS
// error over both components of Q against the problem's reference, on
// QTensorFigure's grid (81×81).
func QTensorErrors(setups []*model.Setup, thetas [][]float64, times []float64) (maxAbs, rms [][]float64) {
	maxAbs, rms = make([][]float64, len(setups)), make([][]float64, len(setups))
	for r, s := range setups {
		g := qtensorGrid(s.Problem)
		for _, t := range times {
			m, e, _ := s.SolutionError(thetas[r], gridPoints(g, []float64{t}))
			maxAbs[r], rms[r] = append(maxAbs[r], m), append(rms[r], e)
		}
	}
	return maxAbs, rms
}

// qtensorPanels computes QTensorFigure's panels, row by row.
func qtensorPanels(setups []*model.Setup, thetas [][]float64, labels []string, times []float64) []figures.FieldPanel {
	// A row is one way to evaluate Q at points x (3 coordinates each).
	type row struct {
		label string
		eval  func(x, q []float64)
	}
	var rows []row
	p := setups[0].Problem
	if p.Exact != nil {
		rows = append(rows, row{strings.ToUpper(p.Truth[:1]) + p.Truth[1:], func(x, q []float64) {
			for i := 0; i < len(x)/3; i++ {
				p.Exact(x[3*i:3*i+3], q[2*i:2*i+2])
			}
		}})
	}
	for r, s := range setups {
		rows = append(rows, row{labels[r], func(x, q []float64) { s.Predict(thetas[r], x, q) }})
	}
	g := qtensorGrid(p)
	dg := figures.Grid{Nx: 17, Ny: 17, XMin: g.XMin, XMax: g.XMax, YMin: g.YMin, YMax: g.YMax}
	var panels []figures.FieldPanel
	for _, r := range rows {
		for _, t := range times {
			x := gridPoints(g, []float64{t})
			q := make([]float64, 2*g.Nx*g.Ny)
			r.eval(x, q)
			z := make([]float64, g.Nx*g.Ny)
			for i := range z {
				l, phi := director(q[2*i], q[2*i+1])
				z[i] = math.Abs(l * math.Cos(phi))
			}
			dx := gridPoints(dg, []float64{t})
			dq := make([]float64, 2*dg.Nx*dg.Ny)
			r.eval(dx, dq)
			d := &figures.Directors{Grid: dg, U: make([]float64, dg.Nx*dg.Ny), V: make([]float64, dg.Nx*dg.Ny)}
			for i := range d.U {
				_, phi := director(dq[2*i], dq[2*i+1])
				d.U[i], d.V[i] = math.Cos(phi), math.Sin(phi)
			}
			panels = append(panels, figures.FieldPanel{
				Title: fmt.Sprintf("%s, t = %g", r.label, t), Grid: g, Z: z, Contours: 8, Directors: d,
			})
		}
	}
	return panels
}

// director returns the positive eigenvalue of [[q1, q2], [q2, −q1]] and the
// angle of its eigenvector.
func director(q1, q2 float64) (lambda, phi float64) {
	return math.Hypot(q1, q2), 0.5 * math.Atan2(q2, q1)
}

// StudyFigures draws an error study's figures into its folder:
//
//	errors_kernel.png, errors_trace.png   MSE against N with standard errors,
//	    the O(1/N) line and the fitted slope (Figure 6), one line per variant
//	    when several are compared
//	heatmaps.png   the exact K and K̂ at the N values asked for (Figure 5)
func StudyFigures(dir string) ([]string, error) {
	t, err := ReadTable(filepath.Join(dir, "errors.csv"))
	if err != nil {
		return nil, fmt.Errorf("study figures: %w", err)
	}
	variants := map[string][]int{}
	var order []string
	for i, v := range t.Text("variant") {
		if variants[v] == nil {
			order = append(order, v)
		}
		variants[v] = append(variants[v], i)
	}
	var out []string
	for _, m := range []struct{ file, col, what, kind string }{
		{"errors_kernel.png", "mse_kernel", "NTK estimate: mean squared Frobenius error", "kernel"},
		{"errors_trace.png", "mse_trace", "Trace estimate: mean squared error", "trace"},
	} {
		path := filepath.Join(dir, m.file)
		pick := func(v, col string) []float64 {
			var out []float64
			for _, i := range variants[v] {
				out = append(out, t.Col(col)[i])
			}
			return out
		}
		var err error
		if len(order) == 1 && !sketchVariant(order[0]) {
			v := order[0]
			if !hasFinite(pick(v, m.col)) {
				continue
			}
			err = figures.ErrorRatePlot(path, pick(v, "N"), pick(v, m.col), pick(v, m.col+"_se"), figures.ErrorRateOptions{
				Title: m.what + " (" + v + ")", Predicted: predicted(t, v, m.kind, pick, ""),
			})
		} else {
			// Several variants: a fitted log-log slope, and the theory's
			// curves and its O(N⁻¹) line, only for the Monte Carlo
			// (Hutchinson) variants they describe; a sketch's error is not
			// a power of N (it falls to a floor once its rank is reached).
			var series, theory []figures.Series
			var refs []figures.Reference
			for _, v := range order {
				y := pick(v, m.col)
				if !hasFinite(y) {
					continue
				}
				n := pick(v, "N")
				name := v
				if !sketchVariant(v) {
					if slope, _, lo, hi, ferr := figures.FitLogLog(n, y); ferr == nil {
						name = fmt.Sprintf("%s: slope %s [%s, %s]", v, signed(slope), signed(lo), signed(hi))
					}
				}
				s := figures.Series{Name: name, X: n, Y: y, Err: pick(v, m.col+"_se"), Style: figures.SolidMarkers, Group: v}
				series = append(series, s)
				if sketchVariant(v) {
					continue
				}
				// Named for the variant they describe, beside others.
				theory = append(theory, predicted(t, v, m.kind, pick, v+": ")...)
				if len(refs) == 0 {
					if ref, ok := centred(n, y); ok {
						ref.Label = v + ": O(N⁻¹), the Monte Carlo rate"
						refs = append(refs, ref)
					}
				}
			}
			if len(series) == 0 {
				continue
			}
			err = figures.LinePlot(path, append(series, theory...), figures.LineOptions{
				Title: m.what, XLabel: "Number of samples N", YLabel: "Mean squared error", LogX: true, LogY: true,
				References: refs,
			})
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", m.file, err)
		}
		out = append(out, path)
	}
	// Heatmaps.
	panels, err := StudyHeatmaps(dir)
	if err != nil {
		return out, err
	}
	if len(panels) > 0 {
		// One colour scale for every panel, the exact K's, so that a colour
		// is a value everywhere and K's structure stays visible; the noise
		// of few probes saturates it.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range panels[0].Data {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		path := filepath.Join(dir, "heatmaps.png")
		opt := figures.HeatmapOptions{SharedRange: true, Range: [2]float64{lo, hi}, XLabel: "column j", YLabel: "row i",
			Title: "One colour scale, the exact NTK's range (values beyond it take the end colours)"}
		if err := figures.Heatmaps(path, panels, opt); err != nil {
			return out, err
		}
		out = append(out, path)
	}
	return out, nil
}

// StudyHeatmaps returns the panels of a study's heatmaps.png: the exact K,
// then for each variant in the study's order its first K̂ at each N asked
// for, titled with the variant when the study compares several. None when
// the study saved no K̂.
func StudyHeatmaps(dir string) ([]figures.Matrix, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "kernel_*_N*.csv"))
	if len(files) == 0 {
		return nil, nil
	}
	// Variant names as the study knows them ("gaussian/forward"), by the
	// file-name form ("gaussian-forward") the runner writes.
	var variants []string
	if data, err := model.ReadFileLimit(filepath.Join(dir, "study.json"), coordinator.MaxConfigBytes); err == nil {
		var cfg study.Config
		if json.Unmarshal(data, &cfg) == nil {
			if vs, err := study.ParseVariants(strings.Join(cfg.Variants, ","), 0); err == nil {
				for _, v := range vs {
					variants = append(variants, v.Name)
				}
			}
		}
	}
	rank := func(path string) (int, string) {
		key := variantOf(path)
		for i, v := range variants {
			if strings.ReplaceAll(v, "/", "-") == key {
				return i, strings.ReplaceAll(v, "/", ":")
			}
		}
		return len(variants), key
	}
	sort.Slice(files, func(a, b int) bool {
		ra, _ := rank(files[a])
		rb, _ := rank(files[b])
		if ra != rb {
			return ra < rb
		}
		if va, vb := variantOf(files[a]), variantOf(files[b]); va != vb {
			return va < vb
		}
		return probesOf(files[a]) < probesOf(files[b])
	})
	several := false
	for _, f := range files {
		several = several || variantOf(f) != variantOf(files[0])
	}
	exact, _, err := coordinator.ReadMatrixCSV(filepath.Join(dir, "kernel_exact.csv"))
	if err != nil {
		return nil, err
	}
	panels := []figures.Matrix{{Title: "Exact NTK", Data: exact}}
	for _, f := range files {
		m, _, err := coordinator.ReadMatrixCSV(f)
		if err != nil {
			return nil, err
		}
		n := probesOf(f)
		samples := fmt.Sprintf("%d samples", n)
		if n == 1 {
			samples = "1 sample"
		}
		title := "Estimate, " + samples
		if several {
			_, name := rank(f)
			title = fmt.Sprintf("%s, %s", name, samples)
		}
		panels = append(panels, figures.Matrix{Title: title, Data: m})
	}
	return panels, nil
}

// variantOf reads the variant from kernel_<variant>_N<N>.csv.
func variantOf(path string) string {
	base := strings.TrimPrefix(strings.TrimSuffix(filepath.Base(path), ".csv"), "kernel_")
	return base[:max(0, strings.LastIndex(base, "_N"))]
}

// predicted returns the study's theoretical curves for one metric (kind
// "kernel" or "trace") as dashed series: Theorem 4's Monte Carlo terms and,
// for Gaussian probes, the exact expected squared error. Studies written
// before these columns existed have none.
func predicted(t *Table, variant, kind string, pick func(v, col string) []float64, prefix string) []figures.Series {
	var out []figures.Series
	for _, c := range []struct{ col, name string }{
		{"theorem4_" + kind, "Theorem 4's Monte Carlo terms"},
		{"gaussian_" + kind, "exact expectation, Gaussian probes"},
	} {
		if !t.Has(c.col) {
			continue
		}
		if c.col == "gaussian_"+kind && !strings.HasPrefix(variant, "gaussian") {
			continue
		}
		y := pick(variant, c.col)
		if !hasFinite(y) {
			continue
		}
		out = append(out, figures.Series{Name: prefix + c.name, X: pick(variant, "N"), Y: y, Style: figures.Dashed})
	}
	return out
}

// sketchVariant reports whether a study variant ("gaussian/exact/nystrom")
// keeps its probes as columns (Nyström, XNysTrace): its error is not a
// Monte Carlo rate.
func sketchVariant(v string) bool {
	vs, err := study.ParseVariants(strings.ReplaceAll(v, "/", ":"), 0)
	return err == nil && len(vs) == 1 && vs[0].Estimator.Sketch()
}

// centred is the O(N⁻¹) line through the geometric mean of the points.
func centred(n, y []float64) (figures.Reference, bool) {
	var mx, my float64
	k := 0
	for i := range n {
		if n[i] > 0 && y[i] > 0 && !math.IsInf(y[i], 0) {
			mx += math.Log10(n[i])
			my += math.Log10(y[i])
			k++
		}
	}
	if k == 0 {
		return figures.Reference{}, false
	}
	return figures.Reference{Slope: -1, X0: math.Pow(10, mx/float64(k)), Y0: math.Pow(10, my/float64(k))}, true
}

// signed formats v with two decimals and a true minus sign.
func signed(v float64) string {
	return strings.Replace(strconv.FormatFloat(v, 'f', 2, 64), "-", "−", 1)
}

func hasFinite(v []float64) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return true
		}
	}
	return false
}

// probesOf reads N from kernel_<variant>_N<N>.csv.
func probesOf(path string) int {
	base := strings.TrimSuffix(filepath.Base(path), ".csv")
	n, _ := strconv.Atoi(base[strings.LastIndex(base, "_N")+2:])
	return n
}
