package model

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
)

// Benchmarks on the paper's wave network (n = 900, p = 503,001), each
// reporting the floating-point operations of its matrix products per call
// (MFLOP/op) and, where the system tells, the CPU time per call of the whole
// process (cpu-ns/op: on one thread, the benchmark's own work even when
// other processes share the cores). scripts/bench-pytorch.sh runs them beside a PyTorch baseline
// of the same work; by hand:
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

// run times f after one warm-up call and reports the flops and the CPU
// time of one call.
func (w *waveBench) run(b *testing.B, f func()) {
	f()
	before, _ := Flops(w.ev)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		f()
	}
	cpu = cpuTime() - cpu
	b.StopTimer()
	after, _ := Flops(w.ev)
	b.ReportMetric(float64(after-before)/float64(b.N)/1e6, "MFLOP/op")
	reportCPU(b, cpu)
}

// reportCPU reports the CPU time per call, when it was measured.
func reportCPU(b *testing.B, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkWaveResidual(b *testing.B) {
	w := newWaveBench(b)
	w.run(b, func() { w.ev.Residual(w.theta, w.rh) })
}

func BenchmarkWaveForward(b *testing.B) {
	w := newWaveBench(b)
	w.run(b, func() { w.ev.Forward(w.theta, w.r) })
}

func BenchmarkWaveVJP(b *testing.B) {
	w := newWaveBench(b)
	cots := []Cotangent{{V: w.g, Dst: w.jtg}}
	w.run(b, func() { w.ev.Backward(cots) })
}

// probe is one probe at a base point whose forward pass is shared by the
// step: Jᵀg, then R(θ + Δt·Jᵀg).
func (w *waveBench) probe() func() {
	cots := []Cotangent{{V: w.g, Dst: w.jtg}}
	return func() {
		w.ev.Backward(cots)
		for k := range w.th {
			w.th[k] = w.theta[k] + 1e-4*w.jtg[k]
		}
		w.ev.Residual(w.th, w.rh)
	}
}

// gemmFloor is the floor under a probe: its matrix products between hidden
// layers alone, through the same BLAS with the same shapes and
// transpositions, cut into the same pieces on the same helpers (per
// hidden-to-hidden layer one for R, one for the weight gradient and one
// for the input cotangent: six on the wave network).
func (w *waveBench) gemmFloor() func() {
	e := w.ev.(*pinn)
	ly := e.net.layers
	big := make([]float64, e.rows*e.maxW)
	out := make([]float64, e.rows*e.maxW)
	big2 := make([]float64, e.rows*e.maxW) // in one batch, the two products write apart
	gw := make([]float64, e.maxW*e.maxW)
	for i := range big {
		big[i] = float64(i%13)/13 - 0.5
	}
	return func() {
		for l := 2; l < e.L; l++ {
			in, m := ly[l-1], ly[l]
			wl, _ := e.weights(w.theta, l)
			e.gemmCut(mmArgs{tA: blas.NoTrans, tB: blas.Trans, m: e.rows, n: m, k: in, a: big, lda: in, b: wl, ldb: in, c: out, ldc: m})
			// Backward queues a layer's weight gradient and input
			// cotangent as one batch; so does the floor.
			e.batching = true
			e.gemmCut(mmArgs{tA: blas.Trans, tB: blas.NoTrans, m: m, n: in, k: e.rows, a: big, lda: m, b: out, ldb: in, c: gw, ldc: in, sumK: true})
			e.gemmCut(mmArgs{tA: blas.NoTrans, tB: blas.NoTrans, m: e.rows, n: in, k: m, a: big, lda: m, b: wl, ldb: in, c: big2, ldc: in})
			e.batching = false
			e.runBatch()
		}
	}
}

// elementFloor is a floor under a probe's element-wise work, the part
// beside its six GEMMs: the memory traffic of its passes, each row read
// and written only where the real pass reads or writes it, with nothing
// computed but tanh on the value rows (the same kernel as the real pass,
// on the base point's pre-activations, so it sees a probe's values) and
// one product per other row. Forward (R at the predictor): the first
// hidden layer is made from the inputs, so only written (its value rows'
// pre-activations read for tanh); a middle layer read and written; the
// last hidden layer only read (the output layer is made from each row in
// cache). Backward (Jᵀg): the last hidden layer's pre-activations read and
// its cotangents written (the cotangents coming in are made per point);
// below it the cotangents and the pre-activations read and the cotangents
// written. The real passes do more arithmetic per element (tanh's
// derivatives, the operators' quadratic forms, the sums for the small
// layers) on this traffic. On more threads the rows are cut into equal
// parts run at once.
func (w *waveBench) elementFloor() func() {
	e := w.ev.(*pinn)
	m := e.maxW
	value := make([]bool, e.rows) // stream 0 of its group
	for gi := range e.groups {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			value[g.rowOf(0, i)] = true
		}
	}
	out := make([]float64, e.rows*m) // a layer's outputs, forward
	bk := make([]float64, e.rows*m)  // a layer's cotangents, backward
	one := make([]float64, m)
	for k := range one {
		one[k] = 1 - float64(k%7)/64
	}
	var scr [maxParts][]float64
	for q := range scr {
		scr[q] = make([]float64, m)
	}
	row := func(x []float64, r int) []float64 { return x[r*m : (r+1)*m] }
	pass := func(q, parts int) {
		r0, r1 := e.rows*q/parts, e.rows*(q+1)/parts
		sc := scr[q]
		for l := 1; l < e.L; l++ {
			a := e.a[l]
			for r := r0; r < r1; r++ {
				dst := row(out, r)
				if l == e.L-1 {
					dst = sc // read only
				}
				switch {
				case value[r]:
					tanhBias(dst, row(a, r), nil, false)
				case l == 1:
					scaleInto(dst, 0.5, one) // written only
				default:
					mulInto(dst, row(a, r), row(a, r))
				}
			}
		}
		for l := e.L - 1; l >= 1; l-- {
			a := e.a[l]
			for r := r0; r < r1; r++ {
				if l == e.L-1 {
					mulInto(row(bk, r), row(a, r), one)
				} else {
					mulInto(row(bk, r), row(out, r), row(a, r))
				}
			}
		}
	}
	parts := min(runtime.GOMAXPROCS(0), maxParts)
	var wg sync.WaitGroup
	return func() {
		for q := 1; q < parts; q++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pass(q, parts)
			}()
		}
		pass(0, parts)
		wg.Wait()
	}
}

