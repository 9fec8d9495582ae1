package model

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"ntkbus/model/expr"
	"ntkbus/model/rng"
)

// A block of a problem file becomes a BlockDef in three steps:
//
//  1. Each residual component is parsed where the block's points lie (the
//     outward normal that dn reads differs from face to face; pieces whose
//     residuals read the same share one program).
//  2. Each component's linear second-order part is found: every second
//     derivative of an output whose coefficient is a constant (the exact
//     derivative of the residual along it is a number), with the first
//     derivatives of that output whose coefficients are constants, makes
//     one operator P = Σ B_k ∂_k + Σ C_kl ∂_k∂_l, carried through the
//     network as one stream (u_tt − 4u_xx is one stream, as the built-in
//     wave has it). Second derivatives with other coefficients get a
//     stream of their own. What is left reads the outputs' values and
//     first derivatives, and the terms that read no output become the
//     block's targets: R = F(x, u) − y(x).
//  3. F, ∂F/∂streams and y are compiled once into closures.

// linearPart is the operator of one output in one component; C nil: none.
type linearPart struct {
	B, C []float64
}

// component is one residual component taken apart.
type component struct {
	ops    []linearPart // per output
	frest  *expr.Node   // the terms that read outputs, the linear part taken out; nil: none
	target *expr.Node   // y = −(the terms that read no output); nil: zero
}

// analyze takes a residual apart (step 2).
func analyze(r *expr.Node, dim, outs int) component {
	vars := expr.Vars(r)
	folded := map[expr.Var]bool{}
	c := component{ops: make([]linearPart, outs)}
	for o := 0; o < outs; o++ {
		C := make([]float64, dim*dim)
		hasC := false
		for _, v := range vars {
			if v.Field != o || v.Order != 2 {
				continue
			}
			k, ok := expr.Diff(r, v).IsConst()
			if !ok {
				continue
			}
			folded[v] = true
			if k == 0 {
				continue
			}
			hasC = true
			if v.K == v.L {
				C[v.K*dim+v.K] += k
			} else {
				C[v.K*dim+v.L] += k / 2
				C[v.L*dim+v.K] += k / 2
			}
		}
		if !hasC {
			continue
		}
		c.ops[o].C = C
		B := make([]float64, dim)
		for _, v := range vars {
			if v.Field != o || v.Order != 1 {
				continue
			}
			if k, ok := expr.Diff(r, v).IsConst(); ok {
				folded[v] = true
				if k != 0 {
					B[v.K] = k
					c.ops[o].B = B
				}
			}
		}
	}
	rest := expr.Substitute(r, func(v expr.Var) *expr.Node {
		if folded[v] {
			return expr.Number(0)
		}
		return nil
	})
	var fterms, tterms []expr.Term
	for _, t := range expr.Terms(rest) {
		if expr.Depends(t.Node, isOutput) {
			fterms = append(fterms, t)
		} else if v, ok := t.Node.IsConst(); !ok || v != 0 {
			tterms = append(tterms, expr.Term{Sign: -t.Sign, Node: t.Node})
		}
	}
	if fterms != nil {
		c.frest = expr.Sum(fterms)
	}
	if tterms != nil {
		c.target = expr.Sum(tterms)
	}
	return c
}

func isOutput(v expr.Var) bool { return !v.IsCoord() }

// program is the residual of a block where its points lie on given pieces.
type program struct {
	pieces []int // indices into the placement's pieces
	comps  []component
}

// streamLayout is a block's streams: the gradient coordinates and the
// operators, shared by its programs.
type streamLayout struct {
	dim   int
	grad  []int
	ops   []Operator
	opKey map[string]int
}

func opKeyOf(B, C []float64) string {
	var s strings.Builder
	for _, v := range B {
		s.WriteString(strconv.FormatUint(math.Float64bits(v+0), 16))
		s.WriteByte(',')
	}
	s.WriteByte('|')
	for _, v := range C {
		s.WriteString(strconv.FormatUint(math.Float64bits(v+0), 16))
		s.WriteByte(',')
	}
	return s.String()
}

