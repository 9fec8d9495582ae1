package model

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
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
	uo     []float64         // Residual's output rows (rows × O)
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

	wt       []float64   // a small layer's weights transposed, or its gradient
	gk       [][]float64 // the pieces of cut weight gradients after the first
	batch    gemmBatch   // the products queued to run together (see gemm.go)
	batching bool        // gemmCut and blockGrads queue their products
	cutFlops int64       // products of this many flops and more are cut (minGEMMCut)
	chunks   []int       // first point of each chunk of points, then npts (see chunkPoints)
	sums     sumPlan     // what the running backward pass sums per chunk
	part     [][]float64 // per cotangent, each chunk's sums
	flops    int64       // floating-point operations of the matrix products so far (see Flops)
	job      job         // the element-wise work being split (see split)
	help     *helpers

	kernelsOnly bool // tests: the backward pass one kernel at a time (see fusedShape)
}

// backBufs are one cotangent's buffers: Ā and H̄ of a layer, and Ā_L of
// the output layer (rows × O).
type backBufs struct{ abar, hbar, out []float64 }

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
	chunk0 int        // index of its first chunk of points (see chunkPoints)
	fused  fusedShape // its backward pass as one loop per point, when ok
}

func (g *group) rowOf(s, i int) int { return g.row + s*g.n + i }

func newPINN(s *Setup, c *Collocation, opt Options) (*pinn, error) {
	e := &pinn{prob: s.Problem, net: s.net, opt: opt, L: len(s.net.layers) - 1, cutFlops: minGEMMCut}
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
		g.fused = fusedShapeOf(&g)
		g.dfSize = g.comps * g.ns * O
		row += g.ns * g.n
		first += g.n
		qrow += len(g.ops) * g.n
		dfOff += g.n * g.dfSize
		e.groups = append(e.groups, g)
	}
	e.rows, e.npts = row, first
	e.chunks = e.chunks[:0]
	for gi := range e.groups {
		g := &e.groups[gi]
		g.chunk0 = len(e.chunks)
		for i := 0; i < g.n; i += chunkPoints {
			e.chunks = append(e.chunks, g.first+i)
		}
	}
	e.chunks = append(e.chunks, e.npts)
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
	maxS, maxC := 1, 1
	for _, g := range e.groups {
		maxS, maxC = max(maxS, g.ns), max(maxC, g.comps)
	}
	for p := range e.scr {
		sc := &e.scr[p]
		sc.t1, sc.t2, sc.t3 = resize(sc.t1, e.maxW), resize(sc.t2, e.maxW), resize(sc.t3, e.maxW)
		sc.tq = resize(sc.tq, e.maxW)
		sc.a, sc.h = resize(sc.a, maxS*e.maxW), resize(sc.h, maxS*e.maxW)
		sc.rowsA, sc.rowsH, sc.rowsX = make([][]float64, maxS), make([][]float64, maxS), make([][]float64, maxS)
	}
	e.uo = resize(e.uo, e.rows*ly[L])
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
		e.gemmCut(mmArgs{tA: blas.NoTrans, tB: blas.Trans, m: e.rows, n: out, k: in, a: H, lda: in, b: w, ldb: in, beta: beta, c: A, ldc: out})
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
			combineRows(A[r*out:(r+1)*out], H[r*in:(r+1)*in], w, acc)
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
		e.gemmCut(mmArgs{tA: blas.NoTrans, tB: blas.NoTrans, m: e.rows, n: in, k: out, a: abar, lda: out, b: w, ldb: in, c: hbar, ldc: in})
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

// weightGradient sets gw (out×in) = Σ Ā_rᵀ H_r over the rows [r0, r1); a
// large GEMM is cut into pieces (gemmCut).
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
		e.gemmCut(mmArgs{tA: blas.Trans, tB: blas.NoTrans, m: out, n: in, k: r1 - r0, a: abar[r0*out : r1*out], lda: out, b: H[r0*in : r1*in], ldb: in, c: gw, ldc: in, sumK: true})
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

