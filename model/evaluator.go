package model

// Evaluator computes a residual R: R^p → R^n at fixed collocation points and
// its exact derivatives. It owns all its work memory, so after the first call
// of each method it allocates nothing; one Evaluator serves one goroutine.
//
// Forward fixes the base point θ for Backward, JVP, Diagonal, BlockTraces
// and NTK; Residual evaluates R elsewhere without disturbing it. That is the
// shape of one probe: R(θ) once per step, then Jᵀg and R(θ + Δt·Jᵀg).
type Evaluator interface {
	Layout() *Layout
	// SetPoints replaces the collocation points (same problem; counts may
	// change). The base point must be set again with Forward.
	SetPoints(c *Collocation) error
	// Forward sets r = R(θ) and makes θ (copied) the base point.
	Forward(theta, r []float64)
	// Residual sets r = R(θ), leaving the base point alone.
	Residual(theta, r []float64)
	// Backward computes Jᵀv at the base point for every cotangent in one
	// pass through the network.
	Backward(cots []Cotangent)
	// JVP sets dst = J w at the base point (forward mode, exact).
	JVP(w, dst []float64)
	// Diagonal sets dst[i] = K_ii = ‖∇R_i‖² at the base point.
	Diagonal(dst []float64)
	// NTK sets dst (n×n, row-major) to K = J Jᵀ at the base point. It fails
	// when the work memory it needs exceeds the evaluator's limit.
	NTK(dst []float64) error
	// Columns sets dst (len(idx)×n, row-major) so that row q is the column
	// K[:, idx[q]] at the base point, without the n×n matrix; its work
	// memory stays within the evaluator's limit (see columns.go).
	Columns(idx []int, dst []float64) error
}

// Cotangent asks Backward for Jᵀv. With Dst set it receives Jᵀv; with
// PerBlock set (one slice of length p per block), PerBlock[b] receives
// Jᵀ(v restricted to block b), at no extra cost, so that a weighted gradient
// Jᵀ Λ v = Σ_b λ_b PerBlock[b] can be formed once the weights are known.
type Cotangent struct {
	V        []float64
	Dst      []float64
	PerBlock [][]float64
}

// Layout is the shape of R: n residuals in named blocks, p parameters.
type Layout struct {
	N, P   int
	Blocks []Span
}

// Span is one block's rows of R: points×components residuals starting at
// Off, point-major (residual Off + i·Components + c is component c at point i).
type Span struct {
	Name       string
	Off, Len   int
	Points     int
	Components int
}

// BlockNames lists the block names in order.
func (l *Layout) BlockNames() []string {
	n := make([]string, len(l.Blocks))
	for i, b := range l.Blocks {
		n[i] = b.Name
	}
	return n
}

// BlockOf returns the block index of residual i.
func (l *Layout) BlockOf(i int) int {
	for b, s := range l.Blocks {
		if i >= s.Off && i < s.Off+s.Len {
			return b
		}
	}
	return -1
}

// BlockSums sets dst[b] = Σ_{i∈b} v[i].
func (l *Layout) BlockSums(v, dst []float64) {
	for b, s := range l.Blocks {
		var sum float64
		for _, x := range v[s.Off : s.Off+s.Len] {
			sum += x
		}
		dst[b] = sum
	}
}

// Options tune an evaluator.
type Options struct {
	// MaxMemory bounds the work memory of NTK, Columns and Jacobian, in bytes; zero
	// means DefaultMaxMemory.
	MaxMemory int64
}

// DefaultMaxMemory is the default bound on the work memory of exact kernels.
const DefaultMaxMemory = 4 << 30

// NewEvaluator returns an evaluator of the setup's residual at c.
func (s *Setup) NewEvaluator(c *Collocation, opt Options) (Evaluator, error) {
	if opt.MaxMemory <= 0 {
		opt.MaxMemory = DefaultMaxMemory
	}
	if err := s.Problem.Check(c); err != nil {
		return nil, err
	}
	if s.net == nil {
		return newQuadEval(s, c, opt)
	}
	return newPINN(s, c, opt)
}

// layoutOf builds the layout of the problem's residual at c.
func layoutOf(p *Problem, c *Collocation, np int) Layout {
	l := Layout{P: np}
	for b := range p.Blocks {
		n := c.Blocks[b].Count()
		comps := p.Blocks[b].Components
		l.Blocks = append(l.Blocks, Span{Name: p.Blocks[b].Name, Off: l.N, Len: n * comps, Points: n, Components: comps})
		l.N += n * comps
	}
	return l
}
