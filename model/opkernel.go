package model

import "fmt"

// Operator-informed kernels for the spectrum study (Gan, Li, Lin & Shi
// 2024): for a linear operator T, the NTK of the residual R_i = (T u)(x_i)
// is K_T(x, x') = T_x T_x' K(x, x') at the points, K the plain NTK of u.
// One network (same layers, same θ) and the same points give K_T for every
// T, so their spectra compare operator against operator.

// OperatorNames lists the operators OperatorSetup knows in each
// dimension, the identity first.
func OperatorNames(dim int) []string {
	switch dim {
	case 1:
		return []string{"u", "u_x", "u_xx"}
	case 2:
		return []string{"u", "u_x", "laplacian"}
	}
	return nil
}

// kernelOperators maps the names of the study's operators in dim
// dimensions to their streams; the residual reads the last stream.
func kernelOperators(dim int) map[string]Streams {
	switch dim {
	case 1:
		return map[string]Streams{
			"u":    {},
			"u_x":  {Grad: []int{0}},
			"u_xx": {Grad: []int{0}, Ops: []Operator{{Name: "u_xx", C: []float64{1}}}},
		}
	case 2:
		return map[string]Streams{
			"u":         {},
			"u_x":       {Grad: []int{0}},
			"laplacian": {Grad: []int{0, 1}, Ops: []Operator{{Name: "laplacian", C: []float64{1, 0, 0, 1}}}},
		}
	}
	return nil
}

// OperatorSetup returns a one-block problem whose residual is T u at
// points drawn uniformly in [0, 1]^dim (block "T", targets zero), bound
// to a network with the given layers (dim inputs, one output) and
// activation, inputs standardized to the unit cube's uniform distribution.
// Its NTK is the operator-informed kernel K_T at the drawn points; the
// points depend only on the seed and count, not on T.
func OperatorSetup(dim int, op string, layers []int, activation string) (*Setup, error) {
	ops := kernelOperators(dim)
	if ops == nil {
		return nil, fmt.Errorf("operator kernels in %d dimensions: want 1 or 2", dim)
	}
	st, ok := ops[op]
	if !ok {
		return nil, fmt.Errorf("operator %q in %d-D: want one of %v", op, dim, OperatorNames(dim))
	}
	box := make([][2]float64, dim)
	coords := []string{"x", "y"}[:dim]
	for k := range box {
		box[k] = [2]float64{0, 1}
	}
	f, df := streamOf(st.Count()-1, st.Count())
	act, err := ParseActivation(activation)
	if err != nil {
		return nil, err
	}
	p := &Problem{
		Name: "kernel-" + op, Dim: dim, Outputs: 1, Coords: coords, Box: box,
		Blocks: []BlockDef{{
			Name: "T", Count: 100, Components: 1, Streams: st,
			Sample: uniformIn(box), F: f, DF: df, Fixed: true,
		}},
		Layers: layers, Activation: act, Standardize: true,
	}
	if err := st.validate(dim); err != nil {
		return nil, err
	}
	cfg := Config{Problem: p.Name, Layers: layers, Activation: activation}
	cfg.Shift, cfg.Scale = p.uniformStandardization()
	return bind(p, cfg)
}