func (l *streamLayout) addOp(B, C []float64, coords []string) int {
	if B == nil {
		B = make([]float64, l.dim)
	}
	key := opKeyOf(B, C)
	if i, ok := l.opKey[key]; ok {
		return i
	}
	op := Operator{Name: operatorName(B, C, coords), C: C}
	for _, v := range B {
		if v != 0 {
			op.B = B
			break
		}
	}
	l.ops = append(l.ops, op)
	l.opKey[key] = len(l.ops) - 1
	return len(l.ops) - 1
}

// ownOp is the operator ∂_k∂_l alone, the stream of a second derivative
// that enters nonlinearly.
func ownOp(dim, k, l int) []float64 {
	C := make([]float64, dim*dim)
	if k == l {
		C[k*dim+k] = 1
	} else {
		C[k*dim+l], C[l*dim+k] = 0.5, 0.5
	}
	return C
}

// operatorName writes an operator as ∂t - 4∂xx.
func operatorName(B, C []float64, coords []string) string {
	d := len(B)
	var s strings.Builder
	term := func(c float64, what string) {
		if c == 0 {
			return
		}
		switch {
		case s.Len() == 0 && c < 0:
			s.WriteString("-")
		case s.Len() > 0 && c < 0:
			s.WriteString(" - ")
		case s.Len() > 0:
			s.WriteString(" + ")
		}
		if a := math.Abs(c); a != 1 {
			s.WriteString(strconv.FormatFloat(a, 'g', 6, 64))
		}
		s.WriteString(what)
	}
	for k, c := range B {
		term(c, "∂"+coords[k])
	}
	for k := 0; k < d; k++ {
		for l := k; l < d; l++ {
			c := C[k*d+l]
			if l != k {
				c *= 2
			}
			term(c, "∂"+coords[k]+"∂"+coords[l])
		}
	}
	if s.Len() == 0 {
		return "0"
	}
	return s.String()
}

// block builds one [[block]].
func (b *fileBuilder) block(bf *blockFile) (BlockDef, error) {
	p := b.p
	on, err := stringsOf(bf.On, "on", maxOnEntries)
	if err != nil {
		return BlockDef{}, err
	}
	if on == nil {
		return BlockDef{}, fmt.Errorf(`missing on: say where the points lie: "interior", a face such as "%s = %v", "boundary" or "hole NAME"`, p.Coords[0], p.Box[0][0])
	}
	pl := &placement{}
	for _, s := range on {
		entries, err := b.dom.parsePlace(s)
		if err != nil {
			return BlockDef{}, err
		}
		pl.entries = append(pl.entries, entries...)
	}
	if len(pl.entries) > maxOnEntries {
		return BlockDef{}, fmt.Errorf("on: %d places, at most %d", len(pl.entries), maxOnEntries)
	}
	if b.pieces += len(pl.all()); b.pieces > maxFilePieces {
		return BlockDef{}, fmt.Errorf("the blocks' on name %d places in all (faces, hole faces), at most %d", b.pieces, maxFilePieces)
	}
	residuals, err := stringsOf(bf.Residual, "residual", maxFileComps)
	if err != nil {
		return BlockDef{}, err
	}
	if residuals == nil {
		return BlockDef{}, errors.New(`missing residual: the expression the training drives to zero, e.g. residual = "u_xx + 1" (an array for several components)`)
	}
	def := BlockDef{Name: bf.Name, Components: len(residuals)}
	if bf.PointsFile != "" {
		rows, err := b.pointsFile(bf, pl)
		if err != nil {
			return BlockDef{}, err
		}
		n := len(rows) / p.Dim
		if bf.Points != nil && *bf.Points != n {
			return BlockDef{}, fmt.Errorf("points = %d, but points_file %s has %d rows: give one or the other", *bf.Points, bf.PointsFile, n)
		}
		def.Rows, def.Count, def.Fixed = rows, n, true
		def.Sample = func(_ *rng.Stream, i, _ int, x []float64) { copy(x, rows[(i%n)*p.Dim:]) }
	} else {
		if bf.Points == nil {
			return BlockDef{}, errors.New("missing points: how many points the block draws, e.g. points = 200 (or points_file, a CSV of them)")
		}
		if *bf.Points < 1 || *bf.Points > maxFilePoints {
			return BlockDef{}, fmt.Errorf("points = %d: want between 1 and %d", *bf.Points, maxFilePoints)
		}
		def.Count = *bf.Points
		if def.Sample, err = b.dom.sampler(pl); err != nil {
			return BlockDef{}, err
		}
		def.Fixed = true
		for _, pc := range pl.all() {
			def.Fixed = def.Fixed && pc.fixed
		}
	}
	progs, err := b.programs(pl, residuals)
	if err != nil {
		return BlockDef{}, err
	}
	layout := &streamLayout{dim: p.Dim, opKey: map[string]int{}}
	gradSet := map[int]bool{}
	for _, pr := range progs {
		for _, c := range pr.comps {
			for _, lp := range c.ops {
				if lp.C == nil {
					continue
				}
				layout.addOp(lp.B, lp.C, p.Coords)
				for k := 0; k < p.Dim; k++ {
					for l := 0; l < p.Dim; l++ {
						if lp.C[k*p.Dim+l] != 0 {
							gradSet[k], gradSet[l] = true, true
						}
					}
				}
			}
			if c.frest == nil {
				continue
			}
			for _, v := range expr.Vars(c.frest) {
				switch v.Order {
				case 1:
					gradSet[v.K] = true
				case 2:
					layout.addOp(nil, ownOp(p.Dim, v.K, v.L), p.Coords)
					gradSet[v.K], gradSet[v.L] = true, true
				}
			}
		}
	}
	for k := range gradSet {
		layout.grad = append(layout.grad, k)
	}
	sort.Ints(layout.grad)
	def.Streams = Streams{Grad: layout.grad, Ops: layout.ops}
	codes := make([]*blockCode, len(progs))
	for i, pr := range progs {
		if codes[i], err = layout.compile(pr, p.Outputs); err != nil {
			return BlockDef{}, err
		}
	}
	def.F, def.DF, def.Target = dispatch(codes, progs, pl)
	return def, nil
}

