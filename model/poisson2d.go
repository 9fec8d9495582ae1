package model

import (
	"math"

	"ntkbus/model/rng"
)

// newPoisson2D is the standard benchmark of the energy-natural-gradient
// papers (Müller & Zeinhofer 2023):
//
//	−Δu = 2π² sin(πx) sin(πy) on (0,1)², u = 0 on the boundary,
//	exact u = sin(πx) sin(πy),
//
// with their setting as the default: a 2→32→1 tanh network on raw inputs
// (p = 129), 900 interior points and 120 on the boundary (30 per side),
// drawn at random and kept fixed unless a run resamples.
func newPoisson2D() *Problem {
	box := [][2]float64{{0, 1}, {0, 1}}
	negLap := Operator{Name: "-laplace", C: []float64{-1, 0, 0, -1}}
	pdeF, pdeDF := streamOf(3, 4) // streams: u, u_x, u_y, −Δu
	bF, bDF := streamOf(0, 1)
	return &Problem{
		Name:        "poisson2d",
		Dim:         2,
		Outputs:     1,
		Coords:      []string{"x", "y"},
		OutputNames: []string{"u"},
		Box:         box,
		Blocks: []BlockDef{
			{
				Name: "pde", Count: 900, Components: 1,
				Streams: Streams{Grad: []int{0, 1}, Ops: []Operator{negLap}},
				Sample:  uniformIn(box),
				Target: func(x, y []float64) {
					y[0] = 2 * math.Pi * math.Pi * math.Sin(math.Pi*x[0]) * math.Sin(math.Pi*x[1])
				},
				F: pdeF, DF: pdeDF,
			},
			{Name: "boundary", Count: 120, Components: 1, Sample: onSquareBoundary, F: bF, DF: bDF},
		},
		Truth: "exact solution",
		Exact: func(x, u []float64) {
			u[0] = math.Sin(math.Pi*x[0]) * math.Sin(math.Pi*x[1])
		},
		Layers:     []int{2, 32, 1},
		Activation: Tanh,
	}
}

// onSquareBoundary puts point i on side i mod 4 of the unit square (y = 0,
// x = 1, y = 1, x = 0), uniformly along it, so every side gets a quarter of
// the points.
func onSquareBoundary(s *rng.Stream, i, _ int, x []float64) {
	t := s.Uniform(0, 1)
	switch i % 4 {
	case 0:
		x[0], x[1] = t, 0
	case 1:
		x[0], x[1] = 1, t
	case 2:
		x[0], x[1] = t, 1
	default:
		x[0], x[1] = 0, t
	}
}
