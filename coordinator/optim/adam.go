package optim

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Adam is Kingma & Ba's optimizer with bias correction, as PINN codes use it
// (the PINNsNTK reference: rate 1e−3 decayed by 0.9 every 1000 steps).
type Adam struct {
	Schedule          Schedule
	Beta1, Beta2, Eps float64
	M, V              []float64 // moment estimates, part of a checkpoint
}

// NewAdam returns Adam with β1 = 0.9, β2 = 0.999, ε = 1e−8 for p parameters.
func NewAdam(s Schedule, p int) *Adam {
	return &Adam{Schedule: s, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, M: make([]float64, p), V: make([]float64, p)}
}

func (a *Adam) Needs() Needs { return Needs{Gradient: true} }

func (a *Adam) Step(_ context.Context, p *Problem, rec *Record) error {
	t := p.Step
	b1, b2 := a.Beta1, a.Beta2
	c1 := 1 - math.Pow(b1, float64(t+1))
	c2 := 1 - math.Pow(b2, float64(t+1))
	eta := a.Schedule.At(t)
	theta := p.Theta
	for i, g := range p.Gradient {
		a.M[i] = b1*a.M[i] + (1-b1)*g
		a.V[i] = b2*a.V[i] + (1-b2)*g*g
		theta[i] -= eta * (a.M[i] / c1) / (math.Sqrt(a.V[i]/c2) + a.Eps)
	}
	rec.LR = eta
	return nil
}

func (a *Adam) Columns() []string { return nil }

func (a *Adam) State() *State { return &State{M: a.M, V: a.V} }

func (a *Adam) SetState(st *State) error {
	p := len(a.M)
	switch {
	case st == nil:
		return errors.New("no Adam moments")
	case len(st.M) != p || len(st.V) != p:
		return fmt.Errorf("Adam moments of %d and %d values for p = %d", len(st.M), len(st.V), p)
	case !finite(st.M) || !finite(st.V):
		return errors.New("Adam moments are not finite")
	case st.Mu != 0 || st.Nu != 0 || st.Eta != 0 || st.History != nil:
		return errors.New("damping state for Adam")
	}
	for _, v := range st.V {
		if v < 0 {
			return errors.New("a negative Adam second moment")
		}
	}
	copy(a.M, st.M)
	copy(a.V, st.V)
	return nil
}

func finite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
