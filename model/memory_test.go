package model_test

import (
	"runtime"
	"strings"
	"testing"

	"ntkbus/model"
	"ntkbus/sampler"
)

// The memory estimate prices what an evaluator, its prober and the exact
// NTK really allocate: never less, and not wildly more.
func TestMemoryNeedMatchesAllocation(t *testing.T) {
	for _, tc := range []struct {
		problem string
		layers  []int
		counts  []int
	}{
		{"wave", []int{2, 48, 48, 1}, []int{30, 30, 10, 10, 10}},
		{"qtensor", []int{3, 32, 32, 2}, []int{20, 20, 4, 4, 4, 4}},
		{"poisson1d", []int{1, 100, 1}, []int{40, 1, 1}},
		// Wide and few points: the per-part scratch dominates.
		{"poisson1d", []int{1, 20000, 1}, []int{1, 1, 1}},
		{"wave", []int{2, 10000, 1}, []int{1, 1, 1, 1, 1}},
	} {
		cfg, err := model.DefaultConfig(tc.problem)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Layers = tc.layers
		s, err := model.NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.DrawPoints(1, 0, tc.counts, nil)
		if err != nil {
			t.Fatal(err)
		}
		theta := s.InitTheta(1)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ev, err := s.NewEvaluator(c, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		lay := ev.Layout()
		plan, err := sampler.NewPlan(sampler.Settings{Seed: 1}, lay)
		if err != nil {
			t.Fatal(err)
		}
		pr := sampler.NewProber(ev, plan)
		pr.SetBase(theta, 0)
		d := make([]float64, plan.Width())
		pr.Probe(0, d)
		jw := make([]float64, lay.N)
		ev.JVP(theta, jw)
		ev.Diagonal(jw)
		K := make([]float64, lay.N*lay.N)
		if err := ev.NTK(K); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		used := float64(after.TotalAlloc - before.TotalAlloc)
		need, err := s.MemoryNeed(tc.counts, model.Memory{Evaluators: 1, NTK: true, Columns: 2})
		if err != nil {
			t.Fatal(err)
		}
		if need < used || need > 2.5*used {
			t.Errorf("%s %v: estimate %.0f bytes, allocated %.0f (ratio %.2f, want 1 to 2.5)", tc.problem, tc.layers, need, used, need/used)
		}
	}
}

// Sizes from a file never wrap around: a width of 2^62 is a one-line
// error, not a parameter count of 1 and a panic.
func TestHugeLayersAreAnError(t *testing.T) {
	cfg, _ := model.DefaultConfig("poisson1d")
	cfg.Layers = []int{1, 4611686018427387904, 1}
	_, err := model.NewSetup(cfg)
	if err == nil || !strings.Contains(err.Error(), "more than any memory holds") {
		t.Fatalf("layers with 2^62 units: %v", err)
	}
	cfg, _ = model.DefaultConfig("wave")
	cfg.Layers = []int{2, 4611686018427387904, 1}
	if _, err := model.NewSetup(cfg); err == nil || strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("wave with 2^62 units: %v", err)
	}
}

// Work beyond the limit is refused before anything is allocated: a
// million-unit layer, five million points, a count of 2^62 points.
func TestCheckMemoryRefusesLargeWork(t *testing.T) {
	cfg, _ := model.DefaultConfig("wave")
	cfg.Layers = []int{2, 1000000, 1}
	wide, err := model.NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := wide.CheckMemory(nil, model.Memory{Evaluators: 1}, 0); err == nil || !strings.Contains(err.Error(), "over the limit of 4.0 GiB") {
		t.Errorf("layers [2,1000000,1]: %v", err)
	}
	paper, _ := model.NewSetup(model.Config{Problem: "wave"})
	if err := paper.CheckMemory(nil, model.Memory{Evaluators: 3, NTK: true, Kernels: 2}, 0); err != nil {
		t.Errorf("the paper's wave network with three evaluators and its exact K: %v", err)
	}
	if err := paper.CheckMemory([]int{5000000, 300, 100, 100, 100}, model.Memory{Evaluators: 1}, 0); err == nil {
		t.Error("five million interior points fit in 4 GiB?")
	}
	if err := paper.CheckMemory([]int{1 << 62, 1, 1, 1, 1}, model.Memory{Evaluators: 1}, 0); err == nil || !strings.Contains(err.Error(), "PiB") {
		t.Errorf("2^62 points: %v", err)
	}
	if _, err := paper.MemoryNeed([]int{-1, 1, 1, 1, 1}, model.Memory{}); err == nil {
		t.Error("a negative count is accepted")
	}
}
