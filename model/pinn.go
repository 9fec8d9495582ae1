package model

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// pinn evaluates the residual of a problem solved by an MLP.
//
// Every point carries a few "streams" through the network: the value, the
// first derivatives its block reads, and its block's operators P (see
// Operator). All rows of all layers are laid out block by block, then stream
// by stream, then point by point: stream s of point i of group g is row
// g.row + s·g.n + i. A layer is then one GEMM over all rows, and the
// nonlinearity combines rows of the same point.
type pinn struct {
	prob *Problem
	net  *network
	opt  Options
	lay  Layout

	groups []group
	rows   int // rows of every layer matrix
	npts   int
	L      int // weight layers
	maxW   int // widest layer
	theta  []float64

	// Base point cache, filled by Forward.
	z          []float64   // rows × d, the input streams (θ-independent)
	a          [][]float64 // a[l], l = 1..L: pre-activations, rows × m_l (a[L] is the output)
	h          [][]float64 // h[l], l = 0..L-1: layer inputs (h[0] = z)
	d1, d2, d3 [][]float64 // σ', σ'', σ''' at the value rows, npts × m_l (not kept for tanh: see derivs)
	q          [][]float64 // quadratic forms of the operators, opRows × m_l
	df         []float64   // ∂F/∂u per point
	r          []float64   // R at the base point

	// Scratch for Residual.
	sa, sh []float64         // A and H, when no Backward has made its buffers
	scr    [maxParts]scratch // per part: σ', σ'' and one quadratic form of one point
	u, rr  []float64         // one point's output streams and residual components

	bw           []backBufs    // per cotangent of Backward
	backH, backA [][]float64   // the cotangents activateBackward maps
	jA           []float64     // JVP tangents
	jH           [2][]float64  //
	dgA          []float64     // Diagonal cotangents
	dgH          []float64     //
	ntkA         [][][]float64 // NTK, Columns: Ā of component c at layer l (see cotangents)
	tile         [2][]float64  // NTK tiles

	ntkAt                    []float64 // θ at which ntkA was computed
	colA, colH, colTA, colTH []float64 // Columns: gathered rows and tiles

	wt    []float64 // a small layer's weights transposed, or its gradient
	flops int64     // floating-point operations of the matrix products so far (see Flops)
	job   job       // the element-wise work being split (see split)
	help  *helpers
}

type backBufs struct{ abar, hbar []float64 }

// group is one block's slice of the row layout.
type group struct {
	def    *BlockDef
	x, y   []float64 // points (n×d) and targets (n×comps)
	n      int
	first  int // global index of the first point
	row    int // first row
	ns     int // streams
	ngrad  int
	ops    [][]qterm // quadratic-form terms of each operator
	qrow   int       // first row of this group's operators in q
	res    int       // first residual
	comps  int
	dfOff  int // offset of point 0's ∂F/∂u in df; comps×ns×O per point
	dfSize int
}

func (g *group) rowOf(s, i int) int { return g.row + s*g.n + i }

func newPINN(s *Setup, c *Collocation, opt Options) (*pinn, error) {
	e := &pinn{prob: s.Problem, net: s.net, opt: opt, L: len(s.net.layers) - 1}
	for _, w := range s.net.layers {
		e.maxW = max(e.maxW, w)
	}
	e.theta = make([]float64, s.net.p)
	if err := e.SetPoints(c); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *pinn) Layout() *Layout { return &e.lay }

func (e *pinn) SetPoints(c *Collocation) error {
	p := e.prob
	if err := p.Check(c); err != nil {
		return err
	}
	e.lay = layoutOf(p, c, e.net.p)
	O := p.Outputs
	d := p.Dim
	e.groups = e.groups[:0]
	row, first, qrow, dfOff := 0, 0, 0, 0
	for b := range p.Blocks {
		def := &p.Blocks[b]
		bp := &c.Blocks[b]
		g := group{
			def:   def,
			n:     bp.Count(),
			first: first,
			row:   row,
			ns:    def.Streams.Count(),
			ngrad: len(def.Streams.Grad),
			qrow:  qrow,
			res:   e.lay.Blocks[b].Off,
			comps: def.Components,
			dfOff: dfOff,
		}
		g.x = append([]float64(nil), bp.X...)
		g.y = append([]float64(nil), bp.Y...)
		for _, op := range def.Streams.Ops {
			g.ops = append(g.ops, def.Streams.quadTerms(op, d))
		}
		g.dfSize = g.comps * g.ns * O
		row += g.ns * g.n
		first += g.n
		qrow += len(g.ops) * g.n
		dfOff += g.n * g.dfSize
		e.groups = append(e.groups, g)
	}
	e.rows, e.npts = row, first
	L := e.L
	ly := e.net.layers
	e.z = resize(e.z, e.rows*d)
	e.a = resizeAll(e.a, L+1, func(l int) int {
		if l == 0 {
			return 0
		}
		return e.rows * ly[l]
	})
	e.h = resizeAll(e.h, L, func(l int) int { return e.rows * ly[l] })
	e.h[0] = e.z
	perPoint := func(l int) int {
		if l == 0 {
			return 0
		}
		return e.npts * ly[l]
	}
	if e.net.act != Tanh {
		e.d1 = resizeAll(e.d1, L, perPoint)
		e.d2 = resizeAll(e.d2, L, perPoint)
		e.d3 = resizeAll(e.d3, L, perPoint)
	}
	e.q = resizeAll(e.q, L, func(l int) int {
		if l == 0 {
			return 0
		}
		return qrow * ly[l]
	})
	e.df = resize(e.df, dfOff)
	e.r = resize(e.r, e.lay.N)
	for p := range e.scr {
		sc := &e.scr[p]
		sc.t1, sc.t2, sc.t3 = resize(sc.t1, e.maxW), resize(sc.t2, e.maxW), resize(sc.t3, e.maxW)
		sc.tq = resize(sc.tq, e.maxW)
	}
	maxS, maxC := 1, 1
	for _, g := range e.groups {
		maxS, maxC = max(maxS, g.ns), max(maxC, g.comps)
	}
	e.u = resize(e.u, maxS*O)
	e.rr = resize(e.rr, maxC)
	for k := range e.bw {
		e.bw[k] = backBufs{}
	}
	e.bw = e.bw[:0]
	e.jA, e.jH = nil, [2][]float64{}
	e.dgA, e.dgH = nil, nil
	e.ntkA = nil
	e.fillInputs()
	return nil
}

