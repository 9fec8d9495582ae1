package sampler

import (
	"fmt"
	"math"
	"slices"

	"ntkbus/model"
	"ntkbus/model/rng"
)

// Kind is how probe vectors are drawn.
type Kind int

// The probe kinds.
const (
	// Gaussian probes g ~ N(0, I_n) (Algorithm 2).
	Gaussian Kind = iota
	// Rademacher probes with entries ±1 (Remark 5).
	Rademacher
	// Block probes are Gaussian on one block and zero elsewhere, so gᵀd
	// estimates that block's trace without the variance of the others.
	Block
	// Param probes are Theorem 5's forward-only estimator: g ~ N(0, ε² I_p)
	// in parameter space, ‖R_b(θ+g) − R_b(θ)‖²/ε² ≈ Tr K_bb. They give block
	// traces only, no off-diagonal information.
	Param
)

var kindNames = [...]string{Gaussian: "gaussian", Rademacher: "rademacher", Block: "block", Param: "param"}

func (k Kind) String() string { return enumName(kindNames[:], int(k)) }

// Quotient is how d ≈ K g is formed.
type Quotient int

// The quotient kinds.
const (
	// Forward is the paper's d = (R(θ + Δt Jᵀg) − R(θ))/Δt, bias O(Δt).
	Forward Quotient = iota
	// Central is d = (R(θ + Δt Jᵀg) − R(θ − Δt Jᵀg))/(2Δt), bias O(Δt²),
	// one more forward pass.
	Central
	// Exact is d = J(Jᵀg) by forward mode: no Δt and no bias.
	Exact
)

var quotientNames = [...]string{Forward: "forward", Central: "central", Exact: "exact"}

func (q Quotient) String() string { return enumName(quotientNames[:], int(q)) }

// Allocation is how block probes are shared among the blocks.
type Allocation int

// The allocations.
const (
	// Equal gives every non-empty block the same number of probes.
	Equal Allocation = iota
	// BySize gives blocks probes in proportion to their residual count.
	BySize
)

var allocationNames = [...]string{Equal: "equal", BySize: "size"}

func (a Allocation) String() string { return enumName(allocationNames[:], int(a)) }

func enumName(names []string, i int) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("?%d", i)
}

func parseEnum(what string, names []string, s string) (int, error) {
	for i, n := range names {
		if n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %v)", what, s, names)
}

// ParseKind, ParseQuotient and ParseAllocation read the names above.
func ParseKind(s string) (Kind, error) {
	i, err := parseEnum("probe kind", kindNames[:], s)
	return Kind(i), err
}

// ParseQuotient reads a quotient name.
func ParseQuotient(s string) (Quotient, error) {
	i, err := parseEnum("quotient", quotientNames[:], s)
	return Quotient(i), err
}

// ParseAllocation reads an allocation name.
func ParseAllocation(s string) (Allocation, error) {
	i, err := parseEnum("allocation", allocationNames[:], s)
	return Allocation(i), err
}

// Settings fix how every probe of a run is drawn and differenced. Probe j of
// step t depends only on (Settings, the residual at θ_t, t, j).
type Settings struct {
	Seed       uint64     `json:"seed"`
	Kind       Kind       `json:"kind"`
	Quotient   Quotient   `json:"quotient"`
	Dt         float64    `json:"dt"`      // predictor step Δt; 0 chooses it per probe (see AutoDt)
	Epsilon    float64    `json:"epsilon"` // scale ε of Param probes; 0 chooses it (see AutoEpsilon)
	Allocation Allocation `json:"allocation"`
}

// Validate reports settings that cannot work.
func (s Settings) Validate() error {
	if s.Kind < Gaussian || s.Kind > Param {
		return fmt.Errorf("probe kind %d", s.Kind)
	}
	if s.Quotient < Forward || s.Quotient > Exact {
		return fmt.Errorf("quotient %d", s.Quotient)
	}
	if s.Dt < 0 || math.IsNaN(s.Dt) || math.IsInf(s.Dt, 0) {
		return fmt.Errorf("Δt = %v: want a positive step, or 0 for automatic", s.Dt)
	}
	if s.Epsilon < 0 || math.IsNaN(s.Epsilon) || math.IsInf(s.Epsilon, 0) {
		return fmt.Errorf("ε = %v: want a positive scale, or 0 for automatic", s.Epsilon)
	}
	return nil
}

// Plan is Settings bound to a residual layout: it knows each probe's width
// and, for block probes, which block each probe covers.
type Plan struct {
	Settings
	lay   *model.Layout
	cycle []int // block of probe j is cycle[j % len(cycle)] (block probes)
}

