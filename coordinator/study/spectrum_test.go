package study

import (
	"context"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"testing"

	"ntkbus/model"
)

// The fits recover the rate of exact power-law and exponential spectra,
// pick the model that generated them, and their intervals contain it.
func TestFitDecayKnownSpectra(t *testing.T) {
	for _, tc := range []struct {
		dim   int
		model string
		rate  float64
		f     func(i float64) float64
	}{
		{1, "exponential", 0.7, func(i float64) float64 { return math.Exp(-0.7 * i) }},
		{2, "exponential", 1.3, func(i float64) float64 { return math.Exp(-1.3 * math.Sqrt(i)) }},
		{1, "power", 2, func(i float64) float64 { return math.Pow(i, -2) }},
		{2, "power", 1.5, func(i float64) float64 { return 3 * math.Pow(i, -1.5) * (1 + 0.01*math.Sin(i)) }},
	} {
		c := &SpectrumCurve{Dim: tc.dim, Operator: "u"}
		for i := 1; i <= 60; i++ {
			c.Eigenvalues = append(c.Eigenvalues, tc.f(float64(i)))
		}
		c.Eigenvalues = append(c.Eigenvalues, 1e-30, -1e-31) // below the floor: not fitted
		fits, err := FitDecay(c, 1e-11)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fits {
			if f.Last > 60 {
				t.Errorf("%s: fitted %d eigenvalues, 60 are above the floor", f.Model, f.Last)
			}
			if f.Model != tc.model {
				continue
			}
			if !f.Best {
				t.Errorf("%d-D %s spectrum: the %s model is not the best fit (R² %v)", tc.dim, tc.model, f.Model, f.R2)
			}
			if math.Abs(f.Rate-tc.rate) > 0.01*tc.rate || f.RateLo > tc.rate*(1+1e-9) || f.RateHi < tc.rate*(1-1e-9) {
				t.Errorf("%d-D %s: rate %v [%v, %v], want %v", tc.dim, tc.model, f.Rate, f.RateLo, f.RateHi, tc.rate)
			}
			idx, rel := f.Curve(c)
			for k := range idx {
				want := c.Eigenvalues[int(idx[k])-1] / c.Eigenvalues[0]
				if math.Abs(math.Log(rel[k]/want)) > 0.05 {
					t.Errorf("%s fitted curve at %v: %v, data %v", f.Model, idx[k], rel[k], want)
					break
				}
			}
		}
	}
	if _, err := FitDecay(&SpectrumCurve{Eigenvalues: []float64{1, 1e-20}}, 1e-11); err == nil {
		t.Error("two eigenvalues above the floor: no error")
	}
}

// A small study runs every curve: the eigenvalues are K_T's (they sum to
// its trace from the structured diagonal), every operator sees the same
// points and θ, and the files hold one row per eigenvalue and per fit.
func TestRunSpectrumSmall(t *testing.T) {
	cfg := SpectrumConfig{Points: 24, Widths: []int{6, 10}, Depths: []int{1, 2}, Activation: "tanh", Seed: 3,
		Ops1D: []string{"u", "u_xx"}, Ops2D: []string{"u", "laplacian"}, FitFloor: 1e-11, MaxMemory: 1 << 30}
	calls := 0
	curves, err := RunSpectrum(context.Background(), cfg, func(done, total int, c *SpectrumCurve) {
		calls++
		if done != calls || total != 16 {
			t.Errorf("progress %d/%d at call %d", done, total, calls)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(curves) != 16 {
		t.Fatalf("%d curves, want 2 dims × 2 depths × 2 widths × 2 operators", len(curves))
	}
	var fits []DecayFit
	for i := range curves {
		c := &curves[i]
		// Tr K_T from the structured diagonal of the same network.
		layers := []int{c.Dim}
		for k := 0; k < c.Depth; k++ {
			layers = append(layers, c.Width)
		}
		s, err := model.OperatorSetup(c.Dim, c.Operator, append(layers, 1), "tanh")
		if err != nil {
			t.Fatal(err)
		}
		pts, _ := s.DrawPoints(cfg.Seed, 0, []int{cfg.Points}, nil)
		ev, _ := s.NewEvaluator(pts, model.Options{})
		ev.Forward(s.InitTheta(cfg.Seed), make([]float64, cfg.Points))
		diag := make([]float64, cfg.Points)
		ev.Diagonal(diag)
		var tr, sum float64
		for k, v := range c.Eigenvalues {
			sum += v
			tr += diag[k]
			if k > 0 && v > c.Eigenvalues[k-1] {
				t.Fatalf("%s %s: eigenvalues not descending at %d", c.Label(), c.Operator, k)
			}
		}
		if math.Abs(sum-tr) > 1e-12*tr {
			t.Errorf("%s %s: Σλ = %v, Tr K_T = %v", c.Label(), c.Operator, sum, tr)
		}
		if c.N != cfg.Points || c.P != s.NumParams() {
			t.Errorf("%s: n = %d, p = %d", c.Label(), c.N, c.P)
		}
		f, err := FitDecay(c, cfg.FitFloor)
		if err != nil {
			t.Fatal(err)
		}
		fits = append(fits, f...)
	}
	dir := t.TempDir()
	if err := WriteSpectrum(dir, cfg, curves, fits); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"spectrum.csv": 1 + 16*cfg.Points, "decay.csv": 1 + 2*16} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("%s: %d lines, want %d", name, len(recs), want)
		}
	}
	bad := cfg
	bad.Ops1D = []string{"laplacian"}
	if _, err := RunSpectrum(context.Background(), bad, nil); err == nil {
		t.Error("a 2-D operator in 1-D: no error")
	}
}
