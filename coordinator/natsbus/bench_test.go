package natsbus

import (
	"context"
	"testing"
	"time"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
)

// Probe throughput on the quadratic problem, whose probes cost microseconds,
// so the bus is all there is: in process (4 goroutines) against 4 samplers
// on an embedded NATS server. Target: NATS ≥ 50% of in process.
//
//	go test ./coordinator/natsbus -run '^$' -bench Throughput -benchtime 5x
func benchThroughput(b *testing.B, viaNATS bool) {
	setup, _ := model.NewSetup(model.Config{Problem: "quadratic"})
	pts, _ := setup.DrawPoints(1, 0, nil, nil)
	s := sampler.Settings{Seed: 1}
	local, err := coordinator.NewLocal(setup, pts, s, 4, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	plan := local.Plan()
	theta := setup.InitTheta(1)
	ev, _ := setup.NewEvaluator(pts, model.Options{})
	r0 := make([]float64, ev.Layout().N)
	ev.Residual(theta, r0)
	var backend coordinator.Backend = local
	if viaNATS {
		c := newCluster(b)
		c.samplers(4)
		backend, err = New(c.connect("coordinator"), Options{Run: "bench", Setup: setup, Probe: s, Width: plan.Width(), Batch: 1000})
		if err != nil {
			b.Fatal(err)
		}
	}
	const N = 100000
	acc := coordinator.NewAccumulator(plan, 0, r0, false)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		w := &coordinator.Work{ID: uint64(i + 1), PointsID: 1, Step: uint32(i), Theta: theta, Points: pts}
		acc.Reset(uint32(i), r0)
		if err := backend.Probes(context.Background(), w, 0, N, acc.Add); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(N*b.N)/time.Since(start).Seconds(), "probes/s")
}

func BenchmarkThroughputLocal(b *testing.B) { benchThroughput(b, false) }
func BenchmarkThroughputNATS(b *testing.B)  { benchThroughput(b, true) }

// The coordinator's own time (encoding and publishing the 4 MB snapshot,
// serving its chunks, decoding and accumulating results) as a share of the
// samplers' compute, for Algorithm 3 steps on the paper's wave network with
// 16 sampler replicas and 16 probes per step. Target ≤ 5%.
//
//	go test ./coordinator/natsbus -run '^$' -bench WaveOverhead -benchtime 3x
func BenchmarkWaveOverhead(b *testing.B) {
	setup, _ := model.NewSetup(model.Config{Problem: "wave"})
	s := sampler.Settings{Seed: 1}
	c := newCluster(b)
	c.samplers(16)
	pts, _ := setup.DrawPoints(1, 0, nil, nil)
	width := s.Width(setup.Problem, pts.Counts())
	be, err := New(c.connect("coordinator"), Options{Run: "overhead", Setup: setup, Probe: s, Width: width, Batch: 1})
	if err != nil {
		b.Fatal(err)
	}
	cfg := coordinator.TrainConfig{
		Steps: 1 << 20, Mode: coordinator.Estimated, Alpha: 1e-3, InitProbes: 16, StepProbes: 16,
		Probe: s, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3}, Resample: true, PointSeed: 1,
	}
	tr, err := coordinator.NewTrainer(setup, setup.InitTheta(1), cfg, be, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Step(context.Background()); err != nil { // warm-up: every sampler builds its evaluator
		b.Fatal(err)
	}
	before := be.Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	after := be.Stats()
	coord := after.CoordinatorSeconds - before.CoordinatorSeconds
	comp := after.SamplerSeconds - before.SamplerSeconds
	b.ReportMetric(100*coord/comp, "%coordinator")
	b.ReportMetric(coord/float64(b.N), "coord-s/step")
	b.ReportMetric(comp/float64(b.N), "sampler-s/step")
}