func resizeAll(s [][]float64, n int, size func(l int) int) [][]float64 {
	if len(s) != n {
		s = make([][]float64, n)
	}
	for l := range s {
		s[l] = resize(s[l], size(l))
	}
	return s
}

// fillInputs sets the input streams z: the standardized point, the
// derivative of the standardized input along each carried coordinate
// (e_k/scale_k), and each operator applied to it (B/scale: the second-order
// part of an affine function vanishes).
func (e *pinn) fillInputs() {
	d := e.prob.Dim
	sh, sc := e.net.shift, e.net.scale
	for gi := range e.groups {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			zv := e.z[g.rowOf(0, i)*d : g.rowOf(0, i)*d+d]
			for k := 0; k < d; k++ {
				zv[k] = (g.x[i*d+k] - sh[k]) / sc[k]
			}
			for s, k := range g.def.Streams.Grad {
				zs := e.z[g.rowOf(1+s, i)*d : g.rowOf(1+s, i)*d+d]
				for j := range zs {
					zs[j] = 0
				}
				zs[k] = 1 / sc[k]
			}
			for o, op := range g.def.Streams.Ops {
				s := 1 + g.ngrad + o
				zs := e.z[g.rowOf(s, i)*d : g.rowOf(s, i)*d+d]
				for k := range zs {
					zs[k] = 0
					if op.B != nil {
						zs[k] = op.B[k] / sc[k]
					}
				}
			}
		}
	}
}

// weights returns W_l (out×in) and b_l of θ.
func (e *pinn) weights(theta []float64, l int) (w, b []float64) {
	n := e.net
	in, out := n.layers[l-1], n.layers[l]
	return theta[n.wOff[l] : n.wOff[l]+in*out], theta[n.bOff[l] : n.bOff[l]+out]
}

// linear sets A = H Wᵀ + b (b on value rows only: derivatives of a constant vanish).
func (e *pinn) linear(l int, theta, H, A []float64) {
	out := e.net.layers[l]
	w, b := e.weights(theta, l)
	e.product(l, w, H, A, false)
	for gi := range e.groups {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			r := g.rowOf(0, i) * out
			av := A[r : r+out]
			for j, bj := range b[:out] {
				av[j] += bj
			}
		}
	}
}

// smallWidth is the widest side of a layer whose products run as plain
// loops instead of BLAS calls. The input layer (d coordinates, and most
// input rows hold one nonzero) and the output layer (a few outputs) would
// otherwise be GEMMs with an inner or outer dimension of 1 or 2, which cost
// BLAS far more than their flops.
const smallWidth = 4

// product sets A = H Wᵀ over all rows (with acc, A += H Wᵀ) for layer l's
// weights w (out×in).
func (e *pinn) product(l int, w, H, A []float64, acc bool) {
	in, out := e.net.layers[l-1], e.net.layers[l]
	if in > smallWidth && out > smallWidth {
		beta := 0.0
		if acc {
			beta = 1
		}
		e.gemm(blas.NoTrans, blas.Trans, e.rows, out, in, 1, H, in, w, in, beta, A, out)
		return
	}
	e.flops += 2 * int64(e.rows) * int64(in) * int64(out)
	if in <= smallWidth {
		w = e.transposed(w, out, in)
	}
	e.split(job{kind: jobProduct, n: e.rows, l: l, x: H, y: A, w: w, cache: acc}, in+out)
}

