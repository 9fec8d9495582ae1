package report

import (
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"ntkbus/coordinator"
	"ntkbus/coordinator/study"
	"ntkbus/model"
	"ntkbus/sampler"
)

// checkPNG decodes a figure and checks its size and that it is not blank.
func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if w > 0 && (b.Dx() != w || b.Dy() != h) {
		t.Errorf("%s is %d×%d, want %d×%d", filepath.Base(path), b.Dx(), b.Dy(), w, h)
	}
	colors := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			colors[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colors) < 5 {
		t.Errorf("%s looks blank (%d colours)", filepath.Base(path), len(colors))
	}
}

// A run with estimated weights, exact references, eigenvalues, solution
// errors and kept kernels gets every figure.
func TestRunFigures(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	s, _ := model.NewSetup(model.Config{Problem: "poisson1d", Layers: []int{1, 10, 1}, Shift: []float64{0}, Scale: []float64{1}})
	cfg := coordinator.RunConfig{Model: s.Config, Seed: 1, Train: coordinator.TrainConfig{
		Steps: 30, Mode: coordinator.Estimated, Alpha: 0.2, InitProbes: 20, StepProbes: 2, Kernel: true,
		Probe: sampler.Settings{Seed: 1}, ExactEvery: 5, Eigenvalues: 3,
		Optimizer: "adam", Schedule: coordinator.Schedule{LR: 1e-3}, PointSeed: 1, Fused: true,
	}}
	r, err := coordinator.NewRun(dir, cfg, nil, coordinator.RunOptions{ErrorEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := RunFigures(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"loss.png", "weights.png", "eigenvalues.png", "average_loss.png", "average_gradient.png", "error.png", "solution.png", "kernels.png"}
	if len(files) != len(want) {
		t.Fatalf("figures %v, want %v", files, want)
	}
	for i, f := range files {
		if filepath.Base(f) != want[i] {
			t.Errorf("figure %d is %s, want %s", i, filepath.Base(f), want[i])
		}
		w, h := 960, 640
		if want[i] == "kernels.png" {
			w, h = 0, 0 // panels: size depends on the layout
		}
		checkPNG(t, f, w, h)
	}
}

func TestSolutionFigures(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		layers []int
	}{{"quadratic", nil}, {"wave", []int{2, 8, 1}}, {"qtensor", []int{3, 8, 2}}} {
		cfg, _ := model.DefaultConfig(tc.name)
		if tc.layers != nil {
			cfg.Layers = tc.layers
		}
		s, err := model.NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := s.DrawPoints(1, 0, nil, nil)
		path := filepath.Join(dir, tc.name+".png")
		if err := Solution(path, s, s.InitTheta(1), c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkPNG(t, path, 0, 0)
	}
}

func TestStudyFigures(t *testing.T) {
	dir := t.TempDir()
	s, _ := model.NewSetup(model.Config{Problem: "quadratic"})
	pts, _ := s.DrawPoints(1, 0, nil, nil)
	theta := s.InitTheta(1)
	ev, _ := s.NewEvaluator(pts, model.Options{})
	r0 := make([]float64, ev.Layout().N)
	ev.Forward(theta, r0)
	ref, _ := study.NewReference(ev)
	for _, variants := range [][]string{{"gaussian"}, {"gaussian", "rademacher"}} {
		d := filepath.Join(dir, variants[len(variants)-1])
		runner := &study.Runner{
			Config: study.Config{Problem: s.Config, Seed: 1, Ns: []int{5, 10, 20, 40}, M: 4, Variants: variants, Heatmaps: []int{5, 40}},
			Dir:    d, Setup: s, Points: pts, Theta: theta, Ref: ref, Layout: ev.Layout(), R0: r0,
			Backends: func(v study.Variant) (coordinator.Backend, error) {
				return coordinator.NewLocal(s, pts, v.Settings, 1, model.Options{})
			},
		}
		if err := runner.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		files, err := StudyFigures(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 3 {
			t.Fatalf("figures %v", files)
		}
		for _, f := range files[:2] {
			checkPNG(t, f, 960, 640)
		}
		checkPNG(t, files[2], 0, 0)
	}
}
