package coordinator

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
)

func readSummary(t *testing.T, dir string) Summary {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, summaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A stop rule ends a run after the first step that meets it: the target
// loss after the first step at or below it, the stall rule when the loss
// has not fallen by the asked fraction for so many steps. The run is then
// finished at that length (summary.json says why); an interrupted run
// resumed stops at the same step, and an extended one runs on.
func TestStopRules(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson1d", Layers: []int{1, 20, 1}})
	if err != nil {
		t.Fatal(err)
	}
	base := RunConfig{Model: s.Config, Seed: 2, ErrorEvery: 1, Train: TrainConfig{
		Steps: 300, Mode: Fixed, Loss: LossMean, Optimizer: "ngd", Schedule: optim.Schedule{LR: 1}, PointSeed: 2, Counts: []int{40, 1, 1},
		Natural: optim.NaturalConfig{DampingAuto: true, LineSearch: true, Solver: optim.SolverCholesky},
	}}
	var fullTheta []float64
	run := func(dir string, cfg RunConfig, opt RunOptions) ([]*StepRecord, error) {
		var recs []*StepRecord
		o := opt
		o.Progress = func(rec *StepRecord, done, total int) {
			c := *rec
			recs = append(recs, &c)
			if opt.Progress != nil {
				opt.Progress(rec, done, total)
			}
		}
		r, err := NewRun(dir, cfg, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Execute(context.Background())
		fullTheta = append([]float64(nil), r.Trainer.Theta()...)
		return recs, err
	}
	root := t.TempDir()

	// Target loss: the first row at or below it is the last.
	cfg := base
	cfg.Stop = StopRules{TargetLoss: 1e-4}
	recs, err := run(filepath.Join(root, "loss"), cfg, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	for _, r := range recs[:len(recs)-1] {
		if r.Loss <= 1e-4 {
			t.Fatalf("step %d has loss %v ≤ the target, the run went on to step %d", r.Step, r.Loss, last.Step)
		}
	}
	if last.Loss > 1e-4 || len(recs) == cfg.Train.Steps {
		t.Fatalf("stopped after step %d with loss %v", last.Step, last.Loss)
	}
	if sm := readSummary(t, filepath.Join(root, "loss")); sm.StopReason != StopTargetLoss || sm.Steps != len(recs) {
		t.Errorf("summary: stop reason %q after %d steps, want %q after %d", sm.StopReason, sm.Steps, StopTargetLoss, len(recs))
	}

	// Target error: the run's error evaluations decide.
	cfg = base
	cfg.Stop = StopRules{TargetError: 0.01}
	if _, err := run(filepath.Join(root, "error"), cfg, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if sm := readSummary(t, filepath.Join(root, "error")); sm.StopReason != StopTargetError || *sm.ErrorL2 > 0.01 || sm.Steps == cfg.Train.Steps {
		t.Errorf("summary: stop reason %q after %d steps, error %v", sm.StopReason, sm.Steps, *sm.ErrorL2)
	}

	// Stall: no fall by half in 20 steps.
	cfg = base
	cfg.Stop = StopRules{StallSteps: 20, StallDecrease: 0.5}
	full := filepath.Join(root, "stall")
	recs, err = run(full, cfg, RunOptions{CheckpointEvery: 7})
	if err != nil {
		t.Fatal(err)
	}
	n := len(recs)
	if n == cfg.Train.Steps {
		t.Fatalf("the stall rule did not stop the run in %d steps", n)
	}
	best := recs[0].Loss
	for _, r := range recs[:n-20] {
		best = min(best, r.Loss)
	}
	for _, r := range recs[n-20:] {
		if r.Loss < 0.5*best {
			t.Errorf("step %d: loss %v fell by more than half below %v within the last 20 steps", r.Step, r.Loss, best)
		}
	}
	st, err := ReadRun(full)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Finished() || st.Config.Train.Steps != n {
		t.Fatalf("stopped run: finished %v at %d steps; want finished at %d", st.Finished(), st.Config.Train.Steps, n)
	}
	if sm := readSummary(t, full); sm.StopReason != StopStall {
		t.Errorf("stop reason %q, want stall", sm.StopReason)
	}
	want := readCSV(t, filepath.Join(full, csvFile))
	wantTheta := fullTheta

	// Interrupted and resumed: the same rows, the same last step.
	part := filepath.Join(root, "part")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := NewRun(part, cfg, nil, RunOptions{CheckpointEvery: 7, Progress: func(_ *StepRecord, done, _ int) {
		if done == n-10 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); err == nil {
		t.Fatal("an interrupted run reported success")
	}
	resumeSameRun(t, part, nil, RunOptions{}, want, wantTheta)

	// Extended: the stall rule starts afresh and the run goes on.
	if err := ExtendRun(full, n+30); err != nil {
		t.Fatal(err)
	}
	r, err = ResumeRun(full, nil, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Trainer.Next(); got < n+20 {
		t.Errorf("the extended run stopped at step %d, before the stall rule could fire again (%d)", got, n+20)
	}
}
