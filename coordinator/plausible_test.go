package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"ntkbus/model"
	"ntkbus/model/rng"
	"ntkbus/sampler"
)

// Honest probes are never refused: every problem, probe kind and quotient,
// at θ₀ and at a θ far from it, with automatic and fixed steps. And what
// no kernel gives is: values 10⁶ times too large, 1e150, a negative sum of
// squares.
func TestPlausibilityBound(t *testing.T) {
	layers := map[string][]int{"poisson1d": {1, 16, 1}, "poisson2d": {2, 16, 1}, "wave": {2, 16, 16, 1}, "qtensor": {3, 12, 12, 2}}
	worst := 0.0
	probes := 8
	if raceEnabled {
		probes = 2 // the same code, a fifth of the time
	}
	for _, name := range model.Names() {
		setup, err := model.NewSetup(model.Config{Problem: name, Layers: layers[name]})
		if err != nil {
			t.Fatal(err)
		}
		pts, err := setup.DrawPoints(3, 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		theta0 := setup.InitTheta(1)
		far := append([]float64(nil), theta0...)
		s := rng.New(5, rng.DomainProbe, 9, 9)
		noise := make([]float64, len(far))
		s.FillNormal(noise)
		for i := range far {
			far[i] += 0.5 * noise[i]
		}
		for _, kind := range []sampler.Kind{sampler.Gaussian, sampler.Rademacher, sampler.Block, sampler.Param} {
			for _, q := range []sampler.Quotient{sampler.Forward, sampler.Central, sampler.Exact} {
				for _, fixed := range []bool{false, true} {
					if fixed && q == sampler.Exact {
						continue // no step to fix
					}
					settings := sampler.Settings{Seed: 7, Kind: kind, Quotient: q}
					if fixed {
						settings.Dt, settings.Epsilon = 1e-4, 1e-4
					}
					local, err := NewLocal(setup, pts, settings, 1, model.Options{})
					if err != nil {
						t.Fatal(err)
					}
					pl := NewPlausibility(setup, settings, model.Options{})
					for k, theta := range [][]float64{theta0, far} {
						what := fmt.Sprintf("%s %s %s fixed=%v θ%d", name, kind, q, fixed, k)
						w := &Work{ID: uint64(k + 1), PointsID: 1, Step: 3, Theta: theta, Points: pts}
						if err := pl.At(w); err != nil {
							t.Fatal(err)
						}
						err = local.Probes(context.Background(), w, 0, probes, func(j int, d []float64) error {
							if err := pl.Check(j, d); err != nil {
								return fmt.Errorf("%s: an honest probe refused: %w", what, err)
							}
							if !fixed {
								worst = math.Max(worst, ratio(pl, j, d))
							}
							big := append([]float64(nil), d...)
							f := 1e6
							if fixed {
								f = 1e12 // the slack of an unknown truncation error
							}
							for i := range big {
								big[i] = f * (big[i] + math.Sqrt(pl.Trace()+1))
							}
							if err := pl.Check(j, big); !errors.Is(err, ErrImplausible) {
								return fmt.Errorf("%s: a result %g times too large taken: %v", what, f, err)
							}
							big[0] = 1e150
							if err := pl.Check(j, big); !errors.Is(err, ErrImplausible) {
								return fmt.Errorf("%s: 1e150 taken", what)
							}
							if kind == sampler.Param {
								neg := append([]float64(nil), d...)
								neg[0] = -1e-300
								if err := pl.Check(j, neg); !errors.Is(err, ErrImplausible) {
									return fmt.Errorf("%s: a negative sum of squares taken", what)
								}
							}
							return nil
						})
						if err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	t.Logf("largest honest result: %.3g of its bound", worst)
}

// ratio is about how close an honest result comes to its bound: 1/f for
// the least power of two f that makes it refused.
func ratio(pl *Plausibility, j int, d []float64) float64 {
	scaled := make([]float64, len(d))
	for k := 0; k < 200; k++ {
		f := math.Exp2(float64(k))
		for i := range d {
			scaled[i] = d[i] * f
		}
		if pl.Check(j, scaled) != nil {
			return 1 / f
		}
	}
	return 0
}
