package coordinator

import (
	"context"
	"sort"
	"testing"
	"time"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
)

// BenchmarkWaveFileStepRatio takes a plain training step (fixed weights,
// Adam) of the built-in wave problem and of problems/wave.toml in turn,
// call by call (each first every other time), and reports file/builtin,
// the median over the pairs of steps of their ratio (and the ratio of the
// sums):
// the issue's "the file wave runs the plain step within 5% of the
// built-in".
//
//	go test ./coordinator -run '^$' -bench WaveFileStepRatio -cpu 1 -benchtime 40x
func BenchmarkWaveFileStepRatio(b *testing.B) {
	var trs []*Trainer
	for _, problem := range []string{"wave", "../problems/wave.toml"} {
		cfg, err := model.DefaultConfig(problem)
		if err != nil {
			b.Fatal(err)
		}
		s, err := model.NewSetup(cfg)
		if err != nil {
			b.Fatal(err)
		}
		tc := TrainConfig{
			Steps: 1 << 30, Mode: Fixed, Probe: sampler.Settings{Seed: 1}, Optimizer: "adam",
			Schedule: optim.Schedule{LR: 1e-3}, PointSeed: 1, Fused: true,
		}
		tr, err := NewTrainer(s, s.InitTheta(1), tc, nil, model.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if _, err := tr.Step(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		trs = append(trs, tr)
	}
	ctx := context.Background()
	var sum [2]time.Duration
	ratios := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d [2]time.Duration
		for k := range trs {
			k = (k + i) % len(trs)
			t0 := time.Now()
			if _, err := trs[k].Step(ctx); err != nil {
				b.Fatal(err)
			}
			d[k] = time.Since(t0)
		}
		sum[0], sum[1] = sum[0]+d[0], sum[1]+d[1]
		ratios = append(ratios, float64(d[1])/float64(d[0]))
	}
	b.StopTimer()
	sort.Float64s(ratios)
	med := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		med = (ratios[len(ratios)/2-1] + med) / 2
	}
	b.ReportMetric(med, "file/builtin")
	b.ReportMetric(float64(sum[1])/float64(sum[0]), "sum-file/builtin")
}
