package model

import (
	"fmt"
	"math"
	"sync"
)

// Default constants of the Q-tensor flow. The paper leaves them open; these
// give an isotropic-to-nematic system (a < 0) whose uniform equilibrium has
// Tr(Q²) = −a/c = 0.2, i.e. order λ₁ = √0.1 ≈ 0.32, and whose diffusion time
// over the domain (≈ 16/(2π²L) ≈ 0.8) lets the director relax within t ∈ [0, 2].
// With Q = 0 on ∂Ω that diffusion wins: the slowest mode decays at
// 2L(π/4)² + a ≈ 1.03, so Q fades toward 0 (see SolveQTensor).
const (
	qtensorL = 1.0
	qtensorA = -0.2
	qtensorC = 1.0
)

// newQTensor is the paper's experiment 5.2.3, on coordinates (x, y, t) over
// Ω×[0,2], Ω = (−2,2)²: the Q-tensor flow of a 2-D liquid crystal,
//
//	Q_t = LΔQ − aQ − c Tr(Q²)Q,  Q = 0 on ∂Ω,  Q(·,0) = ddᵀ − ½|d|²I,
//
// for symmetric trace-free Q = [[q1, q2], [q2, −q1]], so Tr(Q²) = 2(q1²+q2²)
// and the network has two outputs (q1, q2). Each block has two residual
// components, one per output; the PDE residual is
//
//	R_c = (∂_t − LΔ) q_c + a q_c + 2c(q1² + q2²) q_c.
//
// Points: 300 interior, 300 at t = 0, 10 per side; 3×500 tanh network.
func newQTensor(params map[string]float64) *Problem {
	L, a, c := qtensorL, qtensorA, qtensorC
	if v, ok := params["L"]; ok {
		L = v
	}
	if v, ok := params["a"]; ok {
		a = v
	}
	if v, ok := params["c"]; ok {
		c = v
	}
	box := [][2]float64{{-2, 2}, {-2, 2}, {0, 2}}
	op := Operator{
		Name: "q_t-LΔq",
		B:    []float64{0, 0, 1},
		C:    []float64{-L, 0, 0, 0, -L, 0, 0, 0, 0},
	}
	const O = 2
	// PDE streams: u, u_x, u_y, P u; u[s*O+o].
	pdeF := func(_, u, r []float64) {
		q1, q2 := u[0], u[1]
		n := 2 * c * (q1*q1 + q2*q2)
		r[0] = u[3*O+0] + a*q1 + n*q1
		r[1] = u[3*O+1] + a*q2 + n*q2
	}
	pdeDF := func(_, u, jac []float64) {
		q1, q2 := u[0], u[1]
		n := 2 * c * (q1*q1 + q2*q2)
		const cols = 4 * O
		for i := range jac[:2*cols] {
			jac[i] = 0
		}
		// Row 0: ∂R_0/∂(stream s, output o) at column s*O+o.
		jac[0*cols+3*O+0] = 1
		jac[0*cols+0] = a + n + 4*c*q1*q1
		jac[0*cols+1] = 4 * c * q1 * q2
		jac[1*cols+3*O+1] = 1
		jac[1*cols+1] = a + n + 4*c*q2*q2
		jac[1*cols+0] = 4 * c * q1 * q2
	}
	vF, vDF := valueOutputs(O)
	// The finite-difference reference is solved on first use only: samplers
	// and most commands never ask for it.
	var (
		once sync.Once
		ref  *QTensorReference
	)
	exact := func(x, u []float64) {
		if x[2] <= 0 {
			u[0], u[1] = QTensorInitial(x[0], x[1])
			return
		}
		once.Do(func() {
			ref, _ = SolveQTensor(L, a, c, QTensorInitial, QTensorReferenceOptions{})
		})
		if ref == nil { // the explicit scheme blew up for these constants
			u[0], u[1] = math.NaN(), math.NaN()
			return
		}
		u[0], u[1] = ref.At(x[0], x[1], x[2])
	}
	side := func(name string, k int, v float64) BlockDef {
		return BlockDef{Name: name, Count: 10, Components: O, Sample: uniformWith(box, k, v), F: vF, DF: vDF}
	}
	return &Problem{
		Name:        "qtensor",
		Dim:         3,
		Outputs:     O,
		Coords:      []string{"x", "y", "t"},
		OutputNames: []string{"q1", "q2"},
		Resample:    true,
		Box:         box,
		Exact:       exact,
		Truth:       "finite-difference reference",
		Blocks: []BlockDef{
			{Name: "pde", Count: 300, Components: O, Streams: Streams{Grad: []int{0, 1}, Ops: []Operator{op}},
				Sample: uniformIn(box), F: pdeF, DF: pdeDF},
			{Name: "init", Count: 300, Components: O, Sample: uniformWith(box, 2, 0), F: vF, DF: vDF,
				Target: func(x, y []float64) { y[0], y[1] = QTensorInitial(x[0], x[1]) }},
			side("left", 0, -2), side("right", 0, 2), side("bottom", 1, -2), side("top", 1, 2),
		},
		Params: []Param{
			{"L", L, "elastic constant (diffusion), > 0"},
			{"a", a, "bulk constant; a < 0 favours the nematic phase"},
			{"c", c, "bulk constant, > 0"},
		},
		Layers:     []int{3, 500, 500, 500, 2},
		Activation: Tanh,
		check: func() error {
			if !(L > 0) || !(c > 0) {
				return fmt.Errorf("L = %v and c = %v must be positive", L, c)
			}
			return nil
		},
	}
}

// QTensorInitial returns (Q11, Q12) of the paper's initial condition
// Q0 = ddᵀ − ½|d|²I with
//
//	d = (A, sin(πx) sin(πy)) / √(1 + A² + sin²(πx) sin²(πy)),  A = (4−x²)(4−y²).
func QTensorInitial(x, y float64) (q11, q12 float64) {
	A := (2 - x) * (2 + x) * (2 - y) * (2 + y)
	S := math.Sin(math.Pi*x) * math.Sin(math.Pi*y)
	den := 1 + A*A + S*S
	d1, d2 := A/math.Sqrt(den), S/math.Sqrt(den)
	return (d1*d1 - d2*d2) / 2, d1 * d2
}