// programs parses the residuals on every piece of the placement, and
// groups the pieces on which they read the same.
func (b *fileBuilder) programs(pl *placement, residuals []string) ([]program, error) {
	p := b.p
	var progs []program
	index := map[string]int{}
	for i, pc := range pl.all() {
		env := b.env
		env.Normal, env.NoDn = pc.normal, pc.noDn
		comps := make([]*expr.Node, len(residuals))
		var key strings.Builder
		for c, src := range residuals {
			what := "residual"
			if len(residuals) > 1 {
				what = fmt.Sprintf("residual %d", c+1)
			}
			n, err := expr.Parse(src, &env)
			if err != nil {
				return nil, fmt.Errorf("%s at %w", what, err)
			}
			if !expr.Depends(n, isOutput) {
				return nil, fmt.Errorf("%s %q reads no output: a residual must involve the solution (outputs: %s)", what, src, strings.Join(p.OutputNames, ", "))
			}
			if b.work += expr.Size(n, maxFileWork) * len(expr.Vars(n)); b.work > maxFileWork {
				return nil, fmt.Errorf("%s: the residuals are too large to differentiate (operations × variables over %d): simplify them", what, maxFileWork)
			}
			comps[c] = n
			key.WriteString(expr.Format(n, p.Coords, p.OutputNames))
			key.WriteByte(0)
		}
		k := key.String()
		if j, ok := index[k]; ok {
			progs[j].pieces = append(progs[j].pieces, i)
			continue
		}
		pr := program{pieces: []int{i}}
		for c, n := range comps {
			a := analyze(n, p.Dim, p.Outputs)
			empty := a.frest == nil
			for _, lp := range a.ops {
				empty = empty && lp.C == nil
			}
			if empty {
				return nil, fmt.Errorf("residual %d %q does not depend on the outputs once simplified", c+1, residuals[c])
			}
			pr.comps = append(pr.comps, a)
		}
		index[k] = len(progs)
		progs = append(progs, pr)
	}
	return progs, nil
}

// blockCode is a program compiled against a block's streams.
type blockCode struct {
	comps   []compCode
	jacTmpl []float64 // constant entries of ∂F/∂u
	jacDyn  []jacEntry
	targets []expr.Fn // nil entries: zero
}

type compCode struct {
	ops  []int   // indices into u of the operator streams this component adds
	rest expr.Fn // nil: none
}

