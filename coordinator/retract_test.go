package coordinator

import (
	"context"
	"math"
	"testing"

	"ntkbus/model"
	"ntkbus/sampler"
)

// forging is a backend that emits wrong quotients for probes [bad, bad+k)
// in its first call, then, after the call that reaches probe at, retracts
// them: what a NATS backend does when a sampler is caught forging after
// its results were emitted.
type forging struct {
	*Local
	bad, k, at int
	calls      int
	told       bool
}

func (f *forging) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	f.calls++
	return f.Local.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
		if f.calls == 1 || !f.told && j >= f.bad && j < f.bad+f.k && j < f.at {
			d = append([]float64(nil), d...)
			for i := range d {
				d[i] += 0.5
			}
		}
		return emit(j, d)
	})
}

func (f *forging) Retracted(w *Work) []Retraction {
	if f.told || f.calls == 0 {
		return nil
	}
	// The catch comes with the round that reaches probe at.
	if f.calls*8 < f.at {
		return nil
	}
	f.told = true
	return []Retraction{{Identity: "forger", Reason: "mismatch", Ranges: [][2]int{{0, 8}, {f.bad, f.bad + f.k}}}}
}

// Probes taken back after later rounds were committed leave no trace: the
// estimate, and where a relative-error target stops it, are those of a run
// that never saw them.
func TestEstimateDropsRetractedProbes(t *testing.T) {
	setup, _ := model.NewSetup(model.Config{Problem: "wave", Layers: []int{2, 12, 12, 1}})
	pts, _ := setup.DrawPoints(1, 0, []int{10, 10, 4, 4, 4}, nil)
	s := sampler.Settings{Seed: 3}
	local, err := NewLocal(setup, pts, s, 1, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := setup.NewEvaluator(pts, model.Options{})
	theta := setup.InitTheta(1)
	r0 := make([]float64, ev.Layout().N)
	ev.Residual(theta, r0)
	w := &Work{ID: 1, PointsID: 1, Step: 2, Theta: theta, Points: pts}
	for _, relErr := range []float64{0, 0.3} { // with 0.3 the honest estimate stops after 48
		opt := EstimateOptions{Probes: 64, Batch: 8, Kernel: true, RelError: relErr, MinProbes: 24}
		want, err := EstimateAt(context.Background(), local, local.Plan(), w, r0, opt)
		if err != nil {
			t.Fatal(err)
		}
		b := &forging{Local: local, bad: 10, k: 5, at: 24}
		got, err := EstimateAt(context.Background(), b, local.Plan(), w, r0, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !b.told {
			t.Fatal("nothing was retracted: the test proves nothing")
		}
		if got.Stopped != want.Stopped || got.Acc.Applied() != want.Acc.Applied() ||
			math.Float64bits(got.Estimate.Trace) != math.Float64bits(want.Estimate.Trace) {
			t.Errorf("rel error %v: stopped %v at %d, trace %v; want %v at %d, %v", relErr, got.Stopped, got.Acc.Applied(), got.Estimate.Trace, want.Stopped, want.Acc.Applied(), want.Estimate.Trace)
		}
		n := ev.Layout().N
		kg, kw := make([]float64, n*n), make([]float64, n*n)
		got.Acc.Kernel(kg, false)
		want.Acc.Kernel(kw, false)
		for i := range kg {
			if math.Float64bits(kg[i]) != math.Float64bits(kw[i]) {
				t.Fatalf("rel error %v: K̂ differs at %d", relErr, i)
			}
		}
	}
}
