package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
)

// gonum's L-BFGS, driven step by step by the trainer, lowers the loss on
// poisson1d by orders of magnitude; a run interrupted (gracefully, or by
// a crash after its last checkpoint) and resumed is the uninterrupted run
// to the bit, its memory rebuilt from the checkpoint's iterates; and it
// refuses objectives that change (NTK weights, resampled points).
func TestLBFGS(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson1d", Layers: []int{1, 12, 1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{Model: s.Config, Seed: 3, ErrorEvery: 5, Train: TrainConfig{
		Steps: 80, Mode: Fixed, Loss: LossMean, Optimizer: "lbfgs", PointSeed: 3, Counts: []int{30, 1, 1},
	}}
	opt := RunOptions{CheckpointEvery: 7}
	root := t.TempDir()
	full := filepath.Join(root, "full")
	var first, last float64
	o := opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 1 {
			first = rec.Loss
		}
		last = rec.Loss
	}
	r, err := NewRun(full, cfg, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !(last < 1e-2*first) {
		t.Errorf("L-BFGS: loss %v after %d steps from %v: want it 100 times lower", last, cfg.Train.Steps, first)
	}
	want := readCSV(t, filepath.Join(full, csvFile))
	wantTheta := append([]float64(nil), r.Trainer.Theta()...)
	if !strings.Contains(want[0], "line_search_evals") {
		t.Fatalf("train.csv header: %s", want[0])
	}

	// More steps than the memory keeps (15) before the interruption.
	graceful := filepath.Join(root, "graceful")
	ctx, cancel := context.WithCancel(context.Background())
	o = opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 23 {
			cancel()
		}
	}
	if r, err = NewRun(graceful, cfg, nil, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); err == nil {
		t.Fatal("an interrupted run reported success")
	}
	resumeSameRun(t, graceful, nil, opt, want, wantTheta)

	// Fewer than the memory keeps, from a checkpoint before a crash.
	crash := filepath.Join(root, "crash")
	var saved []byte
	o = opt
	o.Progress = func(rec *StepRecord, done, total int) {
		if done == 8 {
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
	resumeSameRun(t, crash, nil, opt, want, wantTheta)

	for _, mut := range []func(*TrainConfig){
		func(c *TrainConfig) { c.Mode, c.ExactEvery = ExactWeights, 1 },
		func(c *TrainConfig) { c.Resample = true },
	} {
		c := cfg.Train
		mut(&c)
		if _, err := NewTrainer(s, s.InitTheta(1), c, nil, model.Options{}); err == nil || !strings.Contains(err.Error(), "lbfgs needs") {
			t.Errorf("lbfgs with a changing objective: %v", err)
		}
	}
	var _ optim.Method = optim.NewLBFGS(1)
}
