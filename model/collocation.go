package model

import (
	"fmt"
	"math"

	"ntkbus/model/rng"
)

// Collocation holds the points of every residual block, in the problem's
// block order, with the targets each residual subtracts.
type Collocation struct {
	Blocks []BlockPoints
}

// BlockPoints are the points of one block: X is count×Dim row-major, Y is
// count×Components (point-major) and always filled.
type BlockPoints struct {
	Name string
	Dim  int
	X    []float64
	Y    []float64
}

// Count is the number of points.
func (b *BlockPoints) Count() int {
	if b.Dim == 0 {
		return 0
	}
	return len(b.X) / b.Dim
}

// Counts lists the points per block.
func (c *Collocation) Counts() []int {
	n := make([]int, len(c.Blocks))
	for i := range c.Blocks {
		n[i] = c.Blocks[i].Count()
	}
	return n
}

// Draw draws counts[b] points for every block b from (seed, step): block b's
// points come from the stream (seed, DomainPoints, step, b), targets from the
// problem, and noise (data problems) from (seed, DomainNoise, step, b).
// Blocks marked Fixed are drawn at step 0 whatever step is. A nil counts
// means the problem's defaults. dst is reused when not nil.
func (p *Problem) Draw(seed uint64, step uint32, counts []int, dst *Collocation) (*Collocation, error) {
	if counts == nil {
		counts = p.DefaultCounts()
	}
	if len(counts) != len(p.Blocks) {
		return nil, fmt.Errorf("problem %s: %d point counts for %d blocks %v", p.Name, len(counts), len(p.Blocks), p.BlockNames())
	}
	if dst == nil {
		dst = &Collocation{}
	}
	if len(dst.Blocks) != len(p.Blocks) {
		dst.Blocks = make([]BlockPoints, len(p.Blocks))
	}
	for b := range p.Blocks {
		def := &p.Blocks[b]
		n := counts[b]
		if n < 0 {
			return nil, fmt.Errorf("problem %s block %s: negative point count %d", p.Name, def.Name, n)
		}
		if def.Rows != nil && n != len(def.Rows)/p.Dim {
			return nil, fmt.Errorf("problem %s block %s: its %d points are given (points_file), not %d: give %d points for it, or none", p.Name, def.Name, len(def.Rows)/p.Dim, n, len(def.Rows)/p.Dim)
		}
		bp := &dst.Blocks[b]
		bp.Name, bp.Dim = def.Name, p.Dim
		bp.X = resize(bp.X, n*p.Dim)
		bp.Y = resize(bp.Y, n*def.Components)
		st := step
		if def.Fixed {
			st = 0
		}
		if def.Rows != nil {
			copy(bp.X, def.Rows)
		} else {
			s := rng.New(seed, rng.DomainPoints, st, uint32(b))
			for i := 0; i < n; i++ {
				def.Sample(&s, i, n, bp.X[i*p.Dim:(i+1)*p.Dim])
			}
		}
		p.fillTargets(b, bp)
		if def.Noise > 0 {
			ns := rng.New(seed, rng.DomainNoise, st, uint32(b))
			for i := range bp.Y {
				bp.Y[i] += def.Noise * ns.Normal()
			}
		}
	}
	return dst, nil
}

// fillTargets sets the block's targets from the problem's data function.
func (p *Problem) fillTargets(b int, bp *BlockPoints) {
	def := &p.Blocks[b]
	n := bp.Count()
	for i := 0; i < n; i++ {
		y := bp.Y[i*def.Components : (i+1)*def.Components]
		if def.Target == nil {
			for c := range y {
				y[c] = 0
			}
			continue
		}
		def.Target(bp.X[i*p.Dim:(i+1)*p.Dim], y)
	}
}

// Check validates c against the problem: the blocks in order, coordinates
// per point, target lengths and finite values.
func (p *Problem) Check(c *Collocation) error {
	if len(c.Blocks) != len(p.Blocks) {
		return fmt.Errorf("problem %s has blocks %v, got %d blocks", p.Name, p.BlockNames(), len(c.Blocks))
	}
	for b := range c.Blocks {
		bp, def := &c.Blocks[b], &p.Blocks[b]
		if bp.Name != def.Name {
			return fmt.Errorf("problem %s: block %d is %q, want %q (blocks are %v, in that order)", p.Name, b, bp.Name, def.Name, p.BlockNames())
		}
		if bp.Dim != p.Dim {
			return fmt.Errorf("block %s: points have %d coordinates, problem %s needs %d", bp.Name, bp.Dim, p.Name, p.Dim)
		}
		if len(bp.X)%p.Dim != 0 {
			return fmt.Errorf("block %s: %d coordinates is not a whole number of %d-dimensional points", bp.Name, len(bp.X), p.Dim)
		}
		if want := bp.Count() * def.Components; len(bp.Y) != want {
			return fmt.Errorf("block %s: %d targets for %d points with %d components (want %d)", bp.Name, len(bp.Y), bp.Count(), def.Components, want)
		}
		for i, v := range bp.X {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("block %s: point %d has a non-finite coordinate %v", bp.Name, i/p.Dim, v)
			}
		}
		for i, v := range bp.Y {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("block %s: target %d is not finite (%v)", bp.Name, i, v)
			}
		}
	}
	return nil
}

// resize returns s with length n, reusing its storage when it is big enough.
func resize(s []float64, n int) []float64 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float64, n)
}

// Targets returns the problem's data (no noise) for block b at points x
// (count×Dim): what a residual subtracts when no targets are given.
func (p *Problem) Targets(b int, x []float64) []float64 {
	bp := &BlockPoints{Name: p.Blocks[b].Name, Dim: p.Dim, X: x}
	bp.Y = make([]float64, bp.Count()*p.Blocks[b].Components)
	p.fillTargets(b, bp)
	return bp.Y
}
