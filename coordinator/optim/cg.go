package optim

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// CG solves (A + μI) x = b for a symmetric positive semidefinite operator A
// given only by its products, by preconditioned conjugate gradients. It
// holds the work vectors of one system size, so after the first solve it
// allocates nothing.
type CG struct {
	r, z, p, q []float64
}

// CGResult is what one solve did.
type CGResult struct {
	Iterations int     // products with A
	Residual   float64 // ‖b − (A + μI)x‖ / ‖b‖ by the recurrence
	Converged  bool    // Residual ≤ the tolerance
}

// Solve sets x to the solution of (A + μI)x = b from x = 0. apply sets
// dst = A v; precond, if not nil, sets dst = P⁻¹r for a symmetric positive
// definite P ≈ A + μI. It stops when the relative residual is at most tol
// or after maxIter products.
func (cg *CG) Solve(apply func(dst, v []float64), precond func(dst, r []float64), mu float64, b, x []float64, tol float64, maxIter int) CGResult {
	n := len(b)
	if len(cg.r) != n {
		cg.r, cg.z, cg.p, cg.q = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	}
	r, z, p, q := cg.r, cg.z, cg.p, cg.q
	for i := range x {
		x[i] = 0
	}
	copy(r, b)
	bnorm := floats.Norm(b, 2)
	if bnorm == 0 {
		return CGResult{Converged: true}
	}
	pre := func() {
		if precond == nil {
			copy(z, r)
			return
		}
		precond(z, r)
	}
	pre()
	copy(p, z)
	rz := floats.Dot(r, z)
	res := CGResult{Residual: 1}
	for res.Iterations < maxIter {
		apply(q, p)
		floats.AddScaled(q, mu, p)
		res.Iterations++
		pq := floats.Dot(p, q)
		if !(pq > 0) {
			break // A + μI is not positive along p: rounding has taken over
		}
		alpha := rz / pq
		floats.AddScaled(x, alpha, p)
		floats.AddScaled(r, -alpha, q)
		res.Residual = floats.Norm(r, 2) / bnorm
		if res.Residual <= tol {
			res.Converged = true
			break
		}
		pre()
		rzNew := floats.Dot(r, z)
		beta := rzNew / rz
		rz = rzNew
		for i := range p {
			p[i] = z[i] + beta*p[i]
		}
	}
	if math.IsNaN(res.Residual) {
		res.Converged = false
	}
	return res
}
