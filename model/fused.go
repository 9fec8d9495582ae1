package model

// fusedShape is the shape of a group's streams for which the backward
// activation pass runs as one loop per point (backFusedGo) instead of one
// kernel per stream and term: one or two first-derivative streams and at
// most one operator, whose quadratic form holds only squares of them, each
// once (u_tt − 4u_xx, the Laplacian, u_xx: the interior blocks of the wave
// and Poisson problems, and the wave's initial-slope block).
type fusedShape struct {
	ok    bool
	grads int        // first-derivative streams: 1 or 2
	op    bool       // one operator stream, after them
	sq    [2]bool    // the operator's form has c[k]·a_k² of derivative stream k+1
	c     [2]float64 //
}

// fusedShapeOf returns g's shape (ok false: the kernels one by one). The
// SIMD build keeps its vector kernels (fusedKernels).
func fusedShapeOf(g *group) fusedShape {
	sh := fusedShape{grads: g.ngrad, op: len(g.ops) == 1}
	if !fusedKernels || g.ngrad < 1 || g.ngrad > 2 || len(g.ops) > 1 {
		return fusedShape{}
	}
	if sh.op {
		for _, t := range g.ops[0] {
			k := t.i - 1
			if t.i != t.j || k < 0 || k >= g.ngrad || sh.sq[k] {
				return fusedShape{}
			}
			sh.sq[k], sh.c[k] = true, t.c
		}
	}
	sh.ok = true
	return sh
}

// backFusedGo is activateBackwardPoint's kernels for one point of a group
// of shape sh, in one loop: each element goes through the operations of
// mulGo, gradBackGo for each derivative stream, termBackGo for each square
// and opBackGo, in that order (the same bits), with the derivatives and the
// value row's running cotangent in registers instead of written and read
// back once per kernel. Every product that a sum takes is rounded first
// (float64), as it is when a kernel stores it, so that the compiler does
// not fuse the two (it would with GOAMD64=v3). Rows as are the outputs, hs
// the cotangents (as and hs may be the same rows), xs the base point's
// pre-activation rows, q the operator's quadratic form.
func backFusedGo(sh *fusedShape, as, hs, xs [][]float64, d1, d2, d3, q []float64) {
	n := len(d1)
	d2 = d2[:n]
	a0, h0 := as[0][:n], hs[0][:n]
	a1, h1, x1 := as[1][:n], hs[1][:n], xs[1][:n]
	two := sh.grads == 2
	var a2, h2, x2 []float64
	if two {
		a2, h2, x2 = as[2][:n], hs[2][:n], xs[2][:n]
	}
	op := sh.op
	var aP, hP, xP []float64
	if op {
		P := 1 + sh.grads
		aP, hP, xP = as[P][:n], hs[P][:n], xs[P][:n]
		d3, q = d3[:n], q[:n]
	}
	sq1, sq2 := sh.sq[0], sh.sq[1]
	c1, c2 := sh.c[0], sh.c[1]
	for j, s1 := range d1 {
		D2 := d2[j]
		A0 := float64(s1 * h0[j])
		H1, X1 := h1[j], x1[j]
		A1 := float64(s1 * H1)
		A0 += float64(float64(D2*H1) * X1)
		var A2, X2 float64
		if two {
			H2 := h2[j]
			X2 = x2[j]
			A2 = float64(s1 * H2)
			A0 += float64(float64(D2*H2) * X2)
		}
		if op {
			HP := hP[j]
			if sq1 {
				w := float64(D2*HP) * c1
				A1 += float64(w * X1)
				A1 += float64(w * X1)
			}
			if sq2 {
				w := float64(D2*HP) * c2
				A2 += float64(w * X2)
				A2 += float64(w * X2)
			}
			aP[j] = s1 * HP
			A0 += float64(float64(float64(D2*HP)*xP[j]) + float64(float64(d3[j]*HP)*q[j]))
		}
		a0[j], a1[j] = A0, A1
		if two {
			a2[j] = A2
		}
	}
}