// fusedIn reports whether the input layer's product is computed per point
// inside the first activation pass (a few input coordinates: the rows of
// its pre-activations are a few scaled rows of W_1ᵀ, cheaper to make where
// they are used than to write out and read back).
func (e *pinn) fusedIn() bool { return e.L > 1 && e.net.layers[0] <= smallWidth }

// fusedOut reports whether the output layer's product is computed per point
// inside the last activation pass (a few outputs: a few dot products per
// row, from the row just computed instead of from memory), and its input
// cotangent inside the first backward activation pass.
func (e *pinn) fusedOut() bool { return e.L > 1 && e.net.layers[e.L] <= smallWidth }

func (e *pinn) Forward(theta, r []float64) {
	copy(e.theta, theta)
	e.forward(e.theta, e.r, true)
	copy(r, e.r)
}

func (e *pinn) Residual(theta, r []float64) {
	e.forward(theta, r, false)
}

// forward sets r = R(θ). With cache (Forward) it keeps every layer's
// pre-activations and inputs, the quadratic forms and ∂F/∂u for Backward,
// JVP and the kernels; without (Residual) it needs only two layer-sized
// buffers, used in turn: A from H into the other one, then H over A in
// place. After a Backward those are its cotangent buffers, free again: a
// probe then touches less memory, and memory it has just used.
func (e *pinn) forward(theta, r []float64, cache bool) {
	L, ly := e.L, e.net.layers
	var bufA, bufH []float64
	if !cache {
		if len(e.bw) > 0 {
			bufA, bufH = e.bw[0].abar, e.bw[0].hbar
		} else {
			e.sa, e.sh = resize(e.sa, e.rows*e.maxW), resize(e.sh, e.rows*e.maxW)
			bufA, bufH = e.sa, e.sh
		}
	}
	U := e.uo
	if cache {
		U = e.a[L]
	}
	H := e.z
	for l := 1; l < L; l++ {
		m := ly[l]
		j := job{kind: jobActivate, n: e.npts, l: l, theta: theta, cache: cache}
		if cache {
			j.x, j.y = e.a[l], e.h[l]
		} else {
			// A into the buffer that does not hold H, then the
			// activation in place: its writes find their lines in cache.
			X := bufA[:e.rows*m]
			if l%2 == 0 {
				X = bufH[:e.rows*m]
			}
			j.x, j.y = X, X
		}
		w, _ := e.weights(theta, l)
		if l == 1 && e.fusedIn() {
			e.flops += 2 * int64(e.rows) * int64(ly[0]) * int64(m)
			j.w = e.transposed(w, m, ly[0])
			if !cache {
				j.x = nil // the point's rows in scratch
			}
		} else {
			e.product(l, w, H, j.x, false)
		}
		H = j.y
		if l == L-1 && e.fusedOut() {
			e.flops += 2 * int64(e.rows) * int64(m) * int64(ly[L])
			j.out = U
			if !cache {
				j.y = nil
			}
		}
		e.split(j, m*e.rows/max(e.npts, 1))
	}
	if !e.fusedOut() {
		e.linear(L, theta, H, U)
	}
	e.outputs(U, r, cache)
}

// activateRange is a hidden layer's activation pass over the points
// [lo, hi): job.x holds the layer's pre-activations H Wᵀ without the bias
// (nil: the point's rows are made in scratch), or with job.w (W_1ᵀ) they
// are first made from the input streams; job.y receives the outputs (nil:
// scratch), and with job.out the output layer follows per point.
func (e *pinn) activateRange(j *job, lo, hi int, sc *scratch) {
	l := j.l
	m := e.net.layers[l]
	_, b := e.weights(j.theta, l)
	for gi := range e.groups {
		g := &e.groups[gi]
		i0, i1 := g.pointRange(lo, hi)
		as, hs := sc.rowsA[:g.ns], sc.rowsH[:g.ns]
		for i := i0; i < i1; i++ {
			for s := range g.ns {
				r := g.rowOf(s, i) * m
				if j.x != nil {
					as[s] = j.x[r : r+m]
				} else {
					as[s] = sc.a[s*m : (s+1)*m]
				}
				if j.y != nil {
					hs[s] = j.y[r : r+m]
				} else {
					hs[s] = sc.h[s*m : (s+1)*m]
				}
			}
			if j.w != nil {
				e.inputRows(g, i, j.w, as)
			}
			e.activatePoint(l, g, i, as, hs, b, j.cache, sc)
			if j.out != nil {
				e.outputRows(g, i, j.theta, hs, j.out)
			}
		}
	}
}

