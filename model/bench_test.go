package model

import (
	"testing"
)

// Benchmarks on the paper's wave network (n = 900, p = 503,001). PyTorch 1.13
// on these machines: forward R 0.062 s, one probe 0.19 s on 1 thread (0.14 s
// on 2), exact NTK through Jacobian rows 19.5 s. Run with
//
//	go test ./model -run '^$' -bench Wave -cpu 1,2            # pure Go
//	CGO_LDFLAGS=-lopenblas OPENBLAS_NUM_THREADS=1 go test -tags openblas ./model -run '^$' -bench Wave -cpu 1
type waveBench struct {
	ev    Evaluator
	theta []float64
	r, g  []float64
	jtg   []float64
	th    []float64
	rh    []float64
}

func newWaveBench(b *testing.B) *waveBench {
	s := mustSetup(b, "wave", nil)
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
	return w
}

func BenchmarkWaveResidual(b *testing.B) {
	w := newWaveBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.ev.Residual(w.theta, w.rh)
	}
}

func BenchmarkWaveForward(b *testing.B) {
	w := newWaveBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.ev.Forward(w.theta, w.r)
	}
}

func BenchmarkWaveVJP(b *testing.B) {
	w := newWaveBench(b)
	cots := []Cotangent{{V: w.g, Dst: w.jtg}}
	w.ev.Backward(cots)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.ev.Backward(cots)
	}
}

// One probe at a base point whose forward pass is shared by the step: Jᵀg,
// then R(θ + Δt·Jᵀg).
func BenchmarkWaveProbe(b *testing.B) {
	w := newWaveBench(b)
	cots := []Cotangent{{V: w.g, Dst: w.jtg}}
	probe := func() {
		w.ev.Backward(cots)
		for k := range w.th {
			w.th[k] = w.theta[k] + 1e-4*w.jtg[k]
		}
		w.ev.Residual(w.th, w.rh)
	}
	probe()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		probe()
	}
}

func BenchmarkWaveJVP(b *testing.B) {
	w := newWaveBench(b)
	dir := randVec(5, len(w.theta))
	w.ev.JVP(dir, w.rh)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.ev.JVP(dir, w.rh)
	}
}

// The exact NTK weights need only the block traces.
func BenchmarkWaveBlockTraces(b *testing.B) {
	w := newWaveBench(b)
	diag, tr := make([]float64, len(w.r)), make([]float64, 5)
	BlockTraces(w.ev, diag, tr)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		BlockTraces(w.ev, diag, tr)
	}
}

func BenchmarkWaveNTK(b *testing.B) {
	w := newWaveBench(b)
	n := len(w.r)
	K := make([]float64, n*n)
	if err := w.ev.NTK(K); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.ev.NTK(K); err != nil {
			b.Fatal(err)
		}
	}
}
