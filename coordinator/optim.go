package coordinator

import (
	"fmt"
	"math"
)

// Optimizer takes the corrector step θ ← θ − (update from the gradient).
type Optimizer interface {
	// Step updates theta in place from the gradient of the weighted loss;
	// t counts steps from 0.
	Step(theta, grad []float64, t int)
	// LR is the learning rate in effect at step t.
	LR(t int) float64
}

// Schedule is an exponential step decay: the rate is LR·Decay^⌊t/Every⌋
// (Every = 0: constant).
type Schedule struct {
	LR    float64 `json:"lr"`
	Decay float64 `json:"decay"`
	Every int     `json:"every"`
}

// At is the rate at step t.
func (s Schedule) At(t int) float64 {
	if s.Every <= 0 || s.Decay == 1 {
		return s.LR
	}
	return s.LR * math.Pow(s.Decay, float64(t/s.Every))
}

func (s Schedule) validate() error {
	if !(s.LR > 0) || math.IsInf(s.LR, 0) {
		return fmt.Errorf("learning rate %v: want a positive number", s.LR)
	}
	if s.Every > 0 && !(s.Decay > 0 && s.Decay <= 1) {
		return fmt.Errorf("decay %v: want a factor in (0, 1]", s.Decay)
	}
	return nil
}

// GD is plain gradient descent, the paper's θ_{t+1} = θ_t − η Jᵀ Λ R.
type GD struct{ Schedule }

// NewGD returns gradient descent with the schedule.
func NewGD(s Schedule) (*GD, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &GD{s}, nil
}

func (g *GD) Step(theta, grad []float64, t int) {
	eta := g.At(t)
	for i, v := range grad {
		theta[i] -= eta * v
	}
}

func (g *GD) LR(t int) float64 { return g.At(t) }

// Adam is Kingma & Ba's optimizer with bias correction, as PINN codes use it
// (the PINNsNTK reference: rate 1e−3 decayed by 0.9 every 1000 steps).
type Adam struct {
	Schedule
	Beta1, Beta2, Eps float64
	M, V              []float64 // moment estimates, part of a checkpoint
}

// NewAdam returns Adam with β1 = 0.9, β2 = 0.999, ε = 1e−8.
func NewAdam(s Schedule, p int) (*Adam, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &Adam{Schedule: s, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, M: make([]float64, p), V: make([]float64, p)}, nil
}

func (a *Adam) Step(theta, grad []float64, t int) {
	b1, b2 := a.Beta1, a.Beta2
	c1 := 1 - math.Pow(b1, float64(t+1))
	c2 := 1 - math.Pow(b2, float64(t+1))
	eta := a.At(t)
	for i, g := range grad {
		a.M[i] = b1*a.M[i] + (1-b1)*g
		a.V[i] = b2*a.V[i] + (1-b2)*g*g
		theta[i] -= eta * (a.M[i] / c1) / (math.Sqrt(a.V[i]/c2) + a.Eps)
	}
}

func (a *Adam) LR(t int) float64 { return a.At(t) }