type jacEntry struct {
	i int
	f expr.Fn
}

// stream is the stream index of a variable of an output.
func (l *streamLayout) stream(v expr.Var) (int, error) {
	switch v.Order {
	case 0:
		return 0, nil
	case 1:
		for i, k := range l.grad {
			if k == v.K {
				return 1 + i, nil
			}
		}
	case 2:
		if i, ok := l.opKey[opKeyOf(make([]float64, l.dim), ownOp(l.dim, v.K, v.L))]; ok {
			return 1 + len(l.grad) + i, nil
		}
	}
	return 0, fmt.Errorf("no stream carries this derivative")
}

// compile compiles a program (step 3).
func (l *streamLayout) compile(pr program, outs int) (*blockCode, error) {
	ns := 1 + len(l.grad) + len(l.ops)
	cols := ns * outs
	bind := func(v expr.Var) (expr.Slot, error) {
		if v.IsCoord() {
			return expr.Slot{In: 0, Index: v.K}, nil
		}
		s, err := l.stream(v)
		if err != nil {
			return expr.Slot{}, err
		}
		return expr.Slot{In: 1, Index: s*outs + v.Field}, nil
	}
	code := &blockCode{jacTmpl: make([]float64, len(pr.comps)*cols)}
	// own maps the operators that are one second derivative ∂_k∂_m to (k, m).
	own := map[int][2]int{}
	zero := make([]float64, l.dim)
	for k := 0; k < l.dim; k++ {
		for m := k; m < l.dim; m++ {
			if i, ok := l.opKey[opKeyOf(zero, ownOp(l.dim, k, m))]; ok {
				own[i] = [2]int{k, m}
			}
		}
	}
	// varOf is the variable that stream s of output o carries, when an
	// expression can read it.
	varOf := func(s, o int) (expr.Var, bool) {
		switch {
		case s == 0:
			return expr.Value(o), true
		case s <= len(l.grad):
			return expr.First(o, l.grad[s-1]), true
		}
		if km, ok := own[s-1-len(l.grad)]; ok {
			return expr.Second(o, km[0], km[1]), true
		}
		return expr.Var{}, false
	}
	for c, comp := range pr.comps {
		var cc compCode
		opStream := make([]int, outs) // the operator stream of output o, or −1
		for o, lp := range comp.ops {
			opStream[o] = -1
			if lp.C == nil {
				continue
			}
			B := lp.B
			if B == nil {
				B = make([]float64, l.dim)
			}
			s := 1 + len(l.grad) + l.opKey[opKeyOf(B, lp.C)]
			opStream[o] = s
			cc.ops = append(cc.ops, s*outs+o)
		}
		if comp.frest != nil {
			f, err := expr.Compile(comp.frest, bind)
			if err != nil {
				return nil, err
			}
			cc.rest = f
		}
		code.comps = append(code.comps, cc)
		reads := map[expr.Var]bool{}
		if comp.frest != nil {
			for _, v := range expr.Vars(comp.frest) {
				reads[v] = true
			}
		}
		for s := 0; s < ns; s++ {
			for o := 0; o < outs; o++ {
				d := expr.Number(0)
				if opStream[o] == s {
					d = expr.Number(1)
				}
				if v, ok := varOf(s, o); ok && reads[v] {
					d = expr.AddOf(d, expr.Diff(comp.frest, v))
				}
				i := c*cols + s*outs + o
				if k, ok := d.IsConst(); ok {
					code.jacTmpl[i] = k
					continue
				}
				f, err := expr.Compile(d, bind)
				if err != nil {
					return nil, err
				}
				code.jacDyn = append(code.jacDyn, jacEntry{i, f})
			}
		}
		var tf expr.Fn
		if comp.target != nil {
			f, err := expr.Compile(comp.target, coordSlots)
			if err != nil {
				return nil, err
			}
			tf = f
		}
		code.targets = append(code.targets, tf)
	}
	return code, nil
}

func (c *blockCode) f(x, u, r []float64) {
	for i := range c.comps {
		cc := &c.comps[i]
		var v float64
		switch {
		case len(cc.ops) == 0:
			v = cc.rest(x, u)
		default:
			v = u[cc.ops[0]]
			for _, j := range cc.ops[1:] {
				v += u[j]
			}
			if cc.rest != nil {
				v += cc.rest(x, u)
			}
		}
		r[i] = v
	}
}

