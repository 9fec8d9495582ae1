package study

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/coordinator"
	"ntkbus/coordinator/figures"
	"ntkbus/model"
)

type fixture struct {
	setup *model.Setup
	pts   *model.Collocation
	theta []float64
	ev    model.Evaluator
	r0    []float64
	ref   *Reference
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := model.NewSetup(model.Config{Problem: "quadratic"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{setup: s, theta: s.InitTheta(1)}
	f.pts, _ = s.DrawPoints(1, 0, nil, nil)
	f.ev, _ = s.NewEvaluator(f.pts, model.Options{})
	f.r0 = make([]float64, f.ev.Layout().N)
	f.ev.Forward(f.theta, f.r0)
	if f.ref, err = NewReference(f.ev); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) runner(dir string, cfg Config) *Runner {
	return &Runner{
		Config: cfg, Dir: dir, Setup: f.setup, Points: f.pts, Theta: f.theta, Ref: f.ref, Layout: f.ev.Layout(), R0: f.r0,
		Backends: func(v Variant) (coordinator.Backend, error) {
			return coordinator.NewLocal(f.setup, f.pts, v.Settings, 2, model.Options{})
		},
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// On the quadratic problem the MSE of K̂ and of the trace fall as 1/N: the
// fitted log-log slopes lie in [−1.15, −0.85]; errors.csv has the documented
// columns and theory beside the measurements.
func TestErrorRateSlopeAndColumns(t *testing.T) {
	f := newFixture(t)
	cfg := Config{Problem: f.setup.Config, Seed: 1, Ns: []int{10, 20, 50, 100, 200, 500}, M: 100, Variants: []string{"gaussian"}, Clip: true, Heatmaps: []int{10}}
	dir := t.TempDir()
	if err := f.runner(dir, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	reps, err := ReadReps(filepath.Join(dir, "reps.csv"), 1)
	if err != nil || len(reps) != 600 {
		t.Fatalf("%d repetitions (%v)", len(reps), err)
	}
	rows := Aggregate(reps, &cfg, f.ref)
	var x, yk, yt []float64
	for _, r := range rows {
		x = append(x, float64(r.N))
		yk = append(yk, r.MSEKernel)
		yt = append(yt, r.MSETrace)
		// The measured mean squared errors agree with the exact Gaussian
		// expectations within 5 standard errors.
		if math.Abs(r.MSEKernel-r.GaussKernel) > 5*r.MSEKernelSE || math.Abs(r.MSETrace-r.GaussTrace) > 5*r.MSETraceSE {
			t.Errorf("N = %d: kernel %v ± %v vs %v; trace %v ± %v vs %v", r.N, r.MSEKernel, r.MSEKernelSE, r.GaussKernel, r.MSETrace, r.MSETraceSE, r.GaussTrace)
		}
		if r.MSEKernel > r.Thm4Kernel || r.MSETrace > r.Thm4Trace {
			t.Errorf("N = %d: measured above Theorem 4's Monte Carlo bound", r.N)
		}
		if r.MSEKernelClip > r.MSEKernel*1.0000001 && allNonNegative(f.ref.K) {
			t.Errorf("N = %d: clipping increased the error of a non-negative K", r.N)
		}
	}
	for what, y := range map[string][]float64{"kernel": yk, "trace": yt} {
		slope, _, lo, hi, err := figures.FitLogLog(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if slope < -1.15 || slope > -0.85 {
			t.Errorf("%s: slope %.3f outside [-1.15, -0.85]", what, slope)
		}
		t.Logf("%s slope %.3f [%.3f, %.3f]", what, slope, lo, hi)
	}
	header := strings.SplitN(readFile(t, filepath.Join(dir, "errors.csv")), "\n", 2)[0]
	if header != strings.Join(ErrorColumns([]string{"data"}, true), ",") {
		t.Errorf("errors.csv header %q", header)
	}
	for _, col := range []string{"N", "mse_kernel", "mse_kernel_se", "mse_trace", "mse_trace_se", "mse_trace_data", "theorem4_kernel", "theorem4_trace"} {
		if !strings.Contains(","+header+",", ","+col+",") {
			t.Errorf("errors.csv lacks %s", col)
		}
	}
	if _, n, err := coordinator.ReadMatrixCSV(filepath.Join(dir, "kernel_gaussian-forward_N10.csv")); err != nil || n != 50 {
		t.Errorf("heatmap kernel: n = %d, %v", n, err)
	}
}

func allNonNegative(K []float64) bool {
	for _, v := range K {
		if v < 0 {
			return false
		}
	}
	return true
}

// Interrupted and started again, a study ends with the numbers of one that
// never stopped; a folder with another design is refused.
func TestStudyResumes(t *testing.T) {
	f := newFixture(t)
	cfg := Config{Problem: f.setup.Config, Seed: 2, Ns: []int{5, 10, 20}, M: 6, Variants: []string{"gaussian", "block"}}
	full := t.TempDir()
	if err := f.runner(full, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	part := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	r := f.runner(part, cfg)
	n := 0
	r.Progress = func(done, total int64, rep *Rep) {
		if n++; n == 13 {
			cancel()
		}
	}
	if err := r.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted study: %v", err)
	}
	if err := f.runner(part, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, b := readFile(t, filepath.Join(full, "errors.csv")), readFile(t, filepath.Join(part, "errors.csv")); stripSeconds(a) != stripSeconds(b) {
		t.Errorf("resumed study differs:\n%s\nvs\n%s", a, b)
	}
	other := cfg
	other.M = 7
	if err := f.runner(part, other).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another design") {
		t.Errorf("a different design in the same folder: %v", err)
	}
}

// stripSeconds drops the last (wall-clock) column.
func stripSeconds(csv string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(csv), "\n") {
		out = append(out, line[:strings.LastIndexByte(line, ',')])
	}
	return strings.Join(out, "\n")
}

func TestParseVariants(t *testing.T) {
	vs, err := ParseVariants("gaussian, rademacher:central, block:forward:1e-3, param:exact", 1)
	if err != nil || len(vs) != 4 || vs[2].Settings.Dt != 1e-3 || vs[3].Name != "param/exact" {
		t.Fatalf("%+v, %v", vs, err)
	}
	for _, bad := range []string{"", "gauss", "gaussian:sideways", "gaussian:forward:-1", "gaussian,gaussian:forward"} {
		if _, err := ParseVariants(bad, 1); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The sketch variants on the same probes as Algorithm 2: the quadratic
// predictor's K has rank 3, so from N = 4 on the Nyström K̂ and both
// sketches' traces are exact to rounding (exact quotient), while Algorithm
// 2's errors fall as 1/N.
func TestSketchVariants(t *testing.T) {
	f := newFixture(t)
	cfg := Config{Problem: f.setup.Config, Seed: 3, Ns: []int{2, 4, 8, 16}, M: 5, Variants: []string{"gaussian:exact", "gaussian:nystrom", "gaussian:xnystrace"}}
	dir := t.TempDir()
	if err := f.runner(dir, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	reps, err := ReadReps(filepath.Join(dir, "reps.csv"), 1)
	if err != nil || len(reps) != 60 {
		t.Fatalf("%d repetitions (%v)", len(reps), err)
	}
	rows := Aggregate(reps, &cfg, f.ref)
	tr2, k2 := f.ref.Trace*f.ref.Trace, f.ref.Frob2
	for _, r := range rows {
		t.Logf("%s N = %d: MSE K̂ %.3g, MSE Tr %.3g", r.Variant, r.N, r.MSEKernel, r.MSETrace)
		switch {
		case r.Variant == "gaussian/exact/xnystrace" && !math.IsNaN(r.MSEKernel):
			t.Errorf("xnystrace has a kernel error: %v", r.MSEKernel)
		case r.Variant == "gaussian/exact":
			if r.MSETrace < 1e-6*tr2 {
				t.Errorf("Algorithm 2 at N = %d is exact: %v", r.N, r.MSETrace)
			}
		case r.N >= 4:
			if r.MSETrace > 1e-20*tr2 || (r.Variant == "gaussian/exact/nystrom" && r.MSEKernel > 1e-20*k2) {
				t.Errorf("%s at N = %d: MSE K̂ %v, Tr %v, want rounding", r.Variant, r.N, r.MSEKernel, r.MSETrace)
			}
		}
	}
	if err := (&Config{Problem: f.setup.Config, Ns: []int{10, 2000}, M: 2, Variants: []string{"gaussian:xnystrace"}}).Validate(); err == nil {
		t.Error("xnystrace with N = 2000 accepted")
	}
}

func TestParseSketchVariants(t *testing.T) {
	vs, err := ParseVariants("gaussian:nystrom, rademacher:forward:xnystrace, gaussian:forward:1e-3:nystrom, gaussian:hutchinson", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gaussian/exact/nystrom", "rademacher/forward/xnystrace", "gaussian/forward/1e-3/nystrom", "gaussian/forward"}
	for i, v := range vs {
		if v.Name != want[i] {
			t.Errorf("variant %d: %s, want %s", i, v.Name, want[i])
		}
	}
	if vs[0].Estimator != coordinator.Nystrom || vs[0].Settings.Quotient.String() != "exact" || vs[2].Settings.Dt != 1e-3 {
		t.Errorf("%+v", vs)
	}
	for _, bad := range []string{"block:nystrom", "param:exact:xnystrace", "gaussian:exact:1e-3:nystrom:x"} {
		if _, err := ParseVariants(bad, 1); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