// productRows is product over the rows [r0, r1) of a small layer; w is
// transposed (in×out) when the layer's input is small.
func (e *pinn) productRows(l int, w, H, A []float64, acc bool, r0, r1 int) {
	in, out := e.net.layers[l-1], e.net.layers[l]
	if in <= smallWidth {
		for r := r0; r < r1; r++ {
			a := A[r*out : (r+1)*out]
			set := acc // a holds a value to add to
			for k, c := range H[r*in : (r+1)*in] {
				switch {
				case c == 0:
				case set:
					axpyInto(a, c, w[k*out:(k+1)*out])
				default:
					scaleInto(a, c, w[k*out:(k+1)*out])
					set = true
				}
			}
			if !set {
				clear(a)
			}
		}
		return
	}
	for r := r0; r < r1; r++ {
		h := H[r*in : (r+1)*in]
		for o := 0; o < out; o++ {
			v := dot(h, w[o*in:(o+1)*in])
			if acc {
				A[r*out+o] += v
			} else {
				A[r*out+o] = v
			}
		}
	}
}

// inputCotangent sets H̄ = Ā W over all rows: the cotangent of layer l's
// inputs from that of its outputs.
func (e *pinn) inputCotangent(l int, w, abar, hbar []float64) {
	in, out := e.net.layers[l-1], e.net.layers[l]
	if out > smallWidth {
		e.gemm(blas.NoTrans, blas.NoTrans, e.rows, in, out, 1, abar, out, w, in, 0, hbar, in)
		return
	}
	e.flops += 2 * int64(e.rows) * int64(in) * int64(out)
	e.split(job{kind: jobInputCotangent, n: e.rows, l: l, x: abar, y: hbar, w: w}, in+out)
}

// inputCotangentRows is inputCotangent over the rows [r0, r1) of a layer
// with few outputs.
func (e *pinn) inputCotangentRows(l int, w, abar, hbar []float64, r0, r1 int) {
	in, out := e.net.layers[l-1], e.net.layers[l]
	for r := r0; r < r1; r++ {
		h := hbar[r*in : (r+1)*in]
		ar := abar[r*out : (r+1)*out]
		scaleInto(h, ar[0], w[:in])
		for o := 1; o < out; o++ {
			axpyInto(h, ar[o], w[o*in:(o+1)*in])
		}
	}
}

// weightGradient sets gw (out×in) = Σ Ā_rᵀ H_r over the rows [r0, r1).
func (e *pinn) weightGradient(l int, abar, H []float64, r0, r1 int, gw []float64) {
	in, out := e.net.layers[l-1], e.net.layers[l]
	switch {
	case in <= smallWidth:
		e.flops += 2 * int64(r1-r0) * int64(in) * int64(out)
		e.wt = resize(e.wt, in*out)
		gt := e.wt // transposed: in×out
		clear(gt)
		for r := r0; r < r1; r++ {
			ar := abar[r*out : (r+1)*out]
			for k, c := range H[r*in : (r+1)*in] {
				if c != 0 {
					axpyInto(gt[k*out:(k+1)*out], c, ar)
				}
			}
		}
		for k := 0; k < in; k++ {
			for j, v := range gt[k*out : (k+1)*out] {
				gw[j*in+k] = v
			}
		}
	case out <= smallWidth:
		e.flops += 2 * int64(r1-r0) * int64(in) * int64(out)
		clear(gw[:out*in])
		for r := r0; r < r1; r++ {
			h := H[r*in : (r+1)*in]
			for o, c := range abar[r*out : (r+1)*out] {
				if c != 0 {
					axpyInto(gw[o*in:(o+1)*in], c, h)
				}
			}
		}
	default:
		e.gemm(blas.Trans, blas.NoTrans, out, in, r1-r0, 1, abar[r0*out:r1*out], out, H[r0*in:r1*in], in, 0, gw, in)
	}
}

// transposed copies w (rows×cols) into e.wt as cols×rows.
func (e *pinn) transposed(w []float64, rows, cols int) []float64 {
	e.wt = resize(e.wt, rows*cols)
	for i := 0; i < rows; i++ {
		for k, v := range w[i*cols : (i+1)*cols] {
			e.wt[k*rows+i] = v
		}
	}
	return e.wt
}

// axpyInto sets y += a·x.
func axpyInto(y []float64, a float64, x []float64) {
	x = x[:len(y)]
	for j := range y {
		y[j] += a * x[j]
	}
}

// scaleInto sets y = a·x.
func scaleInto(y []float64, a float64, x []float64) {
	x = x[:len(y)]
	for j := range y {
		y[j] = a * x[j]
	}
}

func (e *pinn) Forward(theta, r []float64) {
	copy(e.theta, theta)
	H := e.z
	for l := 1; l <= e.L; l++ {
		e.linear(l, e.theta, H, e.a[l])
		if l == e.L {
			break
		}
		e.activate(l, e.a[l], e.h[l], true)
		H = e.h[l]
	}
	e.outputs(e.a[e.L], e.r, true)
	copy(r, e.r)
}