// combineRows sets a to Σ_k c[k]·w[k-th row of len(a)] (added to a's value
// when acc), skipping zero coefficients, in one fixed order: productRows
// and inputRows share it, so their rows are the same bits.
func combineRows(a, c, w []float64, acc bool) {
	m := len(a)
	set := acc // a holds a value to add to
	for k, ck := range c {
		switch {
		case ck == 0:
		case set:
			axpyInto(a, ck, w[k*m:(k+1)*m])
		default:
			scaleInto(a, ck, w[k*m:(k+1)*m])
			set = true
		}
	}
	if !set {
		clear(a)
	}
}

// inputRows sets the pre-activation rows as of point i of group g from its
// input streams and wt = W_1ᵀ (in×m), without the bias; the operations of
// productRows, so the same bits.
func (e *pinn) inputRows(g *group, i int, wt []float64, as [][]float64) {
	in := e.net.layers[0]
	m := len(as[0])
	for s, a := range as {
		r := g.rowOf(s, i)
		combineRows(a, e.z[r*in:(r+1)*in], wt[:in*m], false)
	}
}

// activatePoint applies hidden layer l's nonlinearity to the streams of
// point i of group g, from the pre-activations as (value row without the
// bias b) into hs:
//
//	h_v = σ(a_v + b), h_k = σ'(a_v) a_k, h_P = σ'(a_v) a_P + σ''(a_v) Q_P(a_k).
//
// With cache the value row keeps a_v + b, and the quadratic forms (and the
// derivatives of activations other than tanh) are kept for Backward and JVP.
func (e *pinn) activatePoint(l int, g *group, i int, as, hs [][]float64, b []float64, cache bool, sc *scratch) {
	m := len(as[0])
	d1, d2 := sc.t1[:m], sc.t2[:m]
	if act := e.net.act; act == Tanh {
		tanhBias(hs[0], as[0], b, cache)
		switch {
		case len(g.ops) > 0:
			tanhD12(d1, d2, hs[0])
		case g.ns > 1:
			tanhD1(d1, hs[0])
		}
	} else {
		addInto(as[0], b)
		var d3 []float64
		if cache {
			p := (g.first + i) * m
			d1, d2, d3 = e.d1[l][p:p+m], e.d2[l][p:p+m], e.d3[l][p:p+m]
		}
		act.eval(as[0], hs[0], d1, d2, d3)
	}
	// The operators first: their quadratic forms read the derivative
	// rows, which a pass in place (hs = as) then overwrites.
	for o, terms := range g.ops {
		q := sc.tq[:m]
		if cache {
			r := (g.qrow + o*g.n + i) * m
			q = e.q[l][r : r+m]
		}
		if len(terms) == 0 {
			clear(q)
		}
		for t, term := range terms {
			quadInto(q, term.c, as[term.i], as[term.j], t == 0)
		}
		P := 1 + g.ngrad + o
		mul2Into(hs[P], d1, as[P], d2, q)
	}
	for s := 1; s <= g.ngrad; s++ {
		mulInto(hs[s], d1, as[s])
	}
}

