package sampler

import (
	"math"
	"testing"

	"ntkbus/model"
)

type fixture struct {
	setup *model.Setup
	ev    model.Evaluator
	theta []float64
	K     []float64
	n     int
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
	f := &fixture{setup: s, ev: ev, theta: s.InitTheta(2), n: ev.Layout().N}
	r := make([]float64, f.n)
	ev.Forward(f.theta, r)
	f.K = make([]float64, f.n*f.n)
	if err := ev.NTK(f.K); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) prober(t testing.TB, s Settings) *Prober {
	t.Helper()
	plan, err := NewPlan(s, f.ev.Layout())
	if err != nil {
		t.Fatal(err)
	}
	p := NewProber(f.ev, plan)
	p.SetBase(f.theta, 0)
	return p
}

// Kc returns K c.
func (f *fixture) Kc(c []float64) []float64 {
	out := make([]float64, f.n)
	for i := 0; i < f.n; i++ {
		for j := 0; j < f.n; j++ {
			out[i] += f.K[i*f.n+j] * c[j]
		}
	}
	return out
}

func relDiff(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

// The exact quotient is K c to rounding: no Δt bias.
func TestExactQuotientIsKc(t *testing.T) {
	for _, f := range []*fixture{
		newFixture(t, "quadratic", nil, nil),
		newFixture(t, "poisson1d", nil, nil),
		newFixture(t, "wave", []int{2, 16, 16, 1}, []int{10, 10, 5, 5, 5}),
		newFixture(t, "qtensor", []int{3, 8, 8, 2}, []int{6, 6, 2, 2, 2, 2}),
	} {
		p := f.prober(t, Settings{Seed: 1, Quotient: Exact})
		d := make([]float64, f.n)
		for j := uint32(0); j < 5; j++ {
			p.Probe(j, d)
			g := make([]float64, f.n)
			p.Plan().Vector(0, j, g)
			if e := relDiff(d, f.Kc(g)); e > 1e-12 {
				t.Errorf("%s probe %d: exact quotient differs from K g by %.1e", f.setup.Problem.Name, j, e)
			}
		}
	}
}

// The forward difference's error is O(Δt) and the central one's O(Δt²):
// shrinking Δt tenfold shrinks them about 10× and 100×, until rounding.
func TestQuotientBiasShrinksWithDt(t *testing.T) {
	f := newFixture(t, "poisson1d", nil, nil)
	g := make([]float64, f.n)
	d := make([]float64, f.n)
	errAt := func(q Quotient, dt float64) float64 {
		p := f.prober(t, Settings{Seed: 3, Quotient: q, Dt: dt})
		p.Probe(0, d)
		p.Plan().Vector(0, 0, g)
		return relDiff(d, f.Kc(g))
	}
	for _, tc := range []struct {
		q         Quotient
		dt1, dt2  float64
		lo, hi    float64
		autoBelow float64
	}{
		{Forward, 1e-4, 1e-5, 7, 13, 1e-6},
		{Central, 1e-3, 1e-4, 70, 130, 1e-8},
	} {
		e1, e2 := errAt(tc.q, tc.dt1), errAt(tc.q, tc.dt2)
		if r := e1 / e2; r < tc.lo || r > tc.hi {
			t.Errorf("%v: error %.2e at Δt=%g, %.2e at Δt=%g: ratio %.1f, want %g..%g", tc.q, e1, tc.dt1, e2, tc.dt2, r, tc.lo, tc.hi)
		}
		if e := errAt(tc.q, 0); e > tc.autoBelow {
			t.Errorf("%v with automatic Δt: relative error %.1e, want below %g", tc.q, e, tc.autoBelow)
		}
	}
}

// Same key, same bits: a probe does not depend on what was computed before
// it, and the fused probe-and-gradient pass gives the probes of Probe.
func TestProbesAreDeterministic(t *testing.T) {
	f := newFixture(t, "wave", []int{2, 12, 12, 1}, []int{8, 8, 4, 4, 4})
	for _, q := range []Quotient{Forward, Central, Exact} {
		p := f.prober(t, Settings{Seed: 9, Quotient: q})
		a, b := make([]float64, f.n), make([]float64, f.n)
		p.Probe(5, a)
		p.Probe(2, b)
		p.Probe(5, b)
		for i := range a {
			if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
				t.Fatalf("%v: probe 5 changed after probe 2 at %d", q, i)
			}
		}
		lay := f.ev.Layout()
		per := make([][]float64, len(lay.Blocks))
		for k := range per {
			per[k] = make([]float64, lay.P)
		}
		ds := [][]float64{make([]float64, f.n), make([]float64, f.n)}
		p.ProbesWithGradient([]uint32{2, 5}, ds, per)
		for i := range a {
			if math.Float64bits(a[i]) != math.Float64bits(ds[1][i]) {
				t.Fatalf("%v: fused probe 5 differs at %d: %v vs %v", q, i, ds[1][i], a[i])
			}
		}
	}
}

