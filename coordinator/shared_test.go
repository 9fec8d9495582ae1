package coordinator

import (
	"context"
	"math"
	"strings"
	"testing"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
)

// Blocks named in SharedWeight get one exact weight, Tr K over their summed
// traces; the others keep Tr K / Tr K_bb.
func TestSharedWeight(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson1d"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := TrainConfig{Steps: 1, Mode: ExactWeights, ExactEvery: 1, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3}, PointSeed: 1,
		SharedWeight: []string{"left", "right"}}
	tr, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The exact block traces at θ₀, by hand from the diagonal.
	pts, _ := s.DrawPoints(1, 0, nil, nil)
	ev, _ := s.NewEvaluator(pts, model.Options{})
	ev.Forward(s.InitTheta(1), make([]float64, 4))
	d := make([]float64, 4)
	ev.Diagonal(d)
	all := d[0] + d[1] + d[2] + d[3]
	rec, err := tr.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{all / (d[0] + d[1]), all / (d[2] + d[3]), all / (d[2] + d[3])}
	for b, w := range want {
		if math.Abs(rec.Lambda[b]-w) > 1e-12*w {
			t.Errorf("λ_%d = %v, want %v", b, rec.Lambda[b], w)
		}
	}
	cfg.SharedWeight = []string{"left", "top"}
	if _, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{}); err == nil || !strings.Contains(err.Error(), `no block "top"`) {
		t.Errorf("an unknown block: %v", err)
	}
	cfg.SharedWeight, cfg.Mode = []string{"left", "right"}, Fixed
	if _, err := NewTrainer(s, s.InitTheta(1), cfg, nil, model.Options{}); err == nil || !strings.Contains(err.Error(), "exact weights") {
		t.Errorf("a shared weight with fixed weights: %v", err)
	}
}