// outputRows sets point i's rows of U (rows × O) from its last hidden rows
// hs: U = H W_Lᵀ + b_L (b on the value row), the operations of productRows
// and linear, so the same bits.
func (e *pinn) outputRows(g *group, i int, theta []float64, hs [][]float64, U []float64) {
	O, in := e.net.layers[e.L], e.net.layers[e.L-1]
	w, b := e.weights(theta, e.L)
	for s, h := range hs {
		r := g.rowOf(s, i) * O
		for o := range O {
			v := dot(h, w[o*in:(o+1)*in])
			if s == 0 {
				v += b[o]
			}
			U[r+o] = v
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
	L, ly := e.L, e.net.layers
	top := e.fusedOut()
	for len(e.bw) < len(cots) {
		e.bw = append(e.bw, backBufs{
			abar: make([]float64, e.rows*e.maxW),
			hbar: make([]float64, e.rows*e.maxW),
			out:  make([]float64, e.rows*ly[L]),
		})
	}
	for k := range cots {
		e.outputCotangent(cots[k].V, e.bw[k].out)
	}
	// Ā of a hidden layer is in each cotangent's abar buffer (inA) or its
	// hbar buffer: H̄ of the layer below goes to the other one, and the
	// backward pass maps it to Ā in place.
	inA := true
	cur := func(k int) (abar, other []float64) {
		if inA {
			return e.bw[k].abar, e.bw[k].hbar
		}
		return e.bw[k].hbar, e.bw[k].abar
	}
	for l := L; l >= 1; l-- {
		in, m := ly[l-1], ly[l]
		// The small layers' weight gradients and every hidden bias are sums
		// over points that the backward passes below add up per chunk of
		// points, from the rows they have just made; the others are GEMMs.
		summed := (l == L && top) || (l == 1 && e.fusedIn())
		// The layer's products for all cotangents run as one batch.
		e.batching = true
		for k := range cots {
			c := &cots[k]
			abar, other := cur(k)
			abar = abar[:e.rows*m]
			if l == L {
				abar, other = e.bw[k].out, e.bw[k].hbar
			}
			if !summed {
				if c.Dst != nil {
					e.paramGrad(l, abar, 0, len(e.groups), c.Dst)
				}
				e.blockGrads(l, abar, c.PerBlock)
			}
			if l > 1 && !(l == L && top) {
				w, _ := e.weights(e.theta, l)
				e.inputCotangent(l, w, abar, other[:e.rows*in])
			}
		}
		e.batching = false
		e.runBatch()
		if l == 1 {
			break
		}
		// All cotangents in one pass over the points: σ' and its
		// derivatives are computed once per point, not per cotangent.
		j := job{kind: jobActivateBackward, n: len(e.chunks) - 1, l: l - 1, sums: true}
		e.backH, e.backA = e.backH[:0], e.backA[:0]
		for k := range cots {
			if l == L && top {
				e.backH = append(e.backH, e.bw[k].out)
				e.backA = append(e.backA, e.bw[k].abar[:e.rows*in])
				continue
			}
			_, other := cur(k)
			if l == L {
				other = e.bw[k].hbar
			}
			e.backH = append(e.backH, other[:e.rows*in])
			e.backA = append(e.backA, other[:e.rows*in])
		}
		if l == L && top {
			// With few outputs the top layer's input cotangent Ā_L W_L is
			// made per point inside the pass.
			e.flops += 2 * int64(len(cots)) * int64(e.rows) * int64(in) * int64(m)
			j.w, _ = e.weights(e.theta, l)
		}
		e.planSums(l-1, len(cots), l == L && top)
		e.split(j, chunkPoints*in*len(cots)*e.rows/max(e.npts, 1))
		switch {
		case l == L && top:
			inA = true
		case l == L:
			inA = false
		default:
			inA = !inA
		}
		for k := range cots {
			c := &cots[k]
			if c.Dst != nil {
				e.reduceSums(k, 0, len(e.groups), c.Dst)
			}
			for b := range c.PerBlock {
				e.reduceSums(k, b, b+1, c.PerBlock[b])
			}
		}
	}
}

// chunkPoints is the number of points whose contributions to a sum over
// points a backward pass adds up first (within a group, in point order);
// the chunks' sums are then added in chunk order. The chunks are fixed by
// the points alone, so the sums are the same bits on any number of threads.
const chunkPoints = 16

// sumPlan is what the backward pass being run adds up per chunk: the
// bias gradient of its layer l, and, at the offsets w1 and wL (−1: not),
// W_1's gradient (when l is the first layer and its input is small) and
// W_L's and b_L's (when the output layer is small and l is the last
// hidden layer). size is the length of one chunk's sums.
type sumPlan struct {
	l            int
	w1, wL, bL   int
	size         int
	m, in0, outO int
}

// planSums sets e.sums for the backward pass of hidden layer l with cots
// cotangents, and sizes the chunk sums.
func (e *pinn) planSums(l, cots int, top bool) {
	ly := e.net.layers
	m := ly[l]
	p := sumPlan{l: l, w1: -1, wL: -1, bL: -1, size: m, m: m}
	if l == 1 && e.fusedIn() {
		p.w1, p.in0 = p.size, ly[0]
		p.size += ly[0] * m
	}
	if top {
		p.wL, p.outO = p.size, ly[e.L]
		p.size += ly[e.L] * m
		p.bL = p.size
		p.size += ly[e.L]
	}
	e.sums = p
	for len(e.part) < cots {
		e.part = append(e.part, nil)
	}
	for k := range cots {
		e.part[k] = resize(e.part[k], (len(e.chunks)-1)*p.size)
	}
}

// addSums adds point i of group g to its chunk's sums for cotangent k: as
// are the point's pre-activation cotangent rows at the pass's layer, out
// the output layer's cotangents Ā_L (rows × O) for W_L and b_L.
func (e *pinn) addSums(k int, g *group, i int, as [][]float64, out []float64) {
	p := &e.sums
	m := p.m
	c := g.chunk0 + i/chunkPoints
	s := e.part[k][c*p.size : (c+1)*p.size]
	if i%chunkPoints == 0 {
		clear(s)
	}
	addInto(s[:m], as[0])
	if p.w1 >= 0 {
		for st, a := range as {
			r := g.rowOf(st, i)
			for kk, z := range e.z[r*p.in0 : (r+1)*p.in0] {
				if z != 0 {
					axpyInto(s[p.w1+kk*m:p.w1+(kk+1)*m], z, a)
				}
			}
		}
	}
	if p.wL >= 0 {
		O := p.outO
		H := e.h[p.l]
		for st := range as {
			r := g.rowOf(st, i)
			for o, v := range out[r*O : (r+1)*O] {
				if v != 0 {
					axpyInto(s[p.wL+o*m:p.wL+(o+1)*m], v, H[r*m:(r+1)*m])
				}
				if st == 0 {
					s[p.bL+o] += v
				}
			}
		}
	}
}

// reduceSums sets the parameters e.sums covers in dst to the sum, in chunk
// order, of cotangent k's chunk sums over the groups [g0, g1).
func (e *pinn) reduceSums(k, g0, g1 int, dst []float64) {
	p := &e.sums
	n := e.net
	c0, c1 := e.groups[g0].chunk0, len(e.chunks)-1
	if g1 < len(e.groups) {
		c1 = e.groups[g1].chunk0
	}
	part := e.part[k]
	add := func(dst []float64, off int) {
		clear(dst)
		for c := c0; c < c1; c++ {
			addInto(dst, part[c*p.size+off:c*p.size+off+len(dst)])
		}
	}
	m := p.m
	add(dst[n.bOff[p.l]:n.bOff[p.l]+m], 0)
	if p.w1 >= 0 {
		// W_1 is m×in0 in θ; the sums hold it transposed (in0×m).
		gw := dst[n.wOff[1] : n.wOff[1]+m*p.in0]
		e.wt = resize(e.wt, p.in0*m)
		add(e.wt, p.w1)
		for kk := range p.in0 {
			for j, v := range e.wt[kk*m : (kk+1)*m] {
				gw[j*p.in0+kk] = v
			}
		}
	}
	if p.wL >= 0 {
		L := e.L
		add(dst[n.wOff[L]:n.wOff[L]+p.outO*m], p.wL)
		add(dst[n.bOff[L]:n.bOff[L]+p.outO], p.bL)
	}
}

// blockGrads is paramGrad for each block b into dsts[b]. Between hidden
// layers each block's weight gradient is one GEMM, never cut, queued as one
// task (gemm.go), so the bits depend on the blocks alone.
func (e *pinn) blockGrads(l int, abar []float64, dsts [][]float64) {
	if len(dsts) == 0 {
		return
	}
	n := e.net
	in, m := n.layers[l-1], n.layers[l]
	if in <= smallWidth || m <= smallWidth {
		for b := range dsts {
			e.paramGrad(l, abar, b, b+1, dsts[b])
		}
		return
	}
	e.flops += 2 * int64(e.rows) * int64(in) * int64(m)
	H := e.h[l-1]
	for b, dst := range dsts {
		g := &e.groups[b]
		r0, r1 := g.row, g.row+g.ns*g.n
		gw := dst[n.wOff[l] : n.wOff[l]+m*in]
		if r1 == r0 {
			clear(gw)
		} else {
			e.batch.tasks = append(e.batch.tasks, mmArgs{tA: blas.Trans, tB: blas.NoTrans, m: m, n: in, k: r1 - r0, a: abar[r0*m : r1*m], lda: m, b: H[r0*in : r1*in], ldb: in, c: gw, ldc: in})
		}
		if l == e.L {
			gb := dst[n.bOff[l] : n.bOff[l]+m]
			clear(gb)
			for i := 0; i < g.n; i++ {
				r := g.rowOf(0, i) * m
				addInto(gb, abar[r:r+m])
			}
		}
	}
	if !e.batching {
		e.runBatch()
	}
}

// paramGrad sets the layer-l slices of dst that no backward pass sums to
// the gradient of the rows of groups [g0, g1): ∂W = Āᵀ H over those rows,
// and for the output layer ∂b = Σ Ā over their value rows (hidden layers'
// biases are summed by the backward passes).
func (e *pinn) paramGrad(l int, abar []float64, g0, g1 int, dst []float64) {
	n := e.net
	in, m := n.layers[l-1], n.layers[l]
	r0 := e.groups[g0].row
	r1 := e.rows
	if g1 < len(e.groups) {
		r1 = e.groups[g1].row
	}
	gw := dst[n.wOff[l] : n.wOff[l]+m*in]
	if r1 == r0 {
		clear(gw)
	} else {
		e.weightGradient(l, abar, e.h[l-1], r0, r1, gw)
	}
	if l < e.L {
		return
	}
	gb := dst[n.bOff[l] : n.bOff[l]+m]
	clear(gb)
	for gi := g0; gi < g1; gi++ {
		g := &e.groups[gi]
		for i := 0; i < g.n; i++ {
			r := g.rowOf(0, i) * m
			addInto(gb, abar[r:r+m])
		}
	}
}

// derivs returns σ', σ” and σ”' of hidden layer l at point i of group g,
// whose value row starts at rv, at the base point: those the point's
// streams need (σ' always, σ” with derivative streams, σ”' with
// operators; the others are nil). tanh's derivatives are polynomials in
// tanh itself, which Forward keeps in the layer's value row, so they are
// computed here into sc instead of being stored by Forward and read back;
// the other activations keep theirs.
func (e *pinn) derivs(l int, g *group, i, rv int, sc *scratch) (d1, d2, d3 []float64) {
	m := e.net.layers[l]
	if e.net.act != Tanh {
		p := (g.first + i) * m
		return e.d1[l][p : p+m], e.d2[l][p : p+m], e.d3[l][p : p+m]
	}
	t := e.h[l][rv : rv+m]
	d1 = sc.t1[:m]
	switch {
	case len(g.ops) > 0:
		d2, d3 = sc.t2[:m], sc.t3[:m]
		tanhD123(d1, d2, d3, t)
	case g.ns > 1:
		d2 = sc.t2[:m]
		tanhD12(d1, d2, t)
	default:
		tanhD1(d1, t)
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
	e.split(job{kind: jobActivateBackward, n: len(e.chunks) - 1, l: l}, chunkPoints*e.net.layers[l]*e.rows/max(e.npts, 1))
}

// activateBackwardRange is activateBackward over the chunks of points
// [lo, hi), for each pair of cotangents in e.backH and e.backA. With j.w
// (the top layer's W_L, few outputs) e.backH holds the top layer's Ā_L
// (rows × O) and each point's H̄ = Ā_L W_L is made in scratch, by the
// operations of inputCotangentRows. With j.sums it adds each point to its
// chunk's sums (addSums).
func (e *pinn) activateBackwardRange(j *job, lo, hi int, sc *scratch) {
	l := j.l
	m := e.net.layers[l]
	A := e.a[l]
	for gi := range e.groups {
		g := &e.groups[gi]
		i0, i1 := g.pointRange(e.chunks[lo], e.chunks[hi])
		hs, as, xs := sc.rowsH[:g.ns], sc.rowsA[:g.ns], sc.rowsX[:g.ns]
		for i := i0; i < i1; i++ {
			rv := g.rowOf(0, i) * m
			d1, d2, d3 := e.derivs(l, g, i, rv, sc)
			for s := 1; s < g.ns; s++ {
				r := g.rowOf(s, i) * m
				xs[s] = A[r : r+m]
			}
			for k, hbar := range e.backH {
				abar := e.backA[k]
				for s := range g.ns {
					r := g.rowOf(s, i)
					as[s] = abar[r*m : (r+1)*m]
					if j.w == nil {
						hs[s] = hbar[r*m : (r+1)*m]
						continue
					}
					O := e.net.layers[l+1]
					h, ar := sc.h[s*m:(s+1)*m], hbar[r*O:(r+1)*O]
					scaleInto(h, ar[0], j.w[:m])
					for o := 1; o < O; o++ {
						axpyInto(h, ar[o], j.w[o*m:(o+1)*m])
					}
					hs[s] = h
				}
				e.activateBackwardPoint(l, g, i, d1, d2, d3, hs, as, xs)
				if j.sums {
					e.addSums(k, g, i, as, hbar)
				}
			}
		}
	}
}

// activateBackwardPoint is activateBackward at point i of group g: the
// cotangent rows hs of its outputs to the rows as of its pre-activations,
// with xs the pre-activation rows of its derivative and operator streams.
func (e *pinn) activateBackwardPoint(l int, g *group, i int, d1, d2, d3 []float64, hs, as, xs [][]float64) {
	m := len(d1)
	if g.fused.ok && !e.kernelsOnly {
		var q []float64
		if g.fused.op {
			qr := (g.qrow + i) * m
			q = e.q[l][qr : qr+m]
		}
		backFusedGo(&g.fused, as, hs, xs, d1, d2, d3, q)
		return
	}
	av := as[0]
	mulInto(av, d1, hs[0])
	for s := 1; s <= g.ngrad; s++ {
		gradBack(as[s], av, d1, d2, hs[s], xs[s])
	}
	for o, terms := range g.ops {
		// The terms before the operator's own row: they read its
		// cotangent, which a pass in place (as = hs) then overwrites.
		P := 1 + g.ngrad + o
		for _, t := range terms {
			termBack(as[t.i], as[t.j], d2, hs[P], t.c, xs[t.i], xs[t.j])
		}
		qr := (g.qrow + o*g.n + i) * m
		opBack(as[P], av, d1, d2, d3, hs[P], xs[P], e.q[l][qr:qr+m])
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
			d1, d2, d3 := e.derivs(l, g, i, rv, sc)
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

// Flops is the count of floating-point operations (a multiply-add counts
// two) that the evaluator's matrix products have done since it was made.
func (e *pinn) Flops() int64 { return e.flops }

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
