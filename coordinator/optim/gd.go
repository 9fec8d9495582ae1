package optim

import "context"

// GD is plain gradient descent, the paper's θ_{t+1} = θ_t − η Jᵀ Λ R.
type GD struct{ Schedule Schedule }

func (g *GD) Needs() Needs { return Needs{Gradient: true} }

func (g *GD) Step(_ context.Context, p *Problem, rec *Record) error {
	eta := g.Schedule.At(p.Step)
	for i, v := range p.Gradient {
		p.Theta[i] -= eta * v
	}
	rec.LR = eta
	return nil
}

func (g *GD) Columns() []string        { return nil }
func (g *GD) State() *State            { return nil }
func (g *GD) SetState(st *State) error { return noState(st) }
