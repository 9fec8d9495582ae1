package model

import (
	"fmt"
	"math"
)

// Operator is a linear differential operator with constant coefficients and
// order at most two, acting on a function of the input coordinates:
//
//	P u = Σ_k B[k] ∂_k u + Σ_{k,l} C[k·d+l] ∂_k ∂_l u
//
// with C symmetric. A residual that needs only P u (such as u_tt − 4u_xx)
// carries P u through the network as one stream instead of one stream per
// second derivative: for h = σ(a),
//
//	P h = σ'(a) P a + σ''(a) Σ_{k,l} C_kl ∂_k a ∂_l a,
//
// so it needs the first derivatives ∂_k a that appear in C, and nothing else.
type Operator struct {
	Name string
	B    []float64 // first-order coefficients, len d; nil means zero
	C    []float64 // second-order coefficients, d×d row-major symmetric; nil means zero
}

// Streams names what a residual block reads of the network output at each
// point: always the value, the first derivatives along the listed input
// coordinates, and the listed operators. Stream 0 is the value, streams
// 1..len(Grad) the first derivatives in the order of Grad, then one stream
// per operator in the order of Ops.
type Streams struct {
	Grad []int
	Ops  []Operator
}

// Count is the number of streams.
func (s Streams) Count() int { return 1 + len(s.Grad) + len(s.Ops) }

// validate checks the operator coefficients against the input dimension d
// and that every second-order term reads a carried first derivative.
func (s Streams) validate(d int) error {
	seen := make(map[int]bool)
	for _, k := range s.Grad {
		if k < 0 || k >= d {
			return fmt.Errorf("derivative along coordinate %d of a %d-dimensional input", k, d)
		}
		if seen[k] {
			return fmt.Errorf("derivative along coordinate %d listed twice", k)
		}
		seen[k] = true
	}
	for _, op := range s.Ops {
		if op.B != nil && len(op.B) != d {
			return fmt.Errorf("operator %s: %d first-order coefficients for %d coordinates", op.Name, len(op.B), d)
		}
		if op.C == nil {
			continue
		}
		if len(op.C) != d*d {
			return fmt.Errorf("operator %s: %d second-order coefficients for %d coordinates", op.Name, len(op.C), d)
		}
		for k := 0; k < d; k++ {
			for l := 0; l < d; l++ {
				c := op.C[k*d+l]
				if c != op.C[l*d+k] {
					return fmt.Errorf("operator %s: second-order coefficients are not symmetric", op.Name)
				}
				if c != 0 && (!seen[k] || !seen[l]) {
					return fmt.Errorf("operator %s: term ∂%d∂%d needs the first derivatives along %d and %d carried", op.Name, k, l, k, l)
				}
				if math.IsNaN(c) || math.IsInf(c, 0) {
					return fmt.Errorf("operator %s: non-finite coefficient", op.Name)
				}
			}
		}
	}
	return nil
}

// qterm is one term c·a_i·a_j of the quadratic form Σ C_kl ∂_k a ∂_l a,
// written with stream indices i <= j.
type qterm struct {
	i, j int
	c    float64
}

// quadTerms returns the terms of op's quadratic form in stream indices.
func (s Streams) quadTerms(op Operator, d int) []qterm {
	if op.C == nil {
		return nil
	}
	stream := make(map[int]int, len(s.Grad))
	for i, k := range s.Grad {
		stream[k] = 1 + i
	}
	var terms []qterm
	for k := 0; k < d; k++ {
		for l := k; l < d; l++ {
			c := op.C[k*d+l]
			if c == 0 {
				continue
			}
			if l != k {
				c *= 2
			}
			i, j := stream[k], stream[l]
			if i > j {
				i, j = j, i
			}
			terms = append(terms, qterm{i, j, c})
		}
	}
	return terms
}