func (c *blockCode) df(x, u, jac []float64) {
	copy(jac, c.jacTmpl)
	for _, e := range c.jacDyn {
		jac[e.i] = e.f(x, u)
	}
}

func (c *blockCode) target(x, y []float64) {
	for i, f := range c.targets {
		if f == nil {
			y[i] = 0
			continue
		}
		y[i] = f(x, x)
	}
}

func (c *blockCode) hasTargets() bool {
	for _, f := range c.targets {
		if f != nil {
			return true
		}
	}
	return false
}

// dispatch returns the block's F, DF and Target: one program's, or, where
// the pieces differ (dn on several faces), the program of the piece each
// point lies nearest to.
func dispatch(codes []*blockCode, progs []program, pl *placement) (f, df func(x, u, r []float64), target func(x, y []float64)) {
	anyTarget := false
	for _, c := range codes {
		anyTarget = anyTarget || c.hasTargets()
	}
	if len(codes) == 1 {
		c := codes[0]
		f, df = c.f, c.df
		if len(c.comps) == 1 && len(c.comps[0].ops) == 1 && c.comps[0].rest == nil {
			j := c.comps[0].ops[0] // R = P u: one stream, as the built-ins read it
			f = func(_, u, r []float64) { r[0] = u[j] }
		}
		if anyTarget {
			target = c.target
		}
		return f, df, target
	}
	pieces := pl.all()
	progOf := make([]int, len(pieces))
	for i, pr := range progs {
		for _, j := range pr.pieces {
			progOf[j] = i
		}
	}
	pick := func(x []float64) *blockCode { return codes[progOf[nearest(pieces, x)]] }
	f = func(x, u, r []float64) { pick(x).f(x, u, r) }
	df = func(x, u, jac []float64) { pick(x).df(x, u, jac) }
	if anyTarget {
		target = func(x, y []float64) { pick(x).target(x, y) }
	}
	return f, df, target
}

// pointsFile reads a block's points from its CSV (whose contents came with
// the problem), checking that each lies where the block says.
func (b *fileBuilder) pointsFile(bf *blockFile, pl *placement) ([]float64, error) {
	p := b.p
	text, ok := b.files[bf.PointsFile]
	if !ok {
		return nil, fmt.Errorf("points_file %s: its contents did not come with the problem (read the problem from its file, which reads the files it names)", bf.PointsFile)
	}
	t, err := ParseTable(text)
	if err != nil {
		return nil, fmt.Errorf("points_file %s: %w", bf.PointsFile, err)
	}
	idx, err := t.Columns(p.Coords, "the points of block "+bf.Name)
	if err != nil {
		return nil, fmt.Errorf("points_file %s: %w", bf.PointsFile, err)
	}
	if t.Rows() > maxFilePoints {
		return nil, fmt.Errorf("points_file %s: %d rows, at most %d", bf.PointsFile, t.Rows(), maxFilePoints)
	}
	rows := t.Select(idx)
	pieces := pl.all()
	extent := 1.0
	for _, bx := range p.Box {
		extent = math.Max(extent, bx[1]-bx[0])
	}
	tol := 1e-9 * extent
	for i := 0; i < t.Rows(); i++ {
		x := rows[i*p.Dim : (i+1)*p.Dim]
		pc := pieces[nearest(pieces, x)]
		in := true
		for k, bx := range p.Box {
			in = in && x[k] >= bx[0]-tol && x[k] <= bx[1]+tol
		}
		switch {
		case !in:
			return nil, fmt.Errorf("points_file %s: row %d, point %v, lies outside the box %v", bf.PointsFile, i+1, x, p.Box)
		case pc.kind == onInterior && !b.dom.inside(x):
			return nil, fmt.Errorf("points_file %s: row %d, point %v, lies in a hole", bf.PointsFile, i+1, x)
		case pc.distance(x) > tol:
			return nil, fmt.Errorf("points_file %s: row %d, point %v, is not on %s (the block's on)", bf.PointsFile, i+1, x, pc.label)
		}
	}
	return rows, nil
}