func (e *pinn) Residual(theta, r []float64) {
	// Two buffers suffice: A from H, then the next H over the used one.
	// After a Backward they are its cotangent buffers, free again: a probe
	// then touches less memory, and memory it has just used.
	var bufA, bufH []float64
	if len(e.bw) > 0 {
		bufA, bufH = e.bw[0].abar, e.bw[0].hbar
	} else {
		e.sa, e.sh = resize(e.sa, e.rows*e.maxW), resize(e.sh, e.rows*e.maxW)
		bufA, bufH = e.sa, e.sh
	}
	H := e.z
	for l := 1; l <= e.L; l++ {
		m := e.net.layers[l]
		A := bufA[:e.rows*m]
		e.linear(l, theta, H, A)
		if l == e.L {
			e.outputs(A, r, false)
			return
		}
		next := bufH[:e.rows*m]
		e.activate(l, A, next, false)
		H = next
	}
}

// activate applies hidden layer l's nonlinearity to all streams. With cache
// it keeps σ', σ”, σ”' and the quadratic forms for Backward and JVP.
func (e *pinn) activate(l int, A, H []float64, cache bool) {
	e.split(job{kind: jobActivate, n: e.npts, l: l, x: A, y: H, cache: cache}, e.net.layers[l]*e.rows/max(e.npts, 1))
}

// activateRange is activate over the points [lo, hi).
func (e *pinn) activateRange(l int, A, H []float64, cache bool, lo, hi int, sc *scratch) {
	m := e.net.layers[l]
	act := e.net.act
	for gi := range e.groups {
		g := &e.groups[gi]
		i0, i1 := g.pointRange(lo, hi)
		for i := i0; i < i1; i++ {
			rv := g.rowOf(0, i) * m
			d1, d2 := sc.t1[:m], sc.t2[:m]
			var d3 []float64
			if cache && act != Tanh {
				p := (g.first + i) * m
				d1, d2, d3 = e.d1[l][p:p+m], e.d2[l][p:p+m], e.d3[l][p:p+m]
			}
			act.eval(A[rv:rv+m], H[rv:rv+m], d1, d2, d3)
			for s := 1; s <= g.ngrad; s++ {
				r := g.rowOf(s, i) * m
				ak, hk := A[r:r+m], H[r:r+m]
				for j, v := range ak {
					hk[j] = d1[j] * v
				}
			}
			for o, terms := range g.ops {
				r := g.rowOf(1+g.ngrad+o, i) * m
				ap, hp := A[r:r+m], H[r:r+m]
				var qv []float64
				if cache {
					qr := (g.qrow + o*g.n + i) * m
					qv = e.q[l][qr : qr+m]
				} else {
					qv = sc.tq[:m]
				}
				quadForm(qv, terms, A, g, i, m)
				for j, v := range ap {
					hp[j] = d1[j]*v + d2[j]*qv[j]
				}
			}
		}
	}
}

// quadForm sets q = Σ_t c_t a_{s_i} ⊙ a_{s_j} over point i's stream rows of A.
func quadForm(q []float64, terms []qterm, A []float64, g *group, i, m int) {
	for j := range q {
		q[j] = 0
	}
	for _, t := range terms {
		ri, rj := g.rowOf(t.i, i)*m, g.rowOf(t.j, i)*m
		ai, aj := A[ri:ri+m], A[rj:rj+m]
		for j := range q {
			q[j] += t.c * ai[j] * aj[j]
		}
	}
}

// outputs sets r = F(u) − y from the output streams U (rows × O); with cache
// it also keeps ∂F/∂u of every point.
func (e *pinn) outputs(U, r []float64, cache bool) {
	O := e.prob.Outputs
	d := e.prob.Dim
	for gi := range e.groups {
		g := &e.groups[gi]
		u := e.u[:g.ns*O]
		rr := e.rr[:g.comps]
		for i := 0; i < g.n; i++ {
			for s := 0; s < g.ns; s++ {
				copy(u[s*O:(s+1)*O], U[g.rowOf(s, i)*O:])
			}
			x := g.x[i*d : (i+1)*d]
			g.def.F(x, u, rr)
			out := r[g.res+i*g.comps : g.res+(i+1)*g.comps]
			for c := range out {
				out[c] = rr[c] - g.y[i*g.comps+c]
			}
			if cache {
				g.def.DF(x, u, e.df[g.dfOff+i*g.dfSize:g.dfOff+(i+1)*g.dfSize])
			}
		}
	}
}

// outputCotangent sets Ā_L (rows × O) = (∂F/∂u)ᵀ v per point.
func (e *pinn) outputCotangent(v, abar []float64) {
	O := e.prob.Outputs
	for gi := range e.groups {
		g := &e.groups[gi]
		cols := g.ns * O
		for i := 0; i < g.n; i++ {
			jac := e.df[g.dfOff+i*g.dfSize : g.dfOff+(i+1)*g.dfSize]
			vi := v[g.res+i*g.comps : g.res+(i+1)*g.comps]
			for s := 0; s < g.ns; s++ {
				dst := abar[g.rowOf(s, i)*O : g.rowOf(s, i)*O+O]
				for o := range dst {
					var sum float64
					for c, vc := range vi {
						sum += vc * jac[c*cols+s*O+o]
					}
					dst[o] = sum
				}
			}
		}
	}
}

