package coordinator

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
)

// A step that raises the loss at every η the line search tries is rejected:
// θ stays, μ grows by ν (then ν doubles), the next accepted step restores a
// fixed μ, and the rejection shows in train.csv.
func TestNGDRejectsAStepThatRaisesTheLoss(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{Model: s.Config, Seed: 1, Train: TrainConfig{
		Steps: 6, Mode: Fixed, Optimizer: "ngd", Schedule: optim.Schedule{LR: 1e6}, PointSeed: 1, Counts: []int{8, 4}, // n < p: function space
		Natural: optim.NaturalConfig{Damping: 1e-4, Solver: optim.SolverCholesky}, // no line search: only η = 10⁶
	}}
	dir := t.TempDir()
	var recs []optim.Record
	run, err := NewRun(dir, cfg, nil, RunOptions{Progress: func(rec *StepRecord, done, total int) {
		recs = append(recs, *rec.Optim)
	}})
	if err != nil {
		t.Fatal(err)
	}
	theta0 := append([]float64(nil), run.Trainer.Theta()...)
	if err := run.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !recs[0].Rejected || recs[0].Actual >= 0 {
		t.Fatalf("step 0 with η = 10⁶: %+v, want a rejected step that would raise the loss", recs[0])
	}
	if recs[1].Mu != 2*recs[0].Mu || !recs[1].Rejected || recs[2].Mu != 8*recs[0].Mu {
		t.Errorf("μ after rejections: %v, %v, %v; want μ, 2μ, 8μ (ν = 2, then 4)", recs[0].Mu, recs[1].Mu, recs[2].Mu)
	}
	rows := readCSV(t, filepath.Join(dir, csvFile))
	header := strings.Split(rows[0], ",")
	col := -1
	for i, h := range header {
		if h == "step_rejected" {
			col = i
		}
	}
	if col < 0 || strings.Split(rows[1], ",")[col] != "1" {
		t.Fatalf("train.csv does not show step 0 as rejected: %s / %s", rows[0], rows[1])
	}
	// With a sane η the same start is accepted and restores the given μ.
	cfg.Train.Schedule.LR = 1
	cfg.Train.Natural.LineSearch = true
	cfg.Train.Steps = 2
	run, err = NewRun(filepath.Join(dir, "ok"), cfg, nil, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := run.Trainer
	if err := tr.Method().SetState(&optim.State{Mu: 1, Nu: 8}); err != nil { // as after rejections
		t.Fatal(err)
	}
	rec, err := tr.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := tr.Method().State(); rec.Optim.Rejected || st.Mu != 1e-4 || st.Nu != 2 {
		t.Errorf("accepted step: %+v, next μ %v ν %v; want μ back at 1e-4 and ν = 2", rec.Optim, st.Mu, st.Nu)
	}
	same := true
	for i, v := range tr.Theta() {
		same = same && v == theta0[i]
	}
	if same {
		t.Error("an accepted step left θ unchanged")
	}
}

// A natural-gradient run stopped and resumed (gracefully, or after a crash
// past its last checkpoint) is the run that never stopped, to the bit: the
// checkpoint carries the damping state. Both dense routes: n > p (the
// Gramian in parameter space) and n < p (K in function space).
func TestNGDResumeGivesTheSameRun(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, counts := range [][]int{{30, 12}, {10, 6}} {
		t.Run(fmt.Sprintf("n=%d", counts[0]+counts[1]), func(t *testing.T) { testNGDResume(t, s, counts) })
	}
}

func testNGDResume(t *testing.T, s *model.Setup, counts []int) {
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: TrainConfig{
		Steps: 16, Mode: ExactWeights, ExactEvery: 3, Optimizer: "ngd", Schedule: optim.Schedule{LR: 1}, PointSeed: 2, Counts: counts,
		Natural: optim.NaturalConfig{DampingAuto: true, LineSearch: true, Solver: optim.SolverCholesky},
	}, ErrorEvery: 3}
	opt := RunOptions{CheckpointEvery: 5}
	root := t.TempDir()
	full := filepath.Join(root, "full")
	r, err := NewRun(full, cfg, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := readCSV(t, filepath.Join(full, csvFile))
	wantTheta := append([]float64(nil), r.Trainer.Theta()...)
	mu := slices.Index(strings.Split(want[0], ","), "mu")
	if mu < 0 {
		t.Fatalf("no mu column: %s", want[0])
	}
	mus := map[string]bool{}
	for _, row := range want[1:] {
		mus[strings.Split(row, ",")[mu]] = true
	}
	if len(mus) < 3 {
		t.Fatalf("μ took %d values: the test needs a changing damping", len(mus))
	}
	check := func(dir string) { t.Helper(); resumeSameRun(t, dir, nil, opt, want, wantTheta) }
	graceful := filepath.Join(root, "graceful")
	ctx, cancel := context.WithCancel(context.Background())
	o := opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 7 {
			cancel()
		}
	}
	if r, err = NewRun(graceful, cfg, nil, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); err == nil {
		t.Fatal("an interrupted run reported success")
	}
	check(graceful)

	crash := filepath.Join(root, "crash")
	var saved []byte
	o = opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 6 {
			saved, _ = os.ReadFile(filepath.Join(crash, checkpointFile))
		}
	}
	if r, err = NewRun(crash, cfg, nil, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(crash, checkpointFile), saved, 0o644)
	check(crash)
}

