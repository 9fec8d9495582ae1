package natsbus

import (
	"context"
	"math"
	"testing"
	"time"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/sampler"
)

// The sketch estimators over NATS are the in-process ones to the bit: the
// same keyed probes, kept as columns in probe-index order.
func TestSketchOverNATSEqualsInProcess(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 5, Quotient: sampler.Exact})
	const N = 20
	// Each estimator draws the probes of its own step.
	estimate := func(b coordinator.Backend, est coordinator.Estimator) *coordinator.EstimateResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		w := f.work()
		w.ID, w.Step = uint64(est)+1, uint32(est)+1
		res, err := coordinator.EstimateAt(ctx, b, f.plan, w, f.r0, coordinator.EstimateOptions{Probes: N, Batch: 6, Estimator: est})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	local, err := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	c.samplers(3)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 3})
	for _, est := range []coordinator.Estimator{coordinator.Nystrom, coordinator.XNysTrace} {
		want, got := estimate(local, est), estimate(b, est)
		for _, pair := range [][2][]float64{
			{want.Estimate.BlockTraces, got.Estimate.BlockTraces},
			{want.Estimate.Cov, got.Estimate.Cov},
			{want.Sketch.Nystrom.Lambda, got.Sketch.Nystrom.Lambda},
		} {
			if len(pair[0]) != len(pair[1]) {
				t.Fatalf("%s: lengths differ", est)
			}
			for i := range pair[0] {
				if math.Float64bits(pair[0][i]) != math.Float64bits(pair[1][i]) {
					t.Fatalf("%s: NATS %v, in process %v", est, pair[1], pair[0])
				}
			}
		}
	}
}
