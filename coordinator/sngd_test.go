package coordinator

import (
	"context"
	"math"
	"testing"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
)

// sngdConfig is a weighted sngd run on a small poisson2d network.
func sngdConfig(steps, S int) TrainConfig {
	return TrainConfig{
		Steps: steps, Mode: ExactWeights, ExactEvery: 2, Optimizer: "sngd", StepProbes: S,
		Probe:    sampler.Settings{Seed: 5, Quotient: sampler.Exact},
		Schedule: optim.Schedule{LR: 1}, PointSeed: 4, Counts: []int{40, 16},
		Natural: optim.NaturalConfig{DampingAuto: true, LineSearch: true, Solver: optim.SolverWoodbury},
	}
}

func smallPoisson2D(t testing.TB) *model.Setup {
	t.Helper()
	s, err := model.NewSetup(model.Config{Problem: "poisson2d", Layers: []int{2, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// With at least rank(K) + 1 columns (here p < n, so rank K ≤ p), the
// Nyström K̂ is K and sngd takes ngd's steps, with NTK weights.
func TestSNGDWithAFullSketchIsNGD(t *testing.T) {
	s := smallPoisson2D(t)
	run := func(cfg TrainConfig) ([]float64, []*optim.Record) {
		tr, err := NewTrainer(s, s.InitTheta(3), cfg, nil, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var recs []*optim.Record
		for i := 0; i < cfg.Steps; i++ {
			rec, err := tr.Step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			nr := *rec.Optim
			recs = append(recs, &nr)
		}
		return tr.Theta(), recs
	}
	p := s.NumParams()
	cfg := sngdConfig(3, p+5)
	// A fixed μ above both routes' floors: ngd solves this n > p case in
	// parameter space, sngd in function space.
	cfg.Natural.DampingAuto, cfg.Natural.Damping = false, 1e-4
	got, grec := run(cfg)
	cfg.Optimizer, cfg.Natural.Solver = "ngd", optim.SolverCholesky
	want, wrec := run(cfg)
	var num, den float64
	for i := range want {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	if r := math.Sqrt(num / den); r > 1e-6 {
		t.Errorf("θ after 3 steps: sngd with %d columns differs from ngd by %.2e relative", p+5, r)
	}
	for i := range grec {
		if grec[i].Eta != wrec[i].Eta || grec[i].Rejected != wrec[i].Rejected {
			t.Errorf("step %d: sngd %+v, ngd %+v", i, *grec[i], *wrec[i])
		}
		if grec[i].SolveResidual > 1e-6 {
			t.Errorf("step %d: sngd's residual against the exact K̃ is %.2e", i, grec[i].SolveResidual)
		}
	}
}

// sngd's columns computed in the trainer, by 1 or by 4 goroutine workers,
// and (with Algorithm 3) shared with the moving average give the same run,
// to the bit.
func TestSNGDSameBitsAnyWorkers(t *testing.T) {
	s := smallPoisson2D(t)
	for _, mode := range []WeightMode{ExactWeights, Estimated} {
		cfg := sngdConfig(5, 9)
		cfg.Mode = mode
		if mode == Estimated {
			cfg.Alpha, cfg.InitProbes = 0.3, 6 // fewer initial probes than columns: step 0 draws the rest
		}
		run := func(workers int) []float64 {
			var b Backend
			if workers > 0 {
				pts, _ := s.DrawPoints(cfg.PointSeed, 0, cfg.Counts, nil)
				l, err := NewLocal(s, pts, cfg.Probe, workers, model.Options{})
				if err != nil {
					t.Fatal(err)
				}
				b = l
			}
			c := cfg
			c.Fused = workers == 0
			tr, err := NewTrainer(s, s.InitTheta(3), c, b, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < c.Steps; i++ {
				if _, err := tr.Step(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			return tr.Theta()
		}
		want := run(0)
		for _, w := range []int{1, 4} {
			got := run(w)
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("%s weights, %d workers: θ differs at %d: %v vs %v", mode, w, i, got[i], want[i])
				}
			}
		}
	}
}

// hostileBackend wraps a backend and sends, around every true result, a
// non-finite copy, a short one, and the true one again.
type hostileBackend struct{ Backend }

func (h hostileBackend) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	return h.Backend.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
		bad := append([]float64(nil), d...)
		bad[0] = math.NaN()
		for _, x := range [][]float64{bad, d[:len(d)-1], d, d} {
			if err := emit(j, x); err != nil {
				return err
			}
		}
		return nil
	})
}

// sngd's own columns refuse malformed and repeated results, count them in
// the step's audit by reason, and take the same steps as with a clean
// backend, to the bit.
func TestSNGDColumnsRefuseBadResults(t *testing.T) {
	s := smallPoisson2D(t)
	cfg := sngdConfig(3, 9)
	cfg.Mode = ExactWeights
	run := func(hostile bool) ([]float64, Audit) {
		pts, _ := s.DrawPoints(cfg.PointSeed, 0, cfg.Counts, nil)
		l, err := NewLocal(s, pts, cfg.Probe, 2, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var b Backend = l
		if hostile {
			b = hostileBackend{l}
		}
		tr, err := NewTrainer(s, s.InitTheta(3), cfg, b, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var audit Audit
		for i := 0; i < cfg.Steps; i++ {
			rec, err := tr.Step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			audit.Add(rec.Audit)
		}
		return tr.Theta(), audit
	}
	want, clean := run(false)
	got, audit := run(true)
	if clean.Total() != 0 {
		t.Fatalf("clean backend: %v refused", clean.Rejected)
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("θ differs at %d: %v vs %v", i, got[i], want[i])
		}
	}
	cols := int64(cfg.Steps * cfg.StepProbes)
	for _, reason := range []string{"non_finite", "length", "duplicate"} {
		if audit.Rejected[reason] != cols {
			t.Errorf("%s: %d refused, want %d (one per column): %v", reason, audit.Rejected[reason], cols, audit.Rejected)
		}
	}
}
