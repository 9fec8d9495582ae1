package report

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"ntkbus/coordinator/figures"
	"ntkbus/coordinator/study"
)

// The study's figures are written from synthetic curves and their fits,
// and the eigenvalue plot skips what a log axis cannot show.
func TestSpectrumFigures(t *testing.T) {
	var curves []study.SpectrumCurve
	var fits []study.DecayFit
	for _, dim := range []int{1, 2} {
		for _, depth := range []int{1, 2} {
			for _, width := range []int{16, 64} {
				for o, op := range []string{"u", "u_x"} {
					c := study.SpectrumCurve{Dim: dim, Depth: depth, Width: width, Operator: op, N: 50}
					for i := 1; i <= 50; i++ {
						c.Eigenvalues = append(c.Eigenvalues, math.Exp(-(1+0.2*float64(o))*math.Pow(float64(i), 1/float64(dim))))
					}
					f, err := study.FitDecay(&c, 1e-11)
					if err != nil {
						t.Fatal(err)
					}
					curves = append(curves, c)
					fits = append(fits, f...)
				}
			}
		}
	}
	dir := t.TempDir()
	files, err := SpectrumStudyFigures(dir, curves, fits)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("wrote %v", files)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Size() < 10000 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := SpectrumStudyFigures(dir, nil, nil); err == nil {
		t.Error("no curves: no error")
	}
	path := filepath.Join(dir, "eig.png")
	if err := EigenvaluePlot(path, "t", []EigenCurve{{Name: "exact", Values: []float64{3, 1, 1e-3, 0, -1e-17}}, {Name: "sketch", Values: []float64{3, 1}, Style: figures.Dashed}}, 1e-15); err != nil {
		t.Fatal(err)
	}
}
