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
	d1, d2, d3 [][]float64 // σ', σ'', σ''' at the value rows, npts × m_l
	q          [][]float64 // quadratic forms of the operators, opRows × m_l
	df         []float64   // ∂F/∂u per point
	r          []float64   // R at the base point

	// Scratch for Residual.
	sa     []float64
	sh     [2][]float64
	t1, t2 []float64 // σ', σ'' of one point
	tq     []float64 // one quadratic form
	u, rr  []float64 // one point's output streams and residual components

	bw   []backBufs    // per cotangent of Backward
	jA   []float64     // JVP tangents
	jH   [2][]float64  //
	dgA  []float64     // Diagonal cotangents
	dgH  []float64     //
	ntkA [][][]float64 // NTK, Columns: Ā of component c at layer l (see cotangents)
	tile [2][]float64  // NTK tiles

	ntkAt                    []float64 // θ at which ntkA was computed
	colA, colH, colTA, colTH []float64 // Columns: gathered rows and tiles
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
	e.d1 = resizeAll(e.d1, L, perPoint)
	e.d2 = resizeAll(e.d2, L, perPoint)
	e.d3 = resizeAll(e.d3, L, perPoint)
	e.q = resizeAll(e.q, L, func(l int) int {
		if l == 0 {
			return 0
		}
		return qrow * ly[l]
	})
	e.df = resize(e.df, dfOff)
	e.r = resize(e.r, e.lay.N)
	e.sa = resize(e.sa, e.rows*e.maxW)
	e.sh[0] = resize(e.sh[0], e.rows*e.maxW)
	e.sh[1] = resize(e.sh[1], e.rows*e.maxW)
	e.t1 = resize(e.t1, e.maxW)
	e.t2 = resize(e.t2, e.maxW)
	e.tq = resize(e.tq, e.maxW)
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
	in, out := e.net.layers[l-1], e.net.layers[l]
	w, b := e.weights(theta, l)
	blas64.Implementation().Dgemm(blas.NoTrans, blas.Trans, e.rows, out, in, 1, H, in, w, in, 0, A, out)
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
	H := e.z
	for l := 1; l <= e.L; l++ {
		m := e.net.layers[l]
		A := e.sa[:e.rows*m]
		e.linear(l, theta, H, A)
		if l == e.L {
			e.outputs(A, r, false)
			return
		}
		next := e.sh[l%2][:e.rows*m]
		e.activate(l, A, next, false)
		H = next
	}
}

// activate applies hidden layer l's nonlinearity to all streams. With cache
// it keeps σ', σ”, σ”' and the quadratic forms for Backward and JVP.
func (e *pinn) activate(l int, A, H []float64, cache bool) {
	m := e.net.layers[l]
	act := e.net.act
	for gi := range e.groups {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			rv := g.rowOf(0, i) * m
			var d1, d2, d3 []float64
			if cache {
				p := (g.first + i) * m
				d1, d2, d3 = e.d1[l][p:p+m], e.d2[l][p:p+m], e.d3[l][p:p+m]
			} else {
				d1, d2 = e.t1[:m], e.t2[:m]
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
					qv = e.tq[:m]
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
				hbar := e.bw[k].hbar[:e.rows*in]
				w, _ := e.weights(e.theta, l)
				blas64.Implementation().Dgemm(blas.NoTrans, blas.NoTrans, e.rows, in, m, 1, abar, m, w, in, 0, hbar, in)
				e.activateBackward(l-1, hbar, e.bw[k].abar[:e.rows*in])
			}
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
	blas64.Implementation().Dgemm(blas.Trans, blas.NoTrans, m, in, r1-r0, 1, abar[r0*m:r1*m], m, e.h[l-1][r0*in:r1*in], in, 0, gw, in)
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

// activateBackward maps the cotangent of hidden layer l's outputs (hbar)
// to that of its pre-activations (abar), through
//
//	h_v = σ(a_v), h_k = σ'(a_v) a_k, h_P = σ'(a_v) a_P + σ''(a_v) Q_P(a_k).
func (e *pinn) activateBackward(l int, hbar, abar []float64) {
	m := e.net.layers[l]
	A := e.a[l]
	for gi := range e.groups {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			p := (g.first + i) * m
			d1, d2, d3 := e.d1[l][p:p+m], e.d2[l][p:p+m], e.d3[l][p:p+m]
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
		in, m := e.net.layers[l-1], e.net.layers[l]
		dA := e.jA[:e.rows*m]
		e.linear(l, w, e.h[l-1], dA) // H dWᵀ + db
		if l > 1 {
			wl, _ := e.weights(e.theta, l)
			blas64.Implementation().Dgemm(blas.NoTrans, blas.Trans, e.rows, m, in, 1, dH, in, wl, in, 1, dA, m)
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
	m := e.net.layers[l]
	A := e.a[l]
	for gi := range e.groups {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			p := (g.first + i) * m
			d1, d2, d3 := e.d1[l][p:p+m], e.d2[l][p:p+m], e.d3[l][p:p+m]
			rv := g.rowOf(0, i) * m
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
				blas64.Implementation().Dgemm(blas.NoTrans, blas.NoTrans, e.rows, in, m, 1, abar, m, w, in, 0, hbar, in)
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
	impl := blas64.Implementation()
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
						impl.Dgemm(blas.NoTrans, blas.Trans, g.n, h.n, in, 1, H[rs*in:(rs+g.n)*in], in, H[rt*in:(rt+h.n)*in], in, 0, tH, h.n)
						if s == 0 && t == 0 {
							for k := range tH {
								tH[k]++ // bias: ∂a_v/∂b = 1
							}
						}
						for c := 0; c < g.comps; c++ {
							for cc := 0; cc < h.comps; cc++ {
								Ac, Acc := e.ntkA[c][l], e.ntkA[cc][l]
								impl.Dgemm(blas.NoTrans, blas.Trans, g.n, h.n, m, 1, Ac[rs*m:(rs+g.n)*m], m, Acc[rt*m:(rt+h.n)*m], m, 0, tA, h.n)
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

func dot(a, b []float64) float64 {
	return blas64.Implementation().Ddot(len(a), a, 1, b, 1)
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