// NewPlan binds settings to a layout.
func NewPlan(s Settings, lay *model.Layout) (*Plan, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	// The plan keeps its own copy: lay usually belongs to one worker's
	// evaluator, which rewrites it when its points change, while other
	// workers read the plan.
	own := *lay
	own.Blocks = slices.Clone(lay.Blocks)
	p := &Plan{Settings: s, lay: &own}
	if s.Kind == Block {
		p.cycle = allocationCycle(lay, s.Allocation)
		if len(p.cycle) == 0 {
			return nil, fmt.Errorf("block probes need a block with residuals")
		}
	}
	return p, nil
}

// Layout is the residual layout the plan is bound to.
func (p *Plan) Layout() *model.Layout { return p.lay }

// Width is the number of values one probe returns: n, or for Param probes
// the number of blocks.
func (p *Plan) Width() int {
	if p.Kind == Param {
		return len(p.lay.Blocks)
	}
	return p.lay.N
}

// BlockOf returns the block that block probe j covers, or −1 for other kinds.
func (p *Plan) BlockOf(j uint32) int {
	if p.Kind != Block {
		return -1
	}
	return p.cycle[int(j%uint32(len(p.cycle)))]
}

// Vector sets g (length n) to the residual-space vector of probe j of step
// t, from the stream (seed, DomainProbe, t, j): the same bits on any machine.
// It is zero for Param probes, which live in parameter space.
func (p *Plan) Vector(step, j uint32, g []float64) {
	g = g[:p.lay.N]
	s := rng.New(p.Seed, rng.DomainProbe, step, j)
	switch p.Kind {
	case Gaussian:
		s.FillNormal(g)
	case Rademacher:
		s.FillRademacher(g)
	case Block:
		for i := range g {
			g[i] = 0
		}
		b := p.lay.Blocks[p.BlockOf(j)]
		s.FillNormal(g[b.Off : b.Off+b.Len])
	case Param:
		for i := range g {
			g[i] = 0
		}
	}
}

// allocationCycle lists the blocks of one period of block probes: each
// non-empty block once (Equal), or in proportion to its size by smooth
// weighted round robin over one period of length Σ n_b / gcd (BySize).
func allocationCycle(lay *model.Layout, a Allocation) []int {
	var blocks, weights []int
	for b, s := range lay.Blocks {
		if s.Len > 0 {
			blocks = append(blocks, b)
			weights = append(weights, s.Len)
		}
	}
	if a == Equal || len(blocks) == 0 {
		return blocks
	}
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	total := 0
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	cycle := make([]int, 0, total)
	current := make([]int, len(weights))
	for len(cycle) < total {
		best := 0
		for i := range weights {
			current[i] += weights[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		cycle = append(cycle, blocks[best])
	}
	return cycle
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// AutoDt is the default predictor step for a probe whose predictor
// direction is v = Jᵀg at parameters θ. A difference quotient along v/‖v‖
// with parameter scale 1+‖θ‖ balances truncation, O(h), against rounding,
// O(ε_mach/h), at h = √ε_mach·(1+‖θ‖) for the forward difference and
// h = ∛ε_mach·(1+‖θ‖) for the central one; Δt = h/‖v‖.
func AutoDt(q Quotient, thetaNorm, vNorm float64) float64 {
	if vNorm == 0 {
		return 1
	}
	h := math.Sqrt(epsMach)
	if q == Central {
		h = math.Cbrt(epsMach)
	}
	return h * (1 + thetaNorm) / vNorm
}

// AutoEpsilon is the default scale of Param probes: the same balance, with
// ‖g‖ ≈ ε√p.
func AutoEpsilon(q Quotient, thetaNorm float64, p int) float64 {
	h := math.Sqrt(epsMach)
	if q == Central {
		h = math.Cbrt(epsMach)
	}
	return h * (1 + thetaNorm) / math.Sqrt(float64(p))
}

const epsMach = 0x1p-52

// MarshalText and UnmarshalText let the enums appear by name in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind name.
func (k *Kind) UnmarshalText(b []byte) (err error) { *k, err = ParseKind(string(b)); return }

// MarshalText writes the quotient name.
func (q Quotient) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// UnmarshalText reads a quotient name.
func (q *Quotient) UnmarshalText(b []byte) (err error) { *q, err = ParseQuotient(string(b)); return }

// MarshalText writes the allocation name.
func (a Allocation) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads an allocation name.
func (a *Allocation) UnmarshalText(b []byte) (err error) {
	*a, err = ParseAllocation(string(b))
	return
}

// Width is the number of values one probe returns for a problem with the
// given points per block: n, or the number of blocks for Param probes.
func (s Settings) Width(p *model.Problem, counts []int) int {
	if s.Kind == Param {
		return len(p.Blocks)
	}
	n := 0
	for b, c := range counts {
		n += c * p.Blocks[b].Components
	}
	return n
}