// Rows with R_i = 0 drop out of the predictor and the probe: Λ_pred uses the
// pseudo-inverse of diag(R), never a division by zero.
func TestZeroResidualRowsDropOut(t *testing.T) {
	s, _ := model.NewSetup(model.Config{Problem: "quadratic"})
	c, _ := s.DrawPoints(1, 0, nil, nil)
	theta := []float64{1, 0.5, 2}
	// Make R_3 exactly zero: its target is the model's value there.
	u := make([]float64, 1)
	s.Predict(theta, c.Blocks[0].X[3:4], u)
	c.Blocks[0].Y[3] = u[0]
	ev, _ := s.NewEvaluator(c, model.Options{})
	plan, _ := NewPlan(Settings{Seed: 1, Quotient: Exact}, ev.Layout())
	p := NewProber(ev, plan)
	r := p.SetBase(theta, 0)
	if r[3] != 0 {
		t.Fatalf("R_3 = %v, want exactly 0", r[3])
	}
	n := ev.Layout().N
	d := make([]float64, n)
	info := p.Probe(0, d)
	if info.Masked != 1 {
		t.Errorf("Masked = %d, want 1", info.Masked)
	}
	g, cv := make([]float64, n), make([]float64, n)
	plan.Vector(0, 0, g)
	Cotangent(g, r, cv)
	if cv[3] != 0 || cv[2] != g[2] {
		t.Fatalf("cotangent: c_3 = %v (want 0), c_2 = %v (want g_2 = %v)", cv[3], cv[2], g[2])
	}
	K := make([]float64, n*n)
	ev.NTK(K)
	for i := 0; i < n; i++ {
		var want float64
		for j := 0; j < n; j++ {
			want += K[i*n+j] * cv[j]
		}
		if math.Abs(d[i]-want) > 1e-12*(1+math.Abs(want)) {
			t.Fatalf("d_%d = %v, want (K c)_%d = %v", i, d[i], i, want)
		}
	}
}

func TestProbeVectors(t *testing.T) {
	f := newFixture(t, "wave", []int{2, 4, 1}, []int{6, 6, 2, 2, 2})
	lay := f.ev.Layout()
	g := make([]float64, f.n)
	rad, _ := NewPlan(Settings{Seed: 1, Kind: Rademacher}, lay)
	rad.Vector(3, 4, g)
	for i, v := range g {
		if v != 1 && v != -1 {
			t.Fatalf("Rademacher entry %d = %v", i, v)
		}
	}
	blk, _ := NewPlan(Settings{Seed: 1, Kind: Block}, lay)
	for j := uint32(0); j < 10; j++ {
		blk.Vector(0, j, g)
		b := blk.BlockOf(j)
		if b != int(j)%5 {
			t.Errorf("equal allocation: probe %d on block %d, want %d", j, b, j%5)
		}
		sp := lay.Blocks[b]
		for i, v := range g {
			inside := i >= sp.Off && i < sp.Off+sp.Len
			if inside == (v == 0) {
				t.Fatalf("block probe %d (block %s): entry %d = %v", j, sp.Name, i, v)
			}
		}
	}
	// By size: counts 6,6,2,2,2 → a period of 9 probes with 3,3,1,1,1 per block.
	bySize, _ := NewPlan(Settings{Seed: 1, Kind: Block, Allocation: BySize}, lay)
	per := make([]int, 5)
	for j := uint32(0); j < 9; j++ {
		per[bySize.BlockOf(j)]++
	}
	if per[0] != 3 || per[1] != 3 || per[2] != 1 || per[3] != 1 || per[4] != 1 {
		t.Errorf("allocation by size over one period: %v, want [3 3 1 1 1]", per)
	}
	if _, err := NewPlan(Settings{Dt: -1}, lay); err == nil {
		t.Error("a negative Δt was accepted")
	}
}

// Theorem 5's parameter-space probes estimate the block traces: with the
// exact quotient, d_b = ‖(J z)_b‖² has mean Tr K_bb and variance 2‖K_bb‖²_F
// (z ~ N(0, I_p) makes (J z)_b Gaussian with covariance K_bb).
func TestParamProbesEstimateBlockTraces(t *testing.T) {
	f := newFixture(t, "poisson1d", []int{1, 20, 1}, nil)
	lay := f.ev.Layout()
	B := len(lay.Blocks)
	for _, q := range []Quotient{Exact, Central} {
		p := f.prober(t, Settings{Seed: 4, Kind: Param, Quotient: q})
		const N = 4000
		d := make([]float64, B)
		mean := make([]float64, B)
		for j := uint32(0); j < N; j++ {
			p.Probe(j, d)
			for b := range d {
				mean[b] += d[b] / N
			}
		}
		for b, sp := range lay.Blocks {
			var tr, fro float64
			for i := sp.Off; i < sp.Off+sp.Len; i++ {
				tr += f.K[i*f.n+i]
				for j := sp.Off; j < sp.Off+sp.Len; j++ {
					fro += f.K[i*f.n+j] * f.K[i*f.n+j]
				}
			}
			se := math.Sqrt(2 * fro / N)
			if math.Abs(mean[b]-tr) > 5*se {
				t.Errorf("%v: block %s mean %v, Tr K_bb %v (5 SE = %v)", q, sp.Name, mean[b], tr, 5*se)
			}
		}
	}
}

func BenchmarkProbeQuadratic(b *testing.B) {
	f := newFixture(b, "quadratic", nil, nil)
	p := f.prober(b, Settings{Seed: 1})
	d := make([]float64, f.n)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.Probe(uint32(i), d)
	}
}
