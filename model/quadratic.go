package model

import (
	"fmt"
	"math"

	"ntkbus/model/rng"
)

// newQuadratic is the paper's experiment 5.2.1, a regression (not a PINN):
//
//	R_i(θ) = (θ⊙θ)·(1, x_i, x_i²) − y_i,  y_i = πx_i² + e^{x_i} + √2 + ξ_i,
//
// at 50 equispaced x in [−1, 1], with ξ ~ N(0, 1/√2) read as variance 1/√2
// (standard deviation 2^{−1/4}). Its Jacobian is J_ij = 2θ_j u_j(x_i) with
// u = (1, x, x²), so the NTK depends on θ. The exact "solution" is the noise-free
// f(x) = πx² + eˣ + √2.
func newQuadratic() *Problem {
	box := [][2]float64{{-1, 1}}
	return &Problem{
		Name:    "quadratic",
		Dim:     1,
		Outputs: 1,
		Coords:  []string{"x"},
		Box:     box,
		Blocks: []BlockDef{{
			Name: "data", Count: 50, Components: 1, Fixed: true,
			Sample: func(_ *rng.Stream, i, count int, x []float64) {
				if count == 1 {
					x[0] = 0
					return
				}
				x[0] = -1 + 2*float64(i)/float64(count-1)
			},
			Target: func(x, y []float64) { y[0] = quadraticTruth(x[0]) },
			Noise:  math.Pow(2, -0.25),
		}},
		Truth:     "exact solution",
		Exact:     func(x, u []float64) { u[0] = quadraticTruth(x[0]) },
		NumParams: 3,
	}
}

func quadraticTruth(x float64) float64 { return math.Pi*x*x + math.Exp(x) + math.Sqrt2 }

// quadEval evaluates the quadratic problem; everything is closed form.
type quadEval struct {
	lay   Layout
	opt   Options
	x, y  []float64
	theta [3]float64
}

func newQuadEval(s *Setup, c *Collocation, opt Options) (*quadEval, error) {
	e := &quadEval{opt: opt}
	if err := e.SetPoints(c); err != nil {
		return nil, err
	}
	_ = s
	return e, nil
}

func (e *quadEval) Layout() *Layout { return &e.lay }

func (e *quadEval) SetPoints(c *Collocation) error {
	if len(c.Blocks) != 1 || c.Blocks[0].Dim != 1 {
		return fmt.Errorf("quadratic: want one block of 1-D points")
	}
	b := &c.Blocks[0]
	e.x = append(e.x[:0], b.X...)
	e.y = append(e.y[:0], b.Y...)
	n := len(e.x)
	e.lay = Layout{N: n, P: 3, Blocks: []Span{{Name: b.Name, Off: 0, Len: n, Points: n, Components: 1}}}
	return nil
}

// features sets u = (1, x, x²).
func features(x float64) [3]float64 { return [3]float64{1, x, x * x} }

func (e *quadEval) Forward(theta, r []float64) {
	copy(e.theta[:], theta)
	e.Residual(theta, r)
}

func (e *quadEval) Residual(theta, r []float64) {
	for i, x := range e.x {
		u := features(x)
		r[i] = theta[0]*theta[0]*u[0] + theta[1]*theta[1]*u[1] + theta[2]*theta[2]*u[2] - e.y[i]
	}
}

// jac returns row i of J: 2θ_j u_j(x_i).
func (e *quadEval) jac(i int) [3]float64 {
	u := features(e.x[i])
	t := &e.theta
	return [3]float64{2 * t[0] * u[0], 2 * t[1] * u[1], 2 * t[2] * u[2]}
}

func (e *quadEval) Backward(cots []Cotangent) {
	for _, c := range cots {
		var g [3]float64
		for i := range e.x {
			j := e.jac(i)
			for k := range g {
				g[k] += c.V[i] * j[k]
			}
		}
		if c.Dst != nil {
			copy(c.Dst, g[:])
		}
		for b := range c.PerBlock {
			copy(c.PerBlock[b], g[:]) // one block
		}
	}
}

func (e *quadEval) JVP(w, dst []float64) {
	for i := range e.x {
		j := e.jac(i)
		dst[i] = j[0]*w[0] + j[1]*w[1] + j[2]*w[2]
	}
}

func (e *quadEval) Diagonal(dst []float64) {
	for i := range e.x {
		j := e.jac(i)
		dst[i] = j[0]*j[0] + j[1]*j[1] + j[2]*j[2]
	}
}

func (e *quadEval) NTK(dst []float64) error {
	n := len(e.x)
	if need := 8 * int64(n) * int64(n); need > e.opt.MaxMemory {
		return fmt.Errorf("exact NTK of %d residuals needs %s, over the limit of %s", n, formatBytes(need), formatBytes(e.opt.MaxMemory))
	}
	for i := 0; i < n; i++ {
		a := e.jac(i)
		for j := 0; j < n; j++ {
			b := e.jac(j)
			dst[i*n+j] = a[0]*b[0] + a[1]*b[1] + a[2]*b[2]
		}
	}
	return nil
}
