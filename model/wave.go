package model

import "math"

// newWave is the paper's experiment 5.2.2, on coordinates (x, t):
//
//	u_tt − 4u_xx = 0 on (0,1)², u(x,0) = sin(πx) + ½sin(4πx), u_t(x,0) = 0,
//	u(0,t) = u(1,t) = 0; exact u = sin(πx)cos(2πt) + ½sin(4πx)cos(8πt),
//
// with 300 interior points, 300 for u_t(x,0), 100 for u(x,0) and 100 per
// side, resampled every step in the paper; a 3×500 tanh network.
func newWave() *Problem {
	box := [][2]float64{{0, 1}, {0, 1}}
	op := Operator{Name: "u_tt-4u_xx", C: []float64{-4, 0, 0, 1}}
	pdeF, pdeDF := streamOf(3, 4) // streams: u, u_x, u_t, P u
	utF, utDF := streamOf(1, 2)   // streams: u, u_t
	vF, vDF := streamOf(0, 1)
	return &Problem{
		Name:        "wave",
		Dim:         2,
		Outputs:     1,
		Coords:      []string{"x", "t"},
		OutputNames: []string{"u"},
		Resample:    true,
		Box:         box,
		Blocks: []BlockDef{
			{Name: "pde", Count: 300, Components: 1, Streams: Streams{Grad: []int{0, 1}, Ops: []Operator{op}},
				Sample: uniformIn(box), F: pdeF, DF: pdeDF},
			{Name: "ut0", Count: 300, Components: 1, Streams: Streams{Grad: []int{1}},
				Sample: uniformWith(box, 1, 0), F: utF, DF: utDF},
			{Name: "u0", Count: 100, Components: 1, Sample: uniformWith(box, 1, 0), F: vF, DF: vDF,
				Target: func(x, y []float64) {
					y[0] = math.Sin(math.Pi*x[0]) + 0.5*math.Sin(4*math.Pi*x[0])
				}},
			{Name: "left", Count: 100, Components: 1, Sample: uniformWith(box, 0, 0), F: vF, DF: vDF},
			{Name: "right", Count: 100, Components: 1, Sample: uniformWith(box, 0, 1), F: vF, DF: vDF},
		},
		Truth: "exact solution",
		Exact: func(x, u []float64) {
			u[0] = math.Sin(math.Pi*x[0])*math.Cos(2*math.Pi*x[1]) + 0.5*math.Sin(4*math.Pi*x[0])*math.Cos(8*math.Pi*x[1])
		},
		Layers:     []int{2, 500, 500, 500, 1},
		Activation: Tanh,
	}
}
