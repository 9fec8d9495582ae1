package coordinator

import (
	"context"
	"testing"
	"time"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
)

// newWaveTrainer is a trainer on the wave network in the given mode, past
// its initial probes and one ordinary step.
func newWaveTrainer(b *testing.B, mode WeightMode) *Trainer {
	s, err := model.NewSetup(model.Config{Problem: "wave"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := TrainConfig{
		Steps: 1 << 30, Mode: mode, Alpha: 1e-3, InitProbes: 2, StepProbes: 1,
		Probe: sampler.Settings{Seed: 1}, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3},
		PointSeed: 1, Fused: true,
	}
	tr, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2; i++ { // warm-up: the initial probes, then one ordinary step
		if _, err := tr.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return tr
}

// One training step on the paper's wave network (n = 900, p = 503,001):
// plain (fixed weights) against Algorithm 3 with one new probe per step,
// same optimizer and points, each reporting the floating-point operations
// of its matrix products per step (MFLOP/op) and the process's CPU time per
// step (cpu-ns/op, where the system tells). The paper reports about 2.5×;
// the arithmetic floor is 2× (the probe's backward cotangent and one more
// forward pass). scripts/bench-pytorch.sh runs them beside PyTorch; by hand:
//
//	go test ./coordinator -run '^$' -bench WaveStep -cpu 1
//	CGO_LDFLAGS=-lopenblas OPENBLAS_NUM_THREADS=1 go test -tags openblas ./coordinator -run '^$' -bench WaveStep -cpu 1
//
// BenchmarkWaveStepRatio measures the two in turn.
func benchWaveStep(b *testing.B, mode WeightMode) {
	tr := newWaveTrainer(b, mode)
	ctx := context.Background()
	before, _ := model.Flops(tr.ev)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Step(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cpu = cpuTime() - cpu
	b.StopTimer()
	after, _ := model.Flops(tr.ev)
	b.ReportMetric(float64(after-before)/float64(b.N)/1e6, "MFLOP/op")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkWaveStepPlain(b *testing.B) { benchWaveStep(b, Fixed) }
func BenchmarkWaveStepAlg3(b *testing.B)  { benchWaveStep(b, Estimated) }

// BenchmarkWaveStepRatio steps a plain trainer and an Algorithm 3 trainer
// in turn, call by call (each first every other time), so that both see
// the same moments of a machine whose speed drifts, and reports
// alg3/plain: the "Algorithm 3 step at most 2× the plain step",
// whose matrix products are exactly 2×.
func BenchmarkWaveStepRatio(b *testing.B) {
	trs := []*Trainer{newWaveTrainer(b, Fixed), newWaveTrainer(b, Estimated)}
	ctx := context.Background()
	var sum [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range trs {
			k = (k + i) % len(trs)
			t0 := time.Now()
			if _, err := trs[k].Step(ctx); err != nil {
				b.Fatal(err)
			}
			sum[k] += time.Since(t0)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sum[1])/float64(sum[0]), "alg3/plain")
}
