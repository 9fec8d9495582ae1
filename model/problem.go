package model

import (
	"fmt"
	"math"
	"sort"

	"ntkbus/model/rng"
)

// Problem is a family of residuals: named blocks of collocation points, what
// each block computes from the network output there, how points are drawn,
// and the defaults of the network that solves it.
type Problem struct {
	Name    string
	Dim     int                  // coordinates per point
	Outputs int                  // values of the solution per point (network outputs)
	Coords  []string             // coordinate names, e.g. ["x", "t"]
	Box     [][2]float64         // domain bounds per coordinate
	Blocks  []BlockDef           // in residual order
	Params  []Param              // constants of the equation, with their values
	Exact   func(x, u []float64) // exact solution u(x) (Outputs values), or a numerical reference (qtensor); nil when unknown
	Truth   string               // what Exact is, for labels: "exact solution" or "finite-difference reference"

	// OutputNames name the outputs (columns of predictions, labels).
	OutputNames []string
	// Resample says whether a run draws new points every step unless told
	// (train --resample auto).
	Resample bool
	// Reference is solution data at points, when the solution is known
	// there only; Exact then reads it, and errors are measured at its points.
	Reference *Reference
	// domain is the box with its holes, for problems that have holes;
	// nil means the box.
	domain *domain

	// Network defaults. Layers is nil for problems that are not a network
	// (quadratic), whose parameters are Params-free and counted by NumParams.
	Layers      []int
	Activation  Activation
	Standardize bool // standardize inputs to the domain's uniform mean and deviation
	NumParams   int  // parameter count of a non-network problem

	check func() error // validates Params
}

func (p *Problem) hasParam(name string) bool {
	for _, q := range p.Params {
		if q.Name == name {
			return true
		}
	}
	return false
}

// Param is a named constant of a problem's equation.
type Param struct {
	Name  string
	Value float64
	Doc   string
}

// BlockDef is one named residual block. Its residual at point x is
//
//	R(x) = F(x, u) − y(x)
//
// where u holds the streams of the network output at x (stream-major: u[s·O+o]
// is stream s of output o) and y are the block's targets.
type BlockDef struct {
	Name       string
	Count      int // default number of points (the paper's)
	Components int // residuals per point
	Streams    Streams

	// Sample draws point i of count into x (len Dim).
	Sample func(s *rng.Stream, i, count int, x []float64)
	// Target sets the data y (Components values) at x; nil means zero.
	Target func(x, y []float64)
	// F sets r = F(x, u) (Components values).
	F func(x, u, r []float64)
	// DF sets jac = ∂F/∂u, Components × (Streams.Count()·Outputs), row-major.
	DF func(x, u, jac []float64)
	// Noise is the standard deviation of Gaussian noise added to drawn
	// targets (data problems); zero for equations.
	Noise float64
	// Fixed marks points that do not change when a run resamples (boundary
	// points of a 1-D domain, a fixed data set).
	Fixed bool
	// Rows are the block's points when they are given (a problem file's
	// points_file): Count×Dim, row-major; a draw takes exactly these.
	Rows []float64
}

// Lookup returns the named problem with its parameters overridden by params.
// Unknown names and unknown parameters are errors that list what exists.
func Lookup(name string, params map[string]float64) (*Problem, error) {
	var p *Problem
	switch name {
	case "quadratic":
		p = newQuadratic()
	case "poisson1d":
		p = newPoisson1D()
	case "poisson2d":
		p = newPoisson2D()
	case "wave":
		p = newWave()
	case "qtensor":
		p = newQTensor(params)
	default:
		return nil, fmt.Errorf("unknown problem %q (want one of %v, or a path to a .toml problem file)", name, Names())
	}
	for k, v := range params {
		if !p.hasParam(k) {
			names := make([]string, len(p.Params))
			for i, q := range p.Params {
				names[i] = q.Name
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("problem %s has no parameters, got %q", name, k)
			}
			return nil, fmt.Errorf("problem %s has no parameter %q (it has %v)", name, k, names)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("problem %s: parameter %s = %v is not finite", name, k, v)
		}
	}
	if p.check != nil {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("problem %s: %w", name, err)
		}
	}
	for i := range p.Blocks {
		if err := p.Blocks[i].Streams.validate(p.Dim); err != nil {
			return nil, fmt.Errorf("problem %s block %s: %w", name, p.Blocks[i].Name, err)
		}
	}
	return p, nil
}