func (e *pinn) Backward(cots []Cotangent) {
	for len(e.bw) < len(cots) {
		e.bw = append(e.bw, backBufs{
			abar: make([]float64, e.rows*e.maxW),
			hbar: make([]float64, e.rows*e.maxW),
		})
	}
	for k := range cots {
		e.outputCotangent(cots[k].V, e.bw[k].abar)
	}
	for l := e.L; l >= 1; l-- {
		in, m := e.net.layers[l-1], e.net.layers[l]
		for k := range cots {
			c := &cots[k]
			abar := e.bw[k].abar[:e.rows*m]
			if c.Dst != nil {
				e.paramGrad(l, abar, 0, len(e.groups), c.Dst)
			}
			for b := range c.PerBlock {
				e.paramGrad(l, abar, b, b+1, c.PerBlock[b])
			}
			if l > 1 {
				w, _ := e.weights(e.theta, l)
				e.inputCotangent(l, w, abar, e.bw[k].hbar[:e.rows*in])
			}
		}
		if l > 1 {
			// All cotangents in one pass over the points: σ' and its
			// derivatives are computed once per point, not per cotangent.
			e.backH, e.backA = e.backH[:0], e.backA[:0]
			for k := range cots {
				e.backH = append(e.backH, e.bw[k].hbar[:e.rows*in])
				e.backA = append(e.backA, e.bw[k].abar[:e.rows*in])
			}
			e.split(job{kind: jobActivateBackward, n: e.npts, l: l - 1}, in*len(cots)*e.rows/max(e.npts, 1))
		}
	}
}

// paramGrad sets the layer-l slices of dst to the gradient of the rows of
// groups [g0, g1): ∂W = Āᵀ H over those rows, ∂b = Σ Ā over their value rows.
func (e *pinn) paramGrad(l int, abar []float64, g0, g1 int, dst []float64) {
	n := e.net
	in, m := n.layers[l-1], n.layers[l]
	r0 := e.groups[g0].row
	r1 := e.rows
	if g1 < len(e.groups) {
		r1 = e.groups[g1].row
	}
	gw := dst[n.wOff[l] : n.wOff[l]+m*in]
	gb := dst[n.bOff[l] : n.bOff[l]+m]
	if r1 == r0 {
		for i := range gw {
			gw[i] = 0
		}
		for i := range gb {
			gb[i] = 0
		}
		return
	}
	e.weightGradient(l, abar, e.h[l-1], r0, r1, gw)
	for j := range gb {
		gb[j] = 0
	}
	for gi := g0; gi < g1; gi++ {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			r := g.rowOf(0, i) * m
			for j, v := range abar[r : r+m] {
				gb[j] += v
			}
		}
	}
}

// derivs returns σ', σ” and σ”' of hidden layer l at point p, whose value
// row starts at rv, at the base point. tanh's derivatives are polynomials in
// tanh itself, which Forward keeps in the layer's value row, so they are
// computed here into sc (by the operations of Activation.eval, so the same
// bits) instead of being stored by Forward and read back; the other
// activations keep theirs.
func (e *pinn) derivs(l, p, rv int, sc *scratch) (d1, d2, d3 []float64) {
	m := e.net.layers[l]
	if e.net.act != Tanh {
		return e.d1[l][p*m : (p+1)*m], e.d2[l][p*m : (p+1)*m], e.d3[l][p*m : (p+1)*m]
	}
	d1, d2, d3 = sc.t1[:m], sc.t2[:m], sc.t3[:m]
	for j, t := range e.h[l][rv : rv+m] {
		s1 := 1 - t*t
		d1[j] = s1
		d2[j] = -2 * t * s1
		d3[j] = -2 * s1 * (s1 - 2*t*t)
	}
	return d1, d2, d3
}

// activateBackward maps the cotangent of hidden layer l's outputs (hbar)
// to that of its pre-activations (abar), through
//
//	h_v = σ(a_v), h_k = σ'(a_v) a_k, h_P = σ'(a_v) a_P + σ''(a_v) Q_P(a_k).
func (e *pinn) activateBackward(l int, hbar, abar []float64) {
	e.backH = append(e.backH[:0], hbar)
	e.backA = append(e.backA[:0], abar)
	e.split(job{kind: jobActivateBackward, n: e.npts, l: l}, e.net.layers[l]*e.rows/max(e.npts, 1))
}

