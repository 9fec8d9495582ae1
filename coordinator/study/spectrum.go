package study

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gonum.org/v1/gonum/mat"

	"ntkbus/coordinator/figures"
	"ntkbus/model"
)

// The operator-informed spectrum study (Gan, Li, Lin & Shi 2024): the
// eigenvalues of the NTK of one network at initialization, at the same
// points, for different operators T applied to u (K_T = T_x T_x' K), over
// several widths and depths, with a fitted decay per curve. It answers,
// on our networks, whether the differential operator makes the eigenvalues
// decay faster.

// SpectrumConfig is the design of the spectrum study.
type SpectrumConfig struct {
	Points     int      `json:"points"` // collocation points, uniform in the unit interval or square
	Widths     []int    `json:"widths"`
	Depths     []int    `json:"depths"` // hidden layers
	Activation string   `json:"activation"`
	Seed       uint64   `json:"seed"` // θ and the points
	Ops1D      []string `json:"operators_1d"`
	Ops2D      []string `json:"operators_2d"`
	// FitFloor: only eigenvalues above FitFloor·λ₁ are fitted; below it
	// they are rounding (a dense eigensolver resolves about n·ε·λ₁).
	FitFloor  float64 `json:"fit_floor"`
	MaxMemory int64   `json:"-"`
}

// Validate checks the design.
func (c *SpectrumConfig) Validate() error {
	if c.Points < 8 {
		return fmt.Errorf("points = %d: want at least 8", c.Points)
	}
	if len(c.Widths) == 0 || len(c.Depths) == 0 {
		return errors.New("want at least one width and one depth")
	}
	for _, w := range c.Widths {
		if w < 1 {
			return fmt.Errorf("width %d: want at least 1", w)
		}
	}
	for _, d := range c.Depths {
		if d < 1 {
			return fmt.Errorf("depth %d: want at least 1 hidden layer", d)
		}
	}
	if len(c.Ops1D)+len(c.Ops2D) == 0 {
		return errors.New("no operators")
	}
	for dim, ops := range map[int][]string{1: c.Ops1D, 2: c.Ops2D} {
		for _, op := range ops {
			if _, err := model.OperatorSetup(dim, op, []int{dim, 1, 1}, c.Activation); err != nil {
				return err
			}
		}
	}
	if !(c.FitFloor > 0 && c.FitFloor < 1) {
		return fmt.Errorf("fit floor %v: want a fraction in (0, 1)", c.FitFloor)
	}
	return nil
}

// SpectrumCurve is the spectrum of one operator's kernel on one network.
type SpectrumCurve struct {
	Dim, Width, Depth int
	Operator          string
	N, P              int
	Eigenvalues       []float64 // all n, descending
	Seconds           float64
}

// Label names the curve's network.
func (c *SpectrumCurve) Label() string {
	return fmt.Sprintf("%d-D, %d×%d", c.Dim, c.Depth, c.Width)
}

// spectrumJobs lists the curves of the design in order: dimension, depth,
// width, operator.
func (c *SpectrumConfig) spectrumJobs() []SpectrumCurve {
	var jobs []SpectrumCurve
	for _, dim := range []int{1, 2} {
		ops := c.Ops1D
		if dim == 2 {
			ops = c.Ops2D
		}
		for _, depth := range c.Depths {
			for _, width := range c.Widths {
				for _, op := range ops {
					jobs = append(jobs, SpectrumCurve{Dim: dim, Width: width, Depth: depth, Operator: op})
				}
			}
		}
	}
	return jobs
}

// RunSpectrum computes every curve of the design: the exact K_T (the
// structured route) and all its eigenvalues. progress, when set, is called
// after each curve.
func RunSpectrum(ctx context.Context, cfg SpectrumConfig, progress func(done, total int, c *SpectrumCurve)) ([]SpectrumCurve, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	jobs := cfg.spectrumJobs()
	for k := range jobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := &jobs[k]
		start := time.Now()
		layers := []int{c.Dim}
		for i := 0; i < c.Depth; i++ {
			layers = append(layers, c.Width)
		}
		layers = append(layers, 1)
		s, err := model.OperatorSetup(c.Dim, c.Operator, layers, cfg.Activation)
		if err != nil {
			return nil, err
		}
		pts, err := s.DrawPoints(cfg.Seed, 0, []int{cfg.Points}, nil)
		if err != nil {
			return nil, err
		}
		ev, err := s.NewEvaluator(pts, model.Options{MaxMemory: cfg.MaxMemory})
		if err != nil {
			return nil, err
		}
		n := ev.Layout().N
		c.N, c.P = n, s.NumParams()
		ev.Forward(s.InitTheta(cfg.Seed), make([]float64, n))
		if err := model.CheckKernelMemory(ev.Layout(), cfg.MaxMemory); err != nil {
			return nil, err
		}
		K := make([]float64, n*n)
		if err := ev.NTK(K); err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Label(), c.Operator, err)
		}
		var es mat.EigenSym
		if !es.Factorize(mat.NewSymDense(n, K), false) {
			return nil, fmt.Errorf("%s %s: the eigenvalues of K did not converge", c.Label(), c.Operator)
		}
		c.Eigenvalues = es.Values(nil)
		sort.Sort(sort.Reverse(sort.Float64Slice(c.Eigenvalues)))
		c.Seconds = time.Since(start).Seconds()
		if progress != nil {
			progress(k+1, len(jobs), c)
		}
	}
	return jobs, nil
}

