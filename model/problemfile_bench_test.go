package model

import (
	"sort"
	"testing"
	"time"
)

// BenchmarkWaveFileProbeRatio runs a probe (Jᵀg, then R at θ + Δt Jᵀg) of
// the built-in wave problem and of problems/wave.toml in turn, call by call
// (each first every other time), so that both see the same moments of a
// machine whose speed drifts, and reports file/builtin, the median over
// the pairs of calls of their ratio (and the ratio of the sums): the issue's "the
// file wave runs the probe within 5% of the built-in". The per-point work
// of the file's compiled residual is its only difference.
//
//	go test ./model -run '^$' -bench WaveFileProbeRatio -cpu 1 -benchtime 40x
func BenchmarkWaveFileProbeRatio(b *testing.B) {
	var probes []func()
	for _, problem := range []string{"wave", "../problems/wave.toml"} {
		cfg, err := DefaultConfig(problem)
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewSetup(cfg)
		if err != nil {
			b.Fatal(err)
		}
		c, err := s.DrawPoints(1, 0, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := s.NewEvaluator(c, Options{})
		if err != nil {
			b.Fatal(err)
		}
		w := &waveBench{ev: ev, theta: s.InitTheta(1)}
		n, p := ev.Layout().N, ev.Layout().P
		w.r, w.g, w.rh = make([]float64, n), randVec(3, n), make([]float64, n)
		w.jtg, w.th = make([]float64, p), make([]float64, p)
		ev.Forward(w.theta, w.r)
		probes = append(probes, w.probe())
	}
	for _, f := range probes {
		f()
	}
	ratios := make([]float64, 0, b.N)
	var sum [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d [2]time.Duration
		for k := range probes {
			k = (k + i) % len(probes)
			t0 := time.Now()
			probes[k]()
			d[k] = time.Since(t0)
		}
		sum[0], sum[1] = sum[0]+d[0], sum[1]+d[1]
		ratios = append(ratios, float64(d[1])/float64(d[0]))
	}
	b.StopTimer()
	b.ReportMetric(MedianRatio(ratios), "file/builtin")
	b.ReportMetric(float64(sum[1])/float64(sum[0]), "sum-file/builtin")
}

// MedianRatio is the median of the ratios of calls taken in pairs: a
// burst of load on a shared machine slows one pair, not the median.
func MedianRatio(r []float64) float64 {
	s := append([]float64(nil), r...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkWaveFileOutputs times what a problem file changes in a pass:
// F and ∂F/∂u at every point of the wave's five blocks (the compiled
// closures against the built-in's Go functions), in ns per point.
func BenchmarkWaveFileOutputs(b *testing.B) {
	for _, problem := range []string{"wave", "../problems/wave.toml"} {
		cfg, err := DefaultConfig(problem)
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewSetup(cfg)
		if err != nil {
			b.Fatal(err)
		}
		c, err := s.DrawPoints(1, 0, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		name := "builtin"
		if problem != "wave" {
			name = "file"
		}
		b.Run(name, func(b *testing.B) {
			p := s.Problem
			points := 0
			type blk struct {
				def     *BlockDef
				x, u, r []float64
				jac     []float64
			}
			var bs []blk
			for i := range p.Blocks {
				def := &p.Blocks[i]
				cols := def.Streams.Count() * p.Outputs
				bs = append(bs, blk{def, c.Blocks[i].X, randVec(uint64(i), cols), make([]float64, def.Components), make([]float64, def.Components*cols)})
				points += c.Blocks[i].Count()
			}
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				for _, k := range bs {
					for j := 0; j < len(k.x); j += p.Dim {
						x := k.x[j : j+p.Dim]
						k.def.F(x, k.u, k.r)
						k.def.DF(x, k.u, k.jac)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(points), "ns/point")
		})
	}
}
