package natsbus

import (
	"math"
	"testing"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
)

// sngd with its sketch columns computed by samplers on a real server (with
// resampled points, NTK weights from Algorithm 3 sharing the columns) takes
// the same steps, to the bit, as sngd computing them in process.
func TestSNGDOverNATSEqualsInProcess(t *testing.T) {
	setup, _ := model.NewSetup(model.Config{Problem: "wave", Layers: smallLayers})
	for _, mode := range []coordinator.WeightMode{coordinator.Fixed, coordinator.Estimated} {
		cfg := coordinator.TrainConfig{
			Steps: 4, Mode: mode, Alpha: 0.2, InitProbes: 5, StepProbes: 8,
			Probe: sampler.Settings{Seed: 4, Quotient: sampler.Exact}, Optimizer: "sngd", Schedule: optim.Schedule{LR: 1},
			Natural:  optim.NaturalConfig{DampingAuto: true, LineSearch: true, Solver: optim.SolverWoodbury},
			Resample: true, PointSeed: 9, Counts: smallCounts,
		}
		theta0 := setup.InitTheta(2)
		run := func(b coordinator.Backend, fused bool) []float64 { return trainTheta(t, setup, cfg, theta0, b, fused) }
		want := run(nil, true)
		cl := newCluster(t)
		cl.samplers(3)
		b, err := New(cl.connect("coordinator"), Options{Run: "sngd", Setup: setup, Probe: cfg.Probe, Width: probeWidth(t, setup, cfg.Probe), Batch: 2})
		if err != nil {
			t.Fatal(err)
		}
		got := run(b, false)
		b.Close()
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("%s weights: θ after %d steps differs at %d: NATS %v, in process %v", mode, cfg.Steps, i, got[i], want[i])
			}
		}
	}
}