// activateBackwardRange is activateBackward over the points [lo, hi), for
// each pair of cotangents in e.backH and e.backA.
func (e *pinn) activateBackwardRange(l int, lo, hi int, sc *scratch) {
	m := e.net.layers[l]
	for gi := range e.groups {
		g := &e.groups[gi]
		i0, i1 := g.pointRange(lo, hi)
		for i := i0; i < i1; i++ {
			rv := g.rowOf(0, i) * m
			d1, d2, d3 := e.derivs(l, g.first+i, rv, sc)
			for k, hbar := range e.backH {
				e.activateBackwardPoint(l, g, i, d1, d2, d3, hbar, e.backA[k])
			}
		}
	}
}

// activateBackwardPoint is activateBackward at point i of group g.
func (e *pinn) activateBackwardPoint(l int, g *group, i int, d1, d2, d3, hbar, abar []float64) {
	m := e.net.layers[l]
	A := e.a[l]
	rv := g.rowOf(0, i) * m
	hv, av := hbar[rv:rv+m], abar[rv:rv+m]
	for j, v := range hv {
		av[j] = d1[j] * v
	}
	for s := 1; s <= g.ngrad; s++ {
		r := g.rowOf(s, i) * m
		hk, ak, xk := hbar[r:r+m], abar[r:r+m], A[r:r+m]
		for j, v := range hk {
			ak[j] = d1[j] * v
			av[j] += d2[j] * v * xk[j]
		}
	}
	for o, terms := range g.ops {
		r := g.rowOf(1+g.ngrad+o, i) * m
		hp, ap, xp := hbar[r:r+m], abar[r:r+m], A[r:r+m]
		qr := (g.qrow + o*g.n + i) * m
		qv := e.q[l][qr : qr+m]
		for j, v := range hp {
			ap[j] = d1[j] * v
			av[j] += d2[j]*v*xp[j] + d3[j]*v*qv[j]
		}
		for _, t := range terms {
			ri, rj := g.rowOf(t.i, i)*m, g.rowOf(t.j, i)*m
			ai, aj := abar[ri:ri+m], abar[rj:rj+m]
			xi, xj := A[ri:ri+m], A[rj:rj+m]
			for j, v := range hp {
				w := d2[j] * v * t.c
				ai[j] += w * xj[j]
				aj[j] += w * xi[j]
			}
		}
	}
}

func (e *pinn) JVP(w, dst []float64) {
	if e.jA == nil {
		e.jA = make([]float64, e.rows*e.maxW)
		e.jH[0] = make([]float64, e.rows*e.maxW)
		e.jH[1] = make([]float64, e.rows*e.maxW)
	}
	var dH []float64
	for l := 1; l <= e.L; l++ {
		m := e.net.layers[l]
		dA := e.jA[:e.rows*m]
		e.linear(l, w, e.h[l-1], dA) // H dWᵀ + db
		if l > 1 {
			wl, _ := e.weights(e.theta, l)
			e.product(l, wl, dH, dA, true)
		}
		if l == e.L {
			break
		}
		next := e.jH[l%2][:e.rows*m]
		e.activateJVP(l, dA, next)
		dH = next
	}
	e.outputTangent(e.jA[:e.rows*e.prob.Outputs], dst)
}

// activateJVP maps a tangent of hidden layer l's pre-activations (da) to
// that of its outputs (dh).
func (e *pinn) activateJVP(l int, da, dh []float64) {
	e.split(job{kind: jobActivateJVP, n: e.npts, l: l, x: da, y: dh}, e.net.layers[l]*e.rows/max(e.npts, 1))
}

// activateJVPRange is activateJVP over the points [lo, hi).
func (e *pinn) activateJVPRange(l int, da, dh []float64, lo, hi int, sc *scratch) {
	m := e.net.layers[l]
	A := e.a[l]
	for gi := range e.groups {
		g := &e.groups[gi]
		i0, i1 := g.pointRange(lo, hi)
		for i := i0; i < i1; i++ {
			rv := g.rowOf(0, i) * m
			d1, d2, d3 := e.derivs(l, g.first+i, rv, sc)
			dav, dhv := da[rv:rv+m], dh[rv:rv+m]
			for j, v := range dav {
				dhv[j] = d1[j] * v
			}
			for s := 1; s <= g.ngrad; s++ {
				r := g.rowOf(s, i) * m
				dak, dhk, xk := da[r:r+m], dh[r:r+m], A[r:r+m]
				for j, v := range dak {
					dhk[j] = d1[j]*v + d2[j]*dav[j]*xk[j]
				}
			}
			for o, terms := range g.ops {
				r := g.rowOf(1+g.ngrad+o, i) * m
				dap, dhp, xp := da[r:r+m], dh[r:r+m], A[r:r+m]
				qr := (g.qrow + o*g.n + i) * m
				qv := e.q[l][qr : qr+m]
				for j, v := range dap {
					dhp[j] = d1[j]*v + d2[j]*dav[j]*xp[j] + d3[j]*dav[j]*qv[j]
				}
				for _, t := range terms {
					ri, rj := g.rowOf(t.i, i)*m, g.rowOf(t.j, i)*m
					dai, daj := da[ri:ri+m], da[rj:rj+m]
					xi, xj := A[ri:ri+m], A[rj:rj+m]
					for j := range dhp {
						dhp[j] += d2[j] * t.c * (dai[j]*xj[j] + xi[j]*daj[j])
					}
				}
			}
		}
	}
}