// Names lists the known problems.
func Names() []string {
	n := []string{"quadratic", "poisson1d", "poisson2d", "wave", "qtensor"}
	sort.Strings(n)
	return n
}

// ParamMap returns the problem's parameters by name.
func (p *Problem) ParamMap() map[string]float64 {
	m := make(map[string]float64, len(p.Params))
	for _, q := range p.Params {
		m[q.Name] = q.Value
	}
	return m
}

// BlockNames lists the block names in residual order.
func (p *Problem) BlockNames() []string {
	n := make([]string, len(p.Blocks))
	for i, b := range p.Blocks {
		n[i] = b.Name
	}
	return n
}

// DefaultCounts lists the paper's point count of every block.
func (p *Problem) DefaultCounts() []int {
	c := make([]int, len(p.Blocks))
	for i, b := range p.Blocks {
		c[i] = b.Count
	}
	return c
}

// IsNetwork reports whether the problem is solved by an MLP.
func (p *Problem) IsNetwork() bool { return p.Layers != nil }

// uniformStandardization returns the shift and scale that map the uniform
// distribution on the box to zero mean and unit standard deviation.
func (p *Problem) uniformStandardization() (shift, scale []float64) {
	shift = make([]float64, p.Dim)
	scale = make([]float64, p.Dim)
	for k, b := range p.Box {
		shift[k] = (b[0] + b[1]) / 2
		scale[k] = (b[1] - b[0]) / math.Sqrt(12)
	}
	return shift, scale
}

// Samplers shared by the problems.

// uniformIn draws every coordinate uniformly in the box.
func uniformIn(box [][2]float64) func(s *rng.Stream, i, count int, x []float64) {
	return func(s *rng.Stream, _, _ int, x []float64) {
		for k, b := range box {
			x[k] = s.Uniform(b[0], b[1])
		}
	}
}

// uniformWith draws uniformly in the box except coordinate k, fixed at v.
func uniformWith(box [][2]float64, k int, v float64) func(s *rng.Stream, i, count int, x []float64) {
	return func(s *rng.Stream, _, _ int, x []float64) {
		for j, b := range box {
			if j == k {
				x[j] = v
				continue
			}
			x[j] = s.Uniform(b[0], b[1])
		}
	}
}

// fixedAt puts every point at x.
func fixedAt(v ...float64) func(s *rng.Stream, i, count int, x []float64) {
	return func(_ *rng.Stream, _, _ int, x []float64) { copy(x, v) }
}

// valueOf is the residual F = u_o for a block that reads the value of output o
// of an O-output network, one component per output when all is true.
func valueOutputs(outputs int) (f, df func(x, u, r []float64)) {
	f = func(_, u, r []float64) { copy(r, u[:outputs]) }
	df = func(_, _, jac []float64) {
		// Components = outputs, columns = 1 stream · outputs.
		for i := range jac {
			jac[i] = 0
		}
		for o := 0; o < outputs; o++ {
			jac[o*outputs+o] = 1
		}
	}
	return f, df
}

// streamOf is the residual F = (stream s of output 0) for a single-output network.
func streamOf(s, streams int) (f, df func(x, u, r []float64)) {
	f = func(_, u, r []float64) { r[0] = u[s] }
	df = func(_, _, jac []float64) {
		for i := 0; i < streams; i++ {
			jac[i] = 0
		}
		jac[s] = 1
	}
	return f, df
}
