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