// outputTangent sets dr = (∂F/∂u) du per point from the output tangents du (rows × O).
func (e *pinn) outputTangent(du, dr []float64) {
	O := e.prob.Outputs
	for gi := range e.groups {
		g := &e.groups[gi]
		cols := g.ns * O
		for i := 0; i < g.n; i++ {
			jac := e.df[g.dfOff+i*g.dfSize : g.dfOff+(i+1)*g.dfSize]
			for c := 0; c < g.comps; c++ {
				var sum float64
				for s := 0; s < g.ns; s++ {
					row := du[g.rowOf(s, i)*O : g.rowOf(s, i)*O+O]
					for o, v := range row {
						sum += jac[c*cols+s*O+o] * v
					}
				}
				dr[g.res+i*g.comps+c] = sum
			}
		}
	}
}

// componentCotangent sets Ā_L for the residuals of component c at every
// point: row c of ∂F/∂u; zero at points of blocks with fewer components.
func (e *pinn) componentCotangent(c int, abar []float64) {
	O := e.prob.Outputs
	for gi := range e.groups {
		g := &e.groups[gi]
		cols := g.ns * O
		for i := 0; i < g.n; i++ {
			jac := e.df[g.dfOff+i*g.dfSize : g.dfOff+(i+1)*g.dfSize]
			for s := 0; s < g.ns; s++ {
				dst := abar[g.rowOf(s, i)*O : g.rowOf(s, i)*O+O]
				for o := range dst {
					if c < g.comps {
						dst[o] = jac[c*cols+s*O+o]
					} else {
						dst[o] = 0
					}
				}
			}
		}
	}
}

func (e *pinn) maxComps() int {
	c := 1
	for _, g := range e.groups {
		c = max(c, g.comps)
	}
	return c
}

// Diagonal computes K_ii = ‖∇R_i‖² without any per-residual backward pass.
// A residual depends only on its own point's rows, so one backward pass per
// component (cotangent: that component at every point) yields every
// residual's own cotangents Ā. The gradient of R_i with respect to W_l is
// Σ_s Ā_{i,s} ⊗ H_{i,s} over the point's streams s, whose squared norm is
// Σ_{s,s'} (Ā_{i,s}·Ā_{i,s'})(H_{i,s}·H_{i,s'}); b_l adds ‖Ā_{i,value}‖².
func (e *pinn) Diagonal(dst []float64) {
	if e.dgA == nil {
		e.dgA = make([]float64, e.rows*e.maxW)
		e.dgH = make([]float64, e.rows*e.maxW)
	}
	for i := range dst[:e.lay.N] {
		dst[i] = 0
	}
	for c := 0; c < e.maxComps(); c++ {
		abar := e.dgA[:e.rows*e.prob.Outputs]
		e.componentCotangent(c, abar)
		for l := e.L; l >= 1; l-- {
			in, m := e.net.layers[l-1], e.net.layers[l]
			abar = e.dgA[:e.rows*m]
			H := e.h[l-1]
			for gi := range e.groups {
				g := &e.groups[gi]
				if c >= g.comps {
					continue
				}
				for i := 0; i < g.n; i++ {
					var sum float64
					for s := 0; s < g.ns; s++ {
						rs := g.rowOf(s, i)
						as, hs := abar[rs*m:rs*m+m], H[rs*in:rs*in+in]
						sum += dot(as, as) * dot(hs, hs)
						for t := s + 1; t < g.ns; t++ {
							rt := g.rowOf(t, i)
							sum += 2 * dot(as, abar[rt*m:rt*m+m]) * dot(hs, H[rt*in:rt*in+in])
						}
					}
					r0 := g.rowOf(0, i) * m
					sum += dot(abar[r0:r0+m], abar[r0:r0+m])
					dst[g.res+i*g.comps+c] += sum
				}
			}
			if l > 1 {
				hbar := e.dgH[:e.rows*in]
				w, _ := e.weights(e.theta, l)
				e.inputCotangent(l, w, abar, hbar)
				e.activateBackward(l-1, hbar, e.dgA[:e.rows*in])
			}
		}
	}
}

// ntkWorkBytes is the work memory NTK needs beyond its n×n result.
func (e *pinn) ntkWorkBytes() int64 {
	var cols int64
	for l := 1; l <= e.L; l++ {
		cols += int64(e.net.layers[l])
	}
	maxN := 0
	for _, g := range e.groups {
		maxN = max(maxN, g.n)
	}
	C := int64(e.maxComps())
	return 8 * (C*int64(e.rows)*cols + 2*int64(maxN)*int64(maxN))
}

