package model

import "math"

// newPoisson1D is the paper's experiment 5.1:
//
//	u_xx = −16π² sin(4πx) on (0,1), u(0) = u(1) = 0, exact u = sin(4πx),
//
// two random interior points and one point per boundary, one hidden layer of
// 100 tanh units, inputs standardized.
func newPoisson1D() *Problem {
	box := [][2]float64{{0, 1}}
	uxx := Operator{Name: "u_xx", C: []float64{1}}
	pdeF, pdeDF := streamOf(2, 3) // streams: u, u_x, u_xx
	bF, bDF := streamOf(0, 1)
	return &Problem{
		Name:        "poisson1d",
		Dim:         1,
		Outputs:     1,
		Coords:      []string{"x"},
		OutputNames: []string{"u"},
		Box:         box,
		Blocks: []BlockDef{
			{
				Name: "pde", Count: 2, Components: 1,
				Streams: Streams{Grad: []int{0}, Ops: []Operator{uxx}},
				Sample:  uniformIn(box),
				Target:  func(x, y []float64) { y[0] = -16 * math.Pi * math.Pi * math.Sin(4*math.Pi*x[0]) },
				F:       pdeF, DF: pdeDF,
			},
			{Name: "left", Count: 1, Components: 1, Sample: fixedAt(0), F: bF, DF: bDF, Fixed: true},
			{Name: "right", Count: 1, Components: 1, Sample: fixedAt(1), F: bF, DF: bDF, Fixed: true},
		},
		Truth:       "exact solution",
		Exact:       func(x, u []float64) { u[0] = math.Sin(4 * math.Pi * x[0]) },
		Layers:      []int{1, 100, 1},
		Activation:  Tanh,
		Standardize: true,
	}
}
