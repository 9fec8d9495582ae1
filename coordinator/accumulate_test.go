package coordinator

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"ntkbus/model"
	"ntkbus/sampler"
)

type fixture struct {
	setup  *model.Setup
	points *model.Collocation
	ev     model.Evaluator
	theta  []float64
	r0     []float64
	K      []float64
	n      int
}

func newFixture(t testing.TB, name string, layers []int, counts []int) *fixture {
	t.Helper()
	cfg, err := model.DefaultConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	if layers != nil {
		cfg.Layers = layers
	}
	s, err := model.NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.DrawPoints(2, 0, counts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.NewEvaluator(c, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{setup: s, points: c, ev: ev, theta: s.InitTheta(2), n: ev.Layout().N}
	f.r0 = make([]float64, f.n)
	ev.Forward(f.theta, f.r0)
	f.K = make([]float64, f.n*f.n)
	if err := ev.NTK(f.K); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) work(step uint32) *Work {
	return &Work{ID: 1, PointsID: 1, Step: step, Theta: f.theta, Points: f.points}
}

func (f *fixture) local(t testing.TB, s sampler.Settings, workers int) *Local {
	t.Helper()
	l, err := NewLocal(f.setup, f.points, s, workers, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// estimate draws probes [0, N) of step into a fresh accumulator.
// probeResult is probe j's result d.
type probeResult struct {
	j int
	d []float64
}

// shuffled computes probes [0, N) of step on l and returns their results
// in an order shuffled by seed.
func (f *fixture) shuffled(l *Local, step uint32, N int, seed uint64) []probeResult {
	var all []probeResult
	l.Probes(context.Background(), f.work(step), 0, N, func(j int, d []float64) error {
		all = append(all, probeResult{j, append([]float64(nil), d...)})
		return nil
	})
	rand.New(rand.NewPCG(seed, seed+1)).Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
	return all
}

func (f *fixture) estimate(t testing.TB, l *Local, step uint32, N int, full bool) *Accumulator {
	t.Helper()
	acc := NewAccumulator(l.Plan(), step, f.r0, full)
	err := l.Probes(context.Background(), f.work(step), 0, N, func(j int, d []float64) error { return acc.Add(j, d) })
	if err != nil {
		t.Fatal(err)
	}
	if acc.Applied() != N {
		t.Fatalf("applied %d of %d probes", acc.Applied(), N)
	}
	return acc
}

func frob2(K []float64) float64 {
	var s float64
	for _, v := range K {
		s += v * v
	}
	return s
}

func trace(K []float64, n int) float64 {
	var s float64
	for i := 0; i < n; i++ {
		s += K[i*n+i]
	}
	return s
}

// The mean of N Gaussian probes with the exact quotient converges to K and
// Tr K at the Monte Carlo rate, with the exact second moments of Gaussian
// probes: E(T̂_N − Tr K)² = 2‖K‖²_F/N (Hutchinson) and
// E‖K̂_N − K‖²_F = ((n+2)‖K‖²_F + (Tr K)²)/(2N), which lies below Theorem 4's
// 2n(n+2)‖K‖²_F/N. Over M independent estimates the mean squared errors must
// match those values within 5 standard errors of their own spread.
func TestEstimatorConvergesAtTheHutchinsonRate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []int
		kind   sampler.Kind
	}{
		{"quadratic", nil, sampler.Gaussian},
		{"poisson1d", []int{1, 30, 1}, sampler.Gaussian},
		{"quadratic", nil, sampler.Rademacher},
	} {
		t.Run(tc.name+"/"+tc.kind.String(), func(t *testing.T) {
			f := newFixture(t, tc.name, tc.layers, nil)
			n := f.n
			K2, TrK := frob2(f.K), trace(f.K, n)
			var diag2 float64
			for i := 0; i < n; i++ {
				diag2 += f.K[i*n+i] * f.K[i*n+i]
			}
			const N, M = 50, 400
			wantTr := 2 * K2 / N
			wantK := ((float64(n)+2)*K2 + TrK*TrK) / (2 * N)
			if tc.kind == sampler.Rademacher {
				// Rademacher: E(gᵀKg − Tr K)² = 2(‖K‖² − Σ K_ii²).
				wantTr = 2 * (K2 - diag2) / N
			}
			l := f.local(t, sampler.Settings{Seed: 11, Kind: tc.kind, Quotient: sampler.Exact}, 2)
			Khat := make([]float64, n*n)
			trErr, kErr := make([]float64, M), make([]float64, M)
			for m := 0; m < M; m++ {
				acc := f.estimate(t, l, uint32(m), N, true)
				e := acc.Estimate()
				trErr[m] = (e.Trace - TrK) * (e.Trace - TrK)
				if err := acc.Kernel(Khat, false); err != nil {
					t.Fatal(err)
				}
				var s float64
				for i := range Khat {
					s += (Khat[i] - f.K[i]) * (Khat[i] - f.K[i])
				}
				kErr[m] = s
			}
			check := func(what string, errs []float64, want float64) {
				mean, sd := meanSD(errs)
				if math.Abs(mean-want) > 5*sd/math.Sqrt(M) {
					t.Errorf("%s: mean squared error %.4g over %d estimates, theory %.4g (5 SE = %.2g)", what, mean, M, want, 5*sd/math.Sqrt(M))
				}
			}
			check("trace", trErr, wantTr)
			if tc.kind == sampler.Gaussian {
				check("kernel", kErr, wantK)
				if bound := 2 * float64(n*(n+2)) * K2 / N; wantK > bound {
					t.Errorf("exact MSE %v above Theorem 4's bound %v", wantK, bound)
				}
			}
		})
	}
}

func meanSD(x []float64) (mean, sd float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		sd += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(sd / float64(len(x)-1))
}

// Same seed: 1 worker, 4 workers, and results added in a shuffled order
// give the same K̂ and traces, to the bit.
func TestEstimateIsBitIdenticalAcrossWorkersAndOrder(t *testing.T) {
	f := newFixture(t, "wave", []int{2, 16, 16, 1}, []int{12, 12, 4, 4, 4})
	for _, kind := range []sampler.Kind{sampler.Gaussian, sampler.Block, sampler.Param} {
		s := sampler.Settings{Seed: 21, Kind: kind}
		const N = 60
		one := f.estimate(t, f.local(t, s, 1), 3, N, true)
		four := f.estimate(t, f.local(t, s, 4), 3, N, true)
		// Shuffled: collect, then add in a random order.
		l := f.local(t, s, 3)
		all := f.shuffled(l, 3, N, 1)
		shuf := NewAccumulator(l.Plan(), 3, f.r0, true)
		for _, r := range all {
			if err := shuf.Add(r.j, r.d); err != nil {
				t.Fatal(err)
			}
		}
		ref := one.Estimate()
		for name, acc := range map[string]*Accumulator{"4 workers": four, "shuffled": shuf} {
			e := acc.Estimate()
			if math.Float64bits(e.Trace) != math.Float64bits(ref.Trace) {
				t.Errorf("%v, %s: trace %v vs %v", kind, name, e.Trace, ref.Trace)
			}
			for b := range e.BlockTraces {
				if math.Float64bits(e.BlockTraces[b]) != math.Float64bits(ref.BlockTraces[b]) || math.Float64bits(e.Cov[b]) != math.Float64bits(ref.Cov[b]) {
					t.Errorf("%v, %s: block %d differs", kind, name, b)
				}
			}
			if kind == sampler.Param {
				continue
			}
			a, b := make([]float64, f.n*f.n), make([]float64, f.n*f.n)
			one.Kernel(a, false)
			acc.Kernel(b, false)
			for i := range a {
				if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
					t.Fatalf("%v, %s: K̂ differs at %d", kind, name, i)
				}
			}
		}
	}
}

// Duplicates, wrong lengths and non-finite values are refused and leave the
// estimate as it was.
func TestAccumulatorRefusesBadResults(t *testing.T) {
	f := newFixture(t, "quadratic", nil, nil)
	l := f.local(t, sampler.Settings{Seed: 1}, 1)
	ref := f.estimate(t, l, 0, 10, true).Estimate()
	acc := NewAccumulator(l.Plan(), 0, f.r0, true)
	var bad int
	err := l.Probes(context.Background(), f.work(0), 0, 10, func(j int, d []float64) error {
		if err := acc.Add(j, d); err != nil {
			t.Fatal(err)
		}
		// Replays and corrupt copies of the same result.
		if !errors.Is(acc.Add(j, d), ErrDuplicate) {
			t.Errorf("replay of probe %d accepted", j)
		}
		nan := append([]float64(nil), d...)
		nan[0] = math.NaN()
		for _, x := range [][]float64{nan, d[:len(d)-1]} {
			if acc.Add(j+100, x) == nil {
				t.Errorf("bad result for probe %d accepted", j)
			}
			bad++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := acc.Estimate(); e.Trace != ref.Trace || acc.Pending() != 0 {
		t.Errorf("estimate changed by refused results: %v vs %v (pending %d)", e.Trace, ref.Trace, acc.Pending())
	}
}

// The delta-method standard errors of the weights match the spread of λ̂
// over independent estimates (poisson1d: three blocks).
func TestWeightStandardErrorsMatchSpread(t *testing.T) {
	f := newFixture(t, "poisson1d", []int{1, 30, 1}, []int{6, 1, 1})
	for _, kind := range []sampler.Kind{sampler.Gaussian, sampler.Block} {
		l := f.local(t, sampler.Settings{Seed: 5, Kind: kind, Quotient: sampler.Exact}, 2)
		const N, M = 300, 300
		B := 3
		lam := make([][]float64, B)
		var seSum [3]float64
		for m := 0; m < M; m++ {
			e := f.estimate(t, l, uint32(m), N, false).Estimate()
			w, se := e.Weights()
			for b := 0; b < B; b++ {
				lam[b] = append(lam[b], w[b])
				seSum[b] += se[b] / M
			}
		}
		for b := 0; b < B; b++ {
			_, sd := meanSD(lam[b])
			// The spread's own relative standard error is about 1/√(2M) ≈ 4%.
			if r := seSum[b] / sd; r < 0.85 || r > 1.15 {
				t.Errorf("%v block %d: mean delta-method SE %.4g, spread of λ̂ %.4g (ratio %.2f)", kind, b, seSum[b], sd, r)
			}
		}
	}
}

// Block probes estimate each block's trace and, averaged per block, K.
func TestBlockProbesConverge(t *testing.T) {
	f := newFixture(t, "poisson1d", []int{1, 30, 1}, []int{5, 1, 1})
	l := f.local(t, sampler.Settings{Seed: 8, Kind: sampler.Block, Quotient: sampler.Exact}, 2)
	acc := f.estimate(t, l, 0, 30000, true)
	e := acc.Estimate()
	lay := f.ev.Layout()
	for b, sp := range lay.Blocks {
		var tr float64
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			tr += f.K[i*f.n+i]
		}
		if math.Abs(e.BlockTraces[b]-tr) > 5*e.BlockSE(b) {
			t.Errorf("block %s: %v ± %v, exact %v", sp.Name, e.BlockTraces[b], e.BlockSE(b), tr)
		}
	}
	Khat := make([]float64, f.n*f.n)
	acc.Kernel(Khat, false)
	var num float64
	for i := range Khat {
		num += (Khat[i] - f.K[i]) * (Khat[i] - f.K[i])
	}
	if rel := math.Sqrt(num / frob2(f.K)); rel > 0.05 {
		t.Errorf("K̂ from 30000 block probes is off by %.3f relative", rel)
	}
	// Clipping never moves an entry away from a non-negative exact value.
	clipped := make([]float64, f.n*f.n)
	acc.Kernel(clipped, true)
	for i := range clipped {
		if clipped[i] < 0 {
			t.Fatalf("clipped entry %d = %v", i, clipped[i])
		}
		if f.K[i] >= 0 && math.Abs(clipped[i]-f.K[i]) > math.Abs(Khat[i]-f.K[i]) {
			t.Fatalf("clipping increased the error of entry %d", i)
		}
	}
}

func TestEstimateStopsOnRelativeError(t *testing.T) {
	f := newFixture(t, "poisson1d", []int{1, 30, 1}, nil)
	l := f.local(t, sampler.Settings{Seed: 2, Quotient: sampler.Exact}, 2)
	res, err := EstimateAt(context.Background(), l, l.Plan(), f.work(0), f.r0, EstimateOptions{Probes: 100000, Batch: 50, RelError: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || res.Estimate.Probes >= 100000 {
		t.Fatalf("did not stop early: %d probes", res.Estimate.Probes)
	}
	if r := res.Estimate.MaxRelativeError(); r >= 0.05 {
		t.Errorf("stopped at relative error %v", r)
	}
	again, _ := EstimateAt(context.Background(), f.local(t, sampler.Settings{Seed: 2, Quotient: sampler.Exact}, 1), l.Plan(), f.work(0), f.r0, EstimateOptions{Probes: 100000, Batch: 50, RelError: 0.05})
	if again.Estimate.Probes != res.Estimate.Probes || again.Estimate.Trace != res.Estimate.Trace {
		t.Errorf("stopping point depends on the workers: %d vs %d probes", again.Estimate.Probes, res.Estimate.Probes)
	}
}

func TestMovingAverageByHand(t *testing.T) {
	e0 := Estimate{Probes: 4, BlockTraces: []float64{2, 4}, Cov: []float64{1, 0, 0, 2}, PerProbeCov: []float64{4, 0, 0, 8}}
	m, err := NewMovingAverage(0.5, e0, []float64{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	e1 := Estimate{Probes: 1, BlockTraces: []float64{4, 8}}
	m.Update(e1, []float64{3, 2, 1, 0}, nil)
	// T = ½·(2,4) + ½·(4,8) = (3,6); S = ½S + ½·1·dx dxᵀ with dx = (2,4):
	// S = (½·4+½·4, ½·0+½·8, ., ½·8+½·16) = (4, 4, 4, 12);
	// V = ¼V + ¼S/1 = (¼+1, 1, 1, ½+3).
	want := map[string][]float64{
		"T": {3, 6}, "S": {4, 4, 4, 12}, "V": {1.25, 1, 1, 3.5}, "K": {2, 2, 2, 2},
	}
	got := map[string][]float64{"T": m.T, "S": m.S, "V": m.V, "K": m.Kernel}
	for k, w := range want {
		for i := range w {
			if math.Abs(got[k][i]-w[i]) > 1e-15 {
				t.Errorf("%s = %v, want %v", k, got[k], w)
				break
			}
		}
	}
	lam, _ := m.Weights()
	if lam[0] != 3 || lam[1] != 1.5 {
		t.Errorf("weights %v, want Tr/Tr_b = [3 1.5]", lam)
	}
	if _, err := NewMovingAverage(0, e0, nil); err == nil {
		t.Error("α = 0 accepted")
	}
}

func TestSpacedRuleByHand(t *testing.T) {
	s, err := NewSpacedRule(10, 0.5) // h(t) = 10·√(1+t)
	if err != nil {
		t.Fatal(err)
	}
	cur := []float64{1, 2}
	// t=0: λmax((2,2)−(1,2)) = 1, ‖R‖² = 4: S + 4 = 4 ≤ h(0) = 10: accept.
	if !s.Decide(0, cur, []float64{2, 2}, 4) || s.S != 4 {
		t.Fatalf("step 0: S = %v", s.S)
	}
	// t=1: increment 3·3 = 9; 4 + 9 = 13 ≤ h(1) = 14.14: accept.
	if !s.Decide(1, []float64{2, 2}, []float64{5, 1}, 3) || s.S != 13 {
		t.Fatalf("step 1: S = %v", s.S)
	}
	// t=2: increment 1·5 = 5; 13 + 5 = 18 > h(2) = 17.32: reject, S unchanged.
	if s.Decide(2, []float64{5, 1}, []float64{6, 1}, 5) || s.S != 13 {
		t.Fatalf("step 2 should be rejected, S = %v", s.S)
	}
	// A decrease is always affordable: λmax = −1 lowers S.
	if !s.Decide(3, []float64{5, 1}, []float64{4, 0}, 2) || s.S != 11 {
		t.Fatalf("step 3: S = %v", s.S)
	}
	if s.Accepted != 3 || s.Rejected != 1 {
		t.Errorf("accepted %d, rejected %d", s.Accepted, s.Rejected)
	}
	if _, err := NewSpacedRule(1, 1); err == nil {
		t.Error("γ = 1 (h not o(t)) accepted")
	}
}