// NTK computes K = J Jᵀ exactly without forming J. With the per-residual
// cotangents of Diagonal kept for every layer, the W_l part of K between
// residuals i and j is Σ_{s,s'} (Ā_{i,s}·Ā_{j,s'})(H_{i,s}·H_{j,s'}): for each
// pair of (block, stream) row groups one GEMM of cotangents and one of
// inputs give a tile whose elementwise product adds into K.
func (e *pinn) NTK(dst []float64) error {
	n := e.lay.N
	need := e.ntkWorkBytes() + 8*int64(n)*int64(n)
	if need > e.opt.MaxMemory {
		return fmt.Errorf("exact NTK of %d residuals needs %s of memory, over the limit of %s: use fewer collocation points or raise the limit", n, formatBytes(need), formatBytes(e.opt.MaxMemory))
	}
	e.cotangents()
	maxN := 0
	for _, g := range e.groups {
		maxN = max(maxN, g.n)
	}
	e.tile[0] = resize(e.tile[0], maxN*maxN)
	e.tile[1] = resize(e.tile[1], maxN*maxN)
	K := dst[:n*n]
	for i := range K {
		K[i] = 0
	}
	for l := 1; l <= e.L; l++ {
		in, m := e.net.layers[l-1], e.net.layers[l]
		H := e.h[l-1]
		for ga := range e.groups {
			g := &e.groups[ga]
			for gb := ga; gb < len(e.groups); gb++ {
				h := &e.groups[gb]
				if g.n == 0 || h.n == 0 {
					continue
				}
				tH, tA := e.tile[0][:g.n*h.n], e.tile[1][:g.n*h.n]
				for s := 0; s < g.ns; s++ {
					for t := 0; t < h.ns; t++ {
						rs, rt := g.rowOf(s, 0), h.rowOf(t, 0)
						e.gemm(blas.NoTrans, blas.Trans, g.n, h.n, in, 1, H[rs*in:(rs+g.n)*in], in, H[rt*in:(rt+h.n)*in], in, 0, tH, h.n)
						if s == 0 && t == 0 {
							for k := range tH {
								tH[k]++ // bias: ∂a_v/∂b = 1
							}
						}
						for c := 0; c < g.comps; c++ {
							for cc := 0; cc < h.comps; cc++ {
								Ac, Acc := e.ntkA[c][l], e.ntkA[cc][l]
								e.gemm(blas.NoTrans, blas.Trans, g.n, h.n, m, 1, Ac[rs*m:(rs+g.n)*m], m, Acc[rt*m:(rt+h.n)*m], m, 0, tA, h.n)
								for i := 0; i < g.n; i++ {
									krow := K[(g.res+i*g.comps+c)*n:]
									ta, th := tA[i*h.n:(i+1)*h.n], tH[i*h.n:(i+1)*h.n]
									for j := range ta {
										krow[h.res+j*h.comps+cc] += ta[j] * th[j]
									}
								}
							}
						}
					}
				}
			}
		}
	}
	// Diagonal blocks hold both (s,t) and (t,s) tiles, which round
	// differently: average them so K is exactly symmetric. Blocks below the
	// diagonal mirror those above.
	for ga := range e.groups {
		g := &e.groups[ga]
		for i := g.res; i < g.res+g.n*g.comps; i++ {
			for j := i + 1; j < g.res+g.n*g.comps; j++ {
				v := (K[i*n+j] + K[j*n+i]) / 2
				K[i*n+j], K[j*n+i] = v, v
			}
		}
	}
	for ga := range e.groups {
		for gb := 0; gb < ga; gb++ {
			g, h := &e.groups[ga], &e.groups[gb]
			for i := g.res; i < g.res+g.n*g.comps; i++ {
				for j := h.res; j < h.res+h.n*h.comps; j++ {
					K[i*n+j] = K[j*n+i]
				}
			}
		}
	}
	return nil
}

// gemm is blas64's Dgemm, counted in e.flops.
func (e *pinn) gemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	e.flops += 2 * int64(m) * int64(n) * int64(k)
	blas64.Implementation().Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Flops is the count of floating-point operations (a multiply-add counts
// two) that the evaluator's matrix products have done since it was made.
func (e *pinn) Flops() int64 { return e.flops }

// dot is Σ a_j b_j with four running sums, a loop the compiler keeps inline
// (a BLAS call per 500-long row costs more than the row).
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(a); j += 4 {
		s0 += a[j] * b[j]
		s1 += a[j+1] * b[j+1]
		s2 += a[j+2] * b[j+2]
		s3 += a[j+3] * b[j+3]
	}
	for ; j < len(a); j++ {
		s0 += a[j] * b[j]
	}
	return (s0 + s1) + (s2 + s3)
}

func formatBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", b)
	}
}

// Flops returns the floating-point operations (a multiply-add counts two)
// that ev's matrix products have performed since it was made, for
// benchmarks that report the work beside the time; ok is false for an
// evaluator that does not count them.
func Flops(ev Evaluator) (n int64, ok bool) {
	if e, is := ev.(*pinn); is {
		return e.flops, true
	}
	return 0, false
}
