package optim

import (
	"context"
	"errors"
	"fmt"

	"ntkbus/model"
)

// Method is one optimizer. At every step the trainer fills a Problem with
// what the method's Needs ask for, and Step moves θ.
type Method interface {
	// Needs says what Step reads beyond θ, R, the weights and the
	// evaluator: the gradient, probe columns.
	Needs() Needs
	// Step takes the step p.Step from p.Theta, in place, and describes it
	// in rec.
	Step(ctx context.Context, p *Problem, rec *Record) error
	// Columns are the method's columns of train.csv (see Record.Cells).
	Columns() []string
	// State is what the method carries from step to step, for a
	// checkpoint (nil: nothing); it may share memory with the method.
	State() *State
	// SetState installs a checkpoint's state after checking it in full
	// (lengths, finiteness, bounds) against this method.
	SetState(st *State) error
}

// Needs is what a method asks of the trainer at every step.
type Needs struct {
	// Gradient: ∇Φ = Jᵀ W R at θ_t in Problem.Gradient.
	Gradient bool
	// Columns: the step's first Columns probe columns through
	// Problem.Columns (a sketch of K).
	Columns int
}

// Problem is the step as the trainer hands it over: the base point θ_t
// with its residual and weights, and the ways to learn more about R there.
type Problem struct {
	Step  int
	Theta []float64 // θ_t; Step leaves θ_{t+1} here
	// Residual is R(θ_t) at the step's points; Eval's base point is θ_t.
	Residual []float64
	// Weights are w_b per block, Φ(θ) = ½ Σ_b w_b ‖R_b(θ)‖²: the loss
	// weights with --loss's normalization.
	Weights []float64
	// Objective is Φ(θ_t).
	Objective float64
	// Gradient is ∇Φ(θ_t) = Jᵀ W R, when Needs().Gradient.
	Gradient []float64
	// Eval gives Jᵀv (Backward), Jv (JVP), K's diagonal and the dense K
	// at θ_t, and R at any θ (Residual).
	Eval model.Evaluator
	// Columns returns the step's first s probe columns, when
	// Needs().Columns = s: the test matrix Ω (the probe vectors with the
	// rows where R_i = 0 masked, as the probes applied them) and
	// Y = KΩ, both n×s row-major, the same bits wherever computed.
	Columns func(ctx context.Context) (omega, y []float64, err error)
	// NewPoints reports that the points differ from the last step's
	// (resampling), so nothing kept from it about K is valid.
	NewPoints bool
	// Progress, when not nil, is told how a long part of the step goes (a
	// solve's iterations): what, done of total (0: not known). It only
	// reports, for the progress lines of a run; call it as often as is
	// cheap (it is a function call).
	Progress func(what string, done, total int)
}

// ObjectiveAt is Φ at the residual r of some θ under p's weights.
func (p *Problem) ObjectiveAt(r []float64) float64 {
	var phi float64
	for b, sp := range p.Eval.Layout().Blocks {
		var ss float64
		for _, x := range r[sp.Off : sp.Off+sp.Len] {
			ss += x * x
		}
		phi += p.Weights[b] * ss / 2
	}
	return phi
}

// Config names a method and its settings: everything New needs.
type Config struct {
	Name     string
	Schedule Schedule
	Natural  NaturalConfig // ngd, sngd
	// Columns is the probe columns per step (sngd's sketch, the CG
	// preconditioner of ngd; 0: none).
	Columns int
	// MaxMemory bounds the dense K̃, J and their factors (0: the model's
	// default).
	MaxMemory int64
}

// Names are the methods New makes.
var Names = []string{"gd", "adam", "lbfgs", "ngd", "sngd"}

// IsNatural reports whether the method is a natural gradient (ngd or
// sngd): no gradient, a solve with K, damping and a line search.
func IsNatural(name string) bool { return name == "ngd" || name == "sngd" }

// Validate reports settings New would refuse, with what to change.
func (c *Config) Validate() error {
	switch c.Name {
	case "gd", "adam":
	case "lbfgs":
		return nil // no schedule: its line search finds the step
	case "ngd", "sngd":
		if err := c.Natural.validate(c.Name); err != nil {
			return err
		}
		if c.Name == "sngd" && c.Columns < 1 {
			return fmt.Errorf("sketch columns S = %d: want at least 1", c.Columns)
		}
	default:
		return fmt.Errorf("optimizer %q: want gd, adam, lbfgs, ngd or sngd", c.Name)
	}
	if c.Columns < 0 {
		return fmt.Errorf("probe columns %d: want a number ≥ 0", c.Columns)
	}
	return c.Schedule.validate()
}

// New returns the method cfg names, for p parameters.
func New(cfg Config, p int) (Method, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Name {
	case "gd":
		return &GD{Schedule: cfg.Schedule}, nil
	case "adam":
		return NewAdam(cfg.Schedule, p), nil
	case "lbfgs":
		return NewLBFGS(p), nil
	default:
		return newNatural(cfg), nil
	}
}

// State is an optimizer's state after a step: part of a checkpoint. Each
// method uses its own fields and leaves the others zero.
type State struct {
	M, V    []float64 // adam: the moment estimates
	Mu, Nu  float64   // ngd, sngd: the damping μ of the next step, and Nielsen's ν
	Eta     float64   // ngd, sngd: the last accepted step length, where the line search starts
	History []Iterate // lbfgs: the last major iterates, θ_t last
}

// noState is the State and SetState of a method that keeps nothing.
func noState(st *State) error {
	if st != nil && (st.M != nil || st.V != nil || st.Mu != 0 || st.Nu != 0 || st.Eta != 0 || st.History != nil) {
		return errors.New("optimizer state for a method that keeps none")
	}
	return nil
}