func BenchmarkWaveProbe(b *testing.B) {
	w := newWaveBench(b)
	w.run(b, w.probe())
}

func BenchmarkWaveGEMMFloor(b *testing.B) {
	w := newWaveBench(b)
	w.run(b, w.gemmFloor())
}

func BenchmarkWaveElementFloor(b *testing.B) {
	w := newWaveBench(b)
	w.run(b, w.elementFloor())
}

// BenchmarkWaveProbeRatio times a probe and its two floors in turn, call
// by call, so that all three see the same moments of a machine whose speed
// drifts (on this project's shared machines, several-fold within minutes),
// and reports their ratios: probe/gemm6 (the issue's "within 5% of the
// six-GEMM floor"), elem/gemm6 and probe/floors (the probe against both
// floors added).
func BenchmarkWaveProbeRatio(b *testing.B) {
	w := newWaveBench(b)
	fs := []func(){w.probe(), w.gemmFloor(), w.elementFloor()}
	var sum [3]time.Duration
	for _, f := range fs {
		f()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range fs {
			// Each call first in turn: no side always follows another.
			k = (k + i) % len(fs)
			t0 := time.Now()
			fs[k]()
			sum[k] += time.Since(t0)
		}
	}
	b.StopTimer()
	p, g, el := float64(sum[0]), float64(sum[1]), float64(sum[2])
	b.ReportMetric(p/g, "probe/gemm6")
	b.ReportMetric(el/g, "elem/gemm6")
	b.ReportMetric(p/(g+el), "probe/floors")
}

func BenchmarkWaveJVP(b *testing.B) {
	w := newWaveBench(b)
	dir := randVec(5, len(w.theta))
	w.run(b, func() { w.ev.JVP(dir, w.rh) })
}

// The exact NTK weights need only the block traces.
func BenchmarkWaveBlockTraces(b *testing.B) {
	w := newWaveBench(b)
	diag, tr := make([]float64, len(w.r)), make([]float64, 5)
	w.run(b, func() { BlockTraces(w.ev, diag, tr) })
}

func BenchmarkWaveNTK(b *testing.B) {
	w := newWaveBench(b)
	n := len(w.r)
	K := make([]float64, n*n)
	w.run(b, func() {
		if err := w.ev.NTK(K); err != nil {
			b.Fatal(err)
		}
	})
}
