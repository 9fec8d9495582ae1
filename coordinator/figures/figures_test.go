package figures

import (
	"errors"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outDir is where figures are written: $FIGURES_DIR if set (to look at
// them), else a temporary directory.
func outDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("FIGURES_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// checkPNG decodes path and checks its size and that it shows something:
// enough distinct colours and non-white pixels.
func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	colours, nonWhite := stats(img)
	if colours < 50 {
		t.Errorf("%s has only %d distinct colours", path, colours)
	}
	if frac := float64(nonWhite) / float64(w*h); frac < 0.02 {
		t.Errorf("%s is %.1f%% non-white, looks blank", path, 100*frac)
	}
}

func stats(img image.Image) (colours, nonWhite int) {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	return len(seen), nonWhite
}

func TestLinePlotLoss(t *testing.T) {
	// Training losses falling to 1e-11, with NaN and a zero that a log
	// axis must skip.
	var ep, total, pde, bnd []float64
	for e := 0; e <= 250; e++ {
		x := float64(e)
		ep = append(ep, x)
		pde = append(pde, 2e3*math.Exp(-x/9)+1e-11*(1+math.Sin(x)))
		bnd = append(bnd, 1e1*math.Exp(-x/11)+2e-12)
		total = append(total, pde[e]+bnd[e])
	}
	pde[40] = math.NaN()
	bnd[60] = 0
	path := filepath.Join(outDir(t), "loss.png")
	err := LinePlot(path, []Series{
		{Name: "Total loss", X: ep, Y: total},
		{Name: "PDE residual", X: ep, Y: pde, Style: Dashed},
		{Name: "Boundary", X: ep, Y: bnd, Style: Dotted},
	}, LineOptions{Title: "Training loss", XLabel: "Epoch", YLabel: "Loss", LogY: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 960, 640)
}

func TestLinePlotWeights(t *testing.T) {
	// Exact weights dashed, estimates solid in the same colour with a
	// confidence band: the paper's Figure 8.
	var steps []float64
	names := []string{"λ_{D}", "λ_{B}", "λ_{Bt}"}
	var series []Series
	rng := rand.New(rand.NewPCG(1, 2))
	for b, base := range []float64{1.2, 6, 30} {
		var exact, est, lo, hi []float64
		for s := 0; s <= 400; s++ {
			x := float64(s) * 200
			if b == 0 {
				steps = append(steps, x)
			}
			e := base * (1 + 0.3*math.Sin(x/15000+float64(b)))
			exact = append(exact, e)
			v := e * (1 + 0.08*rng.NormFloat64()) * (1 - 0.05*float64(b-1))
			est = append(est, v)
			lo = append(lo, v*0.85)
			hi = append(hi, v*1.15)
		}
		series = append(series,
			Series{Name: names[b] + " exact", X: steps, Y: exact, Style: Dashed, Group: names[b]},
			Series{Name: names[b] + " estimate", X: steps, Y: est, Lo: lo, Hi: hi, Group: names[b]},
		)
	}
	path := filepath.Join(outDir(t), "weights.png")
	err := LinePlot(path, series, LineOptions{
		Size:  Size{Width: 1100, Height: 600},
		Title: "Loss weights", XLabel: "Epoch", YLabel: "λ", LogY: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1100, 600)
}

func TestLinePlotReference(t *testing.T) {
	// Time-averaged loss falling as O(1/T), log-log, with a reference.
	var T, avg, grad []float64
	for k := 0; k <= 60; k++ {
		x := math.Pow(10, float64(k)/20)
		T = append(T, x)
		avg = append(avg, 50/(x+3)*(1+0.1*math.Sin(float64(k))))
		grad = append(grad, 4e3/(x+8))
	}
	path := filepath.Join(outDir(t), "rate.png")
	err := LinePlot(path, []Series{
		{Name: "time-averaged loss", X: T, Y: avg},
		{Name: "time-averaged ‖R‖²", X: T, Y: grad},
	}, LineOptions{
		Size: Size{Width: 800, Height: 600}, XLabel: "Epoch T", YLabel: "average",
		LogX: true, LogY: true,
		References: []Reference{{Label: "O(T⁻¹) reference", Slope: -1, X0: 10, Y0: 20}},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 800, 600)
}

func TestLinePlotScatter(t *testing.T) {
	// Data points, the true curve and a fitted curve: the paper's Figure 4.
	rng := rand.New(rand.NewPCG(3, 4))
	f := func(x float64) float64 { return math.Pi*x*x + math.Exp(x) + math.Sqrt2 }
	var xs, ys, cx, truth, fit []float64
	for i := range 50 {
		x := -1 + 2*float64(i)/49
		xs = append(xs, x)
		ys = append(ys, f(x)+0.3*rng.NormFloat64())
	}
	for i := range 200 {
		x := -1 + 2*float64(i)/199
		cx = append(cx, x)
		truth = append(truth, f(x))
		fit = append(fit, 2.43+1.2*x+4.6*x*x)
	}
	path := filepath.Join(outDir(t), "scatter.png")
	err := LinePlot(path, []Series{
		{Name: "data", X: xs, Y: ys, Style: Markers},
		{Name: "true f", X: cx, Y: truth},
		{Name: "fitted f_{θ}", X: cx, Y: fit, Style: Dashed},
	}, LineOptions{Title: "Quadratic predictor", XLabel: "x", YLabel: "y"})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 960, 640)
}

func TestErrorRatePlot(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var n, mse, se []float64
	for k := 0; k <= 8; k++ {
		N := math.Round(10 * math.Pow(10, float64(k)/4))
		n = append(n, N)
		m := 2e4 / N * math.Exp(0.15*rng.NormFloat64())
		mse = append(mse, m)
		se = append(se, 0.35*m)
	}
	se[0] = 2 * mse[0] // lower end below zero on the log axis
	mse[3] = math.NaN()
	path := filepath.Join(outDir(t), "error_rate.png")
	bound := make([]float64, len(n))
	for i, N := range n {
		bound[i] = 1e6 / N
	}
	pred := []Series{{Name: "bound", X: n, Y: bound, Style: Dashed}}
	err := ErrorRatePlot(path, n, mse, se, ErrorRateOptions{Title: "NTK Monte Carlo error", Predicted: pred})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 960, 640)

	pred[0].Y = bound[:3]
	if err := ErrorRatePlot(path, n, mse, se, ErrorRateOptions{Predicted: pred}); err == nil {
		t.Error("a predicted curve with fewer Y than X values was drawn; want an error")
	}
}

// quadraticNTK returns the exact NTK of the predictor (θ⊙θ)·(1, x, x²) on n
// equispaced points in [−1, 1], and Hutchinson-type estimates with the
// given numbers of Gaussian probes.
func quadraticNTK(n int, probes []int) (exact []float64, est [][]float64) {
	theta := []float64{1.1, 0.9, 1.7}
	J := make([]float64, n*3)
	for i := range n {
		x := -1 + 2*float64(i)/float64(n-1)
		for k, p := range []float64{1, x, x * x} {
			J[i*3+k] = 2 * theta[k] * p
		}
	}
	exact = make([]float64, n*n)
	for i := range n {
		for j := range n {
			for k := range 3 {
				exact[i*n+j] += J[i*3+k] * J[j*3+k]
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	g, d := make([]float64, n), make([]float64, n)
	for _, N := range probes {
		K := make([]float64, n*n)
		for range N {
			for i := range g {
				g[i] = rng.NormFloat64()
			}
			for i := range n {
				d[i] = 0
				for j := range n {
					d[i] += exact[i*n+j] * g[j]
				}
			}
			for i := range n {
				for j := range n {
					K[i*n+j] += (d[i]*g[j] + g[i]*d[j]) / 2 / float64(N)
				}
			}
		}
		est = append(est, K)
	}
	return exact, est
}

func TestHeatmaps(t *testing.T) {
	exact, est := quadraticNTK(50, []int{1, 200, 2000})
	path := filepath.Join(outDir(t), "ntk.png")
	err := Heatmaps(path, []Matrix{
		{Title: "Exact NTK", Data: exact},
		{Title: "1 probe", Data: est[0]},
		{Title: "200 probes", Data: est[1]},
		{Title: "2000 probes", Data: est[2]},
	}, HeatmapOptions{Title: "NTK of the quadratic predictor", SharedRange: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1080, 1010)

	// A signed difference with a diverging palette, and a NaN entry.
	diff := make([]float64, len(exact))
	for i := range diff {
		diff[i] = est[1][i] - exact[i]
	}
	diff[7] = math.NaN()
	path = filepath.Join(outDir(t), "ntk_diff.png")
	err = Heatmaps(path, []Matrix{
		{Title: "Exact NTK", Data: exact},
		{Title: "200 probes − exact", Data: diff, Diverging: true},
	}, HeatmapOptions{Size: Size{Width: 1000, Height: 450}})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1000, 450)
}

// waveGrid samples the wave solution, a perturbed "prediction" and their
// difference on an nx×nt grid over (0, 1)².
func waveGrid(nx, nt int) (g Grid, truth, pred, diff []float64) {
	g = Grid{Nx: nx, Ny: nt, XMin: 0, XMax: 1, YMin: 0, YMax: 1}
	for j := range nt {
		for i := range nx {
			x, t := g.x(i), g.y(j)
			u := math.Sin(math.Pi*x)*math.Cos(2*math.Pi*t) + 0.5*math.Sin(4*math.Pi*x)*math.Cos(8*math.Pi*t)
			e := 0.03 * math.Sin(3*math.Pi*x) * math.Sin(math.Pi*t) * (1 + t)
			truth = append(truth, u)
			pred = append(pred, u+e)
			diff = append(diff, e)
		}
	}
	return g, truth, pred, diff
}

func TestFieldMaps(t *testing.T) {
	g, truth, pred, diff := waveGrid(101, 101)
	pred[500] = math.NaN()
	path := filepath.Join(outDir(t), "wave.png")
	err := FieldMaps(path, []FieldPanel{
		{Title: "PINN u(x, t)", Grid: g, Z: pred},
		{Title: "Exact u(x, t)", Grid: g, Z: truth, Contours: 8},
		{Title: "Error", Grid: g, Z: diff, Diverging: true, Contours: 6},
	}, FieldOptions{XLabel: "x", YLabel: "t", SharedRange: true, EqualAspect: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1560, 460)
}

// directorField returns a light-intensity map on a fine grid and a director
// field on a coarse grid over (−2, 2)², rotating from a radial pattern at
// the centre to horizontal at the edge.
func directorField(fine, coarse int) (g Grid, z []float64, d *Directors) {
	angle := func(x, y float64) float64 {
		r := math.Hypot(x, y)
		return math.Atan2(y, x) * math.Exp(-r*r/2)
	}
	g = Grid{Nx: fine, Ny: fine, XMin: -2, XMax: 2, YMin: -2, YMax: 2}
	for j := range fine {
		for i := range fine {
			x, y := g.x(i), g.y(j)
			s := (4 - x*x) * (4 - y*y) / 16 // order parameter, 0 on the boundary
			z = append(z, s*0.6*math.Abs(math.Cos(angle(x, y))))
		}
	}
	cg := Grid{Nx: coarse, Ny: coarse, XMin: -2, XMax: 2, YMin: -2, YMax: 2}
	d = &Directors{Grid: cg}
	for j := range coarse {
		for i := range coarse {
			a := angle(cg.x(i), cg.y(j))
			d.U = append(d.U, math.Cos(a))
			d.V = append(d.V, math.Sin(a))
		}
	}
	return g, z, d
}

func TestDirectorField(t *testing.T) {
	// Light intensity with the director on top, three solutions side by
	// side: the paper's Figure 10.
	g, z, d := directorField(121, 15)
	var panels []FieldPanel
	for k, title := range []string{"FEM", "NTK-PINN", "PINN"} {
		zk := make([]float64, len(z))
		for i, v := range z {
			zk[i] = v * (1 - 0.05*float64(k))
		}
		panels = append(panels, FieldPanel{Title: title + ", t = 0", Grid: g, Z: zk, Contours: 8, Directors: d})
	}
	path := filepath.Join(outDir(t), "directors.png")
	err := FieldMaps(path, panels, FieldOptions{
		Title: "Light intensity and director", XLabel: "x", YLabel: "y",
		SharedRange: true, EqualAspect: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1560, 510)

	// A single panel at a chosen size.
	path = filepath.Join(outDir(t), "director.png")
	err = FieldMaps(path, panels[1:2], FieldOptions{Size: Size{Width: 700, Height: 600}, XLabel: "x", YLabel: "y", EqualAspect: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 700, 600)
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.png")
	nan := math.NaN()
	g := Grid{Nx: 3, Ny: 2, XMin: 0, XMax: 1, YMin: 0, YMax: 1}
	for _, tc := range []struct {
		name   string
		run    func() error
		noData bool
	}{
		{"line: mismatched lengths", func() error {
			return LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{1}}}, LineOptions{})
		}, false},
		{"line: band length", func() error {
			return LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{1, 2}, Lo: []float64{0}, Hi: []float64{3}}}, LineOptions{})
		}, false},
		{"line: no series", func() error { return LinePlot(path, nil, LineOptions{}) }, false},
		{"line: empty", func() error { return LinePlot(path, []Series{{}}, LineOptions{}) }, true},
		{"line: all NaN", func() error {
			return LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{nan, nan}}}, LineOptions{})
		}, true},
		{"line: nothing positive on log axis", func() error {
			return LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{0, -1}}}, LineOptions{LogY: true})
		}, true},
		{"line: bad reference", func() error {
			return LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{1, 2}}},
				LineOptions{References: []Reference{{Slope: -1, X0: 0, Y0: 1}}})
		}, false},
		{"line: negative size", func() error {
			return LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{1, 2}}}, LineOptions{Size: Size{Width: -5}})
		}, false},
		{"error rate: mismatched", func() error {
			return ErrorRatePlot(path, []float64{1, 2}, []float64{1}, nil, ErrorRateOptions{})
		}, false},
		{"error rate: nothing positive", func() error {
			return ErrorRatePlot(path, []float64{10, 100}, []float64{0, nan}, nil, ErrorRateOptions{})
		}, true},
		{"heatmap: not square", func() error {
			return Heatmaps(path, []Matrix{{Data: make([]float64, 6)}}, HeatmapOptions{})
		}, false},
		{"heatmap: empty", func() error {
			return Heatmaps(path, []Matrix{{}}, HeatmapOptions{})
		}, false},
		{"heatmap: no panels", func() error { return Heatmaps(path, nil, HeatmapOptions{}) }, false},
		{"heatmap: all NaN", func() error {
			return Heatmaps(path, []Matrix{{Data: []float64{nan, nan, nan, nan}}}, HeatmapOptions{})
		}, true},
		{"field: size mismatch", func() error {
			return FieldMaps(path, []FieldPanel{{Grid: g, Z: make([]float64, 5)}}, FieldOptions{})
		}, false},
		{"field: empty extent", func() error {
			bad := g
			bad.XMax = bad.XMin
			return FieldMaps(path, []FieldPanel{{Grid: bad, Z: make([]float64, 6)}}, FieldOptions{})
		}, false},
		{"field: one column", func() error {
			return FieldMaps(path, []FieldPanel{{Grid: Grid{Nx: 1, Ny: 6, XMax: 1, YMax: 1}, Z: make([]float64, 6)}}, FieldOptions{})
		}, false},
		{"field: all NaN", func() error {
			return FieldMaps(path, []FieldPanel{{Grid: g, Z: []float64{nan, nan, nan, nan, nan, nan}}}, FieldOptions{})
		}, true},
		{"field: director mismatch", func() error {
			return FieldMaps(path, []FieldPanel{{Grid: g, Z: make([]float64, 6),
				Directors: &Directors{Grid: g, U: make([]float64, 6), V: make([]float64, 5)}}}, FieldOptions{})
		}, false},
		{"field: director grid", func() error {
			return FieldMaps(path, []FieldPanel{{Grid: g, Z: make([]float64, 6),
				Directors: &Directors{Grid: g, U: make([]float64, 4), V: make([]float64, 4)}}}, FieldOptions{})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "figures: ") || !strings.Contains(err.Error(), "bad.png") {
				t.Errorf("error %q does not say what was being done", err)
			}
			if got := errors.Is(err, ErrNoData); got != tc.noData {
				t.Errorf("errors.Is(%q, ErrNoData) = %v, want %v", err, got, tc.noData)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("a file was left behind: %v", err)
			}
		})
	}
}

func TestUnwritablePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "x.png")
	err := LinePlot(path, []Series{{X: []float64{1, 2}, Y: []float64{1, 2}}}, LineOptions{})
	if err == nil || !strings.Contains(err.Error(), "write line plot") {
		t.Fatalf("got %v, want a write error", err)
	}
}

// Heatmap panels get their own data's colour range, the union over panels
// of the same palette (SharedRange), or the range given.
func TestHeatmapRanges(t *testing.T) {
	panels := []Matrix{{Data: []float64{0, 1, 1, 2}}, {Data: []float64{-5, 0, 0, 9}}, {Data: []float64{-1, 0, 0, 3}, Diverging: true}}
	for _, tc := range []struct {
		opt  HeatmapOptions
		want []valueRange
	}{
		{HeatmapOptions{}, []valueRange{{0, 2}, {-5, 9}, {-1, 3}}},
		{HeatmapOptions{SharedRange: true}, []valueRange{{-5, 9}, {-5, 9}, {-1, 3}}},
		{HeatmapOptions{SharedRange: true, Range: [2]float64{0, 2}}, []valueRange{{0, 2}, {0, 2}, {0, 2}}},
	} {
		_, got, err := heatRanges(panels, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if got[k] != tc.want[k] {
				t.Errorf("%+v: panel %d range %v, want %v", tc.opt, k, got[k], tc.want[k])
			}
		}
	}
}
