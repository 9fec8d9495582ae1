package report

import (
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
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
		Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3}, PointSeed: 1, Fused: true,
	}, ErrorEvery: 5}
	r, err := coordinator.NewRun(dir, cfg, nil, coordinator.RunOptions{})
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
		if want[i] == "kernels.png" || want[i] == "weights.png" {
			w, h = 0, 0 // panels (a block's weights each): size depends on the layout
		}
		checkPNG(t, f, w, h)
	}

	// With fixed weights there is no weights figure (it would be flat
	// lines at the weights given), and the error figure ends at the last
	// step: the error of the final θ from summary.json.
	fixed := filepath.Join(t.TempDir(), "fixed")
	cfg.Train.Mode, cfg.Train.Kernel, cfg.Train.ExactEvery, cfg.Train.Eigenvalues = coordinator.Fixed, false, 0, 0
	cfg.ErrorEvery = 7
	if r, err = coordinator.NewRun(fixed, cfg, nil, coordinator.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(fixed, "weights.png"), nil, 0o644) // an earlier version's
	if files, err = RunFigures(fixed); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "weights.png" {
			t.Error("a fixed-weight run has a weights figure")
		}
	}
	if _, err := os.Stat(filepath.Join(fixed, "weights.png")); err == nil {
		t.Error("an earlier weights.png of a fixed-weight run stays")
	}
	tab, err := ReadTable(filepath.Join(fixed, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range errorSeries(fixed, tab) {
		if n := len(s.X); n != 6 || s.X[n-2] != 28 || s.X[n-1] != 30 {
			t.Errorf("%s at steps %v: want 0, 7, …, 28 and the last step, 30", s.Name, s.X)
		}
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

// The Q-tensor figure has the finite-difference reference as its first row:
// at t = 0 that is the initial condition's intensity, ½|d|²·|d₁|/|d| = 0.4981
// at the centre (d = (16, 0)/√257) and 0 on the boundary.
func TestQTensorPanels(t *testing.T) {
	cfg, _ := model.DefaultConfig("qtensor")
	cfg.Layers = []int{3, 8, 2}
	s, err := model.NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	theta := s.InitTheta(1)
	times := []float64{0, 0.5, 2}
	panels := qtensorPanels([]*model.Setup{s, s}, [][]float64{theta, theta}, []string{"A", "B"}, times)
	if len(panels) != 3*len(times) {
		t.Fatalf("%d panels, want 3 rows of %d", len(panels), len(times))
	}
	for i, want := range []string{"Finite-difference reference, t = 0", "Finite-difference reference, t = 2", "A, t = 0", "B, t = 2"} {
		if got := panels[[]int{0, 2, 3, 8}[i]].Title; got != want {
			t.Errorf("panel title %q, want %q", got, want)
		}
	}
	g := panels[0].Grid
	centre := panels[0].Z[(g.Ny/2)*g.Nx+g.Nx/2]
	if want := 0.5 * 256 / 257; math.Abs(centre-want) > 1e-12 {
		t.Errorf("reference intensity at the centre at t = 0: %v, want %v", centre, want)
	}
	if corner := panels[0].Z[0]; corner > 1e-15 {
		t.Errorf("reference intensity at the corner: %v, want 0", corner)
	}
	// The PINN rows are the network's prediction, not the reference.
	if panels[3].Z[(g.Ny/2)*g.Nx+g.Nx/2] == centre {
		t.Error("the first run's row repeats the reference")
	}
	if err := QTensorFigure(filepath.Join(t.TempDir(), "q.png"), []*model.Setup{s}, [][]float64{theta}, []string{"A"}, times); err != nil {
		t.Fatal(err)
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
		// The heatmaps: the exact K, then per variant in the study's order
		// its K̂ at N = 5 and 40, named by variant when there are several.
		panels, err := StudyHeatmaps(d)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Exact NTK", "Estimate, 5 samples", "Estimate, 40 samples"}
		if len(variants) == 2 {
			want = []string{"Exact NTK", "gaussian:forward, 5 samples", "gaussian:forward, 40 samples", "rademacher:forward, 5 samples", "rademacher:forward, 40 samples"}
		}
		if len(panels) != len(want) {
			t.Fatalf("%d heatmap panels, want %d", len(panels), len(want))
		}
		for i, p := range panels {
			if p.Title != want[i] {
				t.Errorf("panel %d: %q, want %q", i, p.Title, want[i])
			}
		}
	}
}
