package report

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
)

// Adam and ngd from the same seed and points: train.csv and summary.json
// carry the relative L² error, and the comparison figure draws both runs
// against steps and seconds.
func TestCompareRuns(t *testing.T) {
	s, _ := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	root := t.TempDir()
	var dirs []string
	for _, opt := range []string{"adam", "ngd"} {
		cfg := coordinator.RunConfig{Model: s.Config, Seed: 1, ErrorGrid: 11, ErrorEvery: 2, Train: coordinator.TrainConfig{
			Steps: 6, Mode: coordinator.Fixed, Optimizer: opt, Schedule: optim.Schedule{LR: 1e-3}, PointSeed: 1, Counts: []int{30, 12},
		}}
		if opt == "ngd" {
			cfg.Train.Schedule.LR = 1
			cfg.Train.Natural = optim.NaturalConfig{DampingAuto: true, LineSearch: true, Solver: optim.SolverCholesky}
		}
		dir := filepath.Join(root, opt)
		r, err := coordinator.NewRun(dir, cfg, nil, coordinator.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Execute(context.Background()); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		var sum struct {
			ErrorL2 *float64 `json:"error_l2"`
		}
		data, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err := json.Unmarshal(data, &sum); err != nil || sum.ErrorL2 == nil || !(*sum.ErrorL2 > 0) {
			t.Errorf("%s summary.json: error_l2 %v (%v)", opt, sum.ErrorL2, err)
		}
		tab, err := ReadTable(filepath.Join(dir, "train.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if !tab.Has("error_l2") {
			t.Errorf("%s train.csv has no error_l2: %v", opt, tab.Columns)
		}
		if natural := tab.Has("mu"); natural != (opt == "ngd") {
			t.Errorf("%s train.csv columns %v: the natural-gradient columns belong to ngd runs only", opt, tab.Columns)
		}
	}
	path := filepath.Join(root, "compare.png")
	if err := CompareRuns(path, dirs, nil, "error_l2"); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1680, 640)
	if err := CompareRuns(path, dirs, []string{"one"}, "error_l2"); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("mismatched labels: %v", err)
	}
	if err := CompareRuns(path, dirs, nil, "loss"); err == nil || !strings.Contains(err.Error(), "metric") {
		t.Errorf("unknown metric: %v", err)
	}
}
