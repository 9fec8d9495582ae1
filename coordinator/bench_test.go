package coordinator

import (
	"context"
	"testing"

	"ntkbus/model"
	"ntkbus/sampler"
)

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
func benchWaveStep(b *testing.B, mode WeightMode) {
	s, err := model.NewSetup(model.Config{Problem: "wave"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := TrainConfig{
		Steps: 1 << 30, Mode: mode, Alpha: 1e-3, InitProbes: 2, StepProbes: 1,
		Probe: sampler.Settings{Seed: 1}, Optimizer: "adam", Schedule: Schedule{LR: 1e-3},
		PointSeed: 1, Fused: true,
	}
	tr, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ { // warm-up: the initial probes, then one ordinary step
		if _, err := tr.Step(ctx); err != nil {
			b.Fatal(err)
		}
	}
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