func TestNaturalConfigErrors(t *testing.T) {
	s := smallWave(t)
	for _, tc := range []struct {
		mut  func(*TrainConfig)
		want string
	}{
		{func(c *TrainConfig) { c.Natural.DampingAuto = false; c.Natural.Damping = 0 }, "μ = 0"},
		{func(c *TrainConfig) { c.Natural.Damping = -1 }, "damping"},
		{func(c *TrainConfig) { c.Natural.Solver = "lu" }, "solver"},
		{func(c *TrainConfig) { c.Natural.Solver = optim.SolverWoodbury }, "sngd by woodbury"},
		{func(c *TrainConfig) { c.Natural.Solver = optim.SolverCG; c.Natural.CGTol = 0; c.Natural.CGMaxIter = 10 }, "CG tolerance"},
		{func(c *TrainConfig) { c.Natural.Solver = optim.SolverCG; c.Natural.CGTol = 1e-8 }, "CG iterations"},
		{func(c *TrainConfig) {
			c.Natural.Solver = optim.SolverCG
			c.Natural.CGTol = 1e-8
			c.Natural.CGMaxIter = optim.MaxCGIter + 1
		}, "want 1 to 1000000"},
		{func(c *TrainConfig) { c.Optimizer = "sngd"; c.Natural.Solver = optim.SolverCholesky }, "sngd by woodbury"},
	} {
		cfg := TrainConfig{Steps: 1, Mode: Fixed, Optimizer: "ngd", Schedule: optim.Schedule{LR: 1}, Resample: true, PointSeed: 1,
			Natural: optim.NaturalConfig{DampingAuto: true, Solver: optim.SolverCholesky}}
		tc.mut(&cfg)
		_, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want one about %q", cfg.Natural, err, tc.want)
		}
	}
}

// An ngd checkpoint's damping state is checked on resume like the rest.
func TestNGDCheckpointDampingIsChecked(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: TrainConfig{
		Steps: 6, Mode: Fixed, Optimizer: "ngd", Schedule: optim.Schedule{LR: 1}, PointSeed: 2, Counts: []int{10, 6},
		Natural: optim.NaturalConfig{DampingAuto: true, LineSearch: true, Solver: optim.SolverCholesky},
	}}
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := NewRun(dir, cfg, nil, RunOptions{Progress: func(_ *StepRecord, done, _ int) {
		if done == 3 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.Execute(ctx)
	path := filepath.Join(dir, checkpointFile)
	good, _ := os.ReadFile(path)
	if _, err := ReadRun(dir); err != nil {
		t.Fatalf("the run's own checkpoint: %v", err)
	}
	for _, tc := range []struct {
		name string
		mut  func(ck *checkpointState)
		want string
	}{
		{"no damping state", func(ck *checkpointState) { ck.Optimizer = nil }, "optimizer state present: false"},
		{"NaN μ", func(ck *checkpointState) { ck.Optimizer.Mu = math.NaN() }, "μ = NaN"},
		{"negative μ", func(ck *checkpointState) { ck.Optimizer.Mu = -1 }, "μ = -1"},
		{"ν beyond its bound", func(ck *checkpointState) { ck.Optimizer.Nu = 1e300 }, "ν = 1e+300"},
	} {
		os.WriteFile(path, good, 0o644)
		ck := stateOf(t, path)
		tc.mut(ck)
		writeState(t, path, ck)
		if _, err := ReadRun(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}