// DecayFit is a fitted decay of one curve's eigenvalues λ₁ ≥ λ₂ ≥ … over
// the indices First..Last (those above the fit floor).
//
//   - Model "power": λ_i ∝ i^{−Rate}.
//   - Model "exponential": λ_i ∝ exp(−Rate·i^{1/d}), d the dimension: the
//     decay of an analytic kernel on a d-dimensional domain (plain e^{−Rate·i}
//     in 1-D).
//
// The fit is ordinary least squares of log λ_i on log i or i^{1/d}; the
// interval [RateLo, RateHi] is its 95% interval from Student's t, which
// treats the residuals as independent (they are not quite: it is the
// regression's interval, not a sampling one). R2 is the fraction of the
// variance of log λ the model explains; Best marks the model with the
// larger R2. Above is the number of eigenvalues above 10⁻³, 10⁻⁶ and 10⁻⁹
// of λ₁: the same question without a model.
type DecayFit struct {
	Dim, Width, Depth      int
	Operator, Model        string
	Rate, RateLo, RateHi   float64
	R2                     float64
	First, Last            int
	Best                   bool
	Above3, Above6, Above9 int

	intercept float64 // of log(λ_i/λ₁) in the fit's variable
}

// FitDecay fits both models to a curve.
func FitDecay(c *SpectrumCurve, floor float64) ([]DecayFit, error) {
	ev := c.Eigenvalues
	if len(ev) == 0 || !(ev[0] > 0) {
		return nil, fmt.Errorf("%s %s: no positive eigenvalue", c.Label(), c.Operator)
	}
	base := DecayFit{Dim: c.Dim, Width: c.Width, Depth: c.Depth, Operator: c.Operator, First: 1}
	var y []float64
	for i, v := range ev {
		r := v / ev[0]
		if r > 1e-3 {
			base.Above3++
		}
		if r > 1e-6 {
			base.Above6++
		}
		if r > 1e-9 {
			base.Above9++
		}
		if r >= floor && len(y) == i {
			y = append(y, math.Log(r))
		}
	}
	base.Last = len(y)
	if len(y) < 4 {
		return nil, fmt.Errorf("%s %s: only %d eigenvalues above %g·λ₁, need 4 to fit a decay", c.Label(), c.Operator, len(y), floor)
	}
	var fits []DecayFit
	for _, m := range []string{"power", "exponential"} {
		x := make([]float64, len(y))
		for i := range x {
			if m == "power" {
				x[i] = math.Log(float64(i + 1))
			} else {
				x[i] = math.Pow(float64(i+1), 1/float64(c.Dim))
			}
		}
		l, err := figures.FitLine(x, y)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Label(), c.Operator, err)
		}
		f := base
		f.Model, f.Rate, f.RateLo, f.RateHi, f.R2, f.intercept = m, -l.Slope, -l.SlopeHi, -l.SlopeLo, l.R2, l.Intercept
		fits = append(fits, f)
	}
	if fits[0].R2 > fits[1].R2 {
		fits[0].Best = true
	} else {
		fits[1].Best = true
	}
	return fits, nil
}

// Curve returns the fitted model's λ_i/λ₁ at the indices First..Last, for
// drawing beside the data: the line through the fit's own intercept.
func (f *DecayFit) Curve(c *SpectrumCurve) (idx, rel []float64) {
	for i := f.First; i <= f.Last; i++ {
		x := math.Log(float64(i))
		if f.Model == "exponential" {
			x = math.Pow(float64(i), 1/float64(f.Dim))
		}
		idx = append(idx, float64(i))
		rel = append(rel, math.Exp(f.intercept-f.Rate*x))
	}
	return idx, rel
}

// WriteSpectrum writes study.json, spectrum.csv (one row per eigenvalue:
// dim, width, depth, operator, n, p, index, eigenvalue, relative = λ_i/λ₁)
// and decay.csv (one row per curve and model: the DecayFit fields) into dir.
func WriteSpectrum(dir string, cfg SpectrumConfig, curves []SpectrumCurve, fits []DecayFit) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := model.WriteFileAtomic(filepath.Join(dir, "study.json"), append(data, '\n')); err != nil {
		return err
	}
	err = writeCSV(filepath.Join(dir, "spectrum.csv"), "dim,width,depth,operator,n,p,index,eigenvalue,relative", func(w *bytes.Buffer) {
		for _, c := range curves {
			for i, v := range c.Eigenvalues {
				fmt.Fprintf(w, "%d,%d,%d,%s,%d,%d,%d,%s,%s\n", c.Dim, c.Width, c.Depth, c.Operator, c.N, c.P, i+1, fmtF(v), fmtF(v/c.Eigenvalues[0]))
			}
		}
	})
	if err != nil {
		return err
	}
	return writeCSV(filepath.Join(dir, "decay.csv"), "dim,width,depth,operator,model,rate,rate_lo,rate_hi,r2,first,last,best,above_1e-3,above_1e-6,above_1e-9", func(w *bytes.Buffer) {
		for _, f := range fits {
			fmt.Fprintf(w, "%d,%d,%d,%s,%s,%s,%s,%s,%s,%d,%d,%t,%d,%d,%d\n", f.Dim, f.Width, f.Depth, f.Operator, f.Model,
				fmtF(f.Rate), fmtF(f.RateLo), fmtF(f.RateHi), fmtF(f.R2), f.First, f.Last, f.Best, f.Above3, f.Above6, f.Above9)
		}
	})
}

// writeCSV writes a header and the rows atomically: a reader never sees a
// partial file.
func writeCSV(path, header string, rows func(w *bytes.Buffer)) error {
	var b bytes.Buffer
	b.WriteString(header + "\n")
	rows(&b)
	return model.WriteFileAtomic(path, b.Bytes())
}
