package coordinator

import (
	"context"
	"fmt"

	"ntkbus/sampler"
)

// probeColumns are the probe columns of one step: Y[:, j] = d_j ≈ K c_j
// for j < s, row-major n×s, from whichever computed them (Algorithm 3's
// probes of the step, or the sketch's own).
type probeColumns struct {
	s, n int
	step int
	y    []float64
	got  []bool
	buf  []float64
}

func (c *probeColumns) reset(step, n int) {
	c.step, c.n = step, n
	if len(c.y) != n*c.s {
		c.y = make([]float64, n*c.s)
	}
	if len(c.got) != c.s {
		c.got = make([]bool, c.s)
	}
	for j := range c.got {
		c.got[j] = false
	}
}

// put keeps column j of step t.
func (c *probeColumns) put(t, j int, d []float64) {
	if j >= c.s {
		return
	}
	if c.step != t || c.n != len(d) || len(c.got) != c.s {
		c.reset(t, len(d))
	}
	for i, v := range d {
		c.y[i*c.s+j] = v
	}
	c.got[j] = true
}

// keepColumn offers probe j of the current step to the sketch's columns.
func (tr *Trainer) keepColumn(j int, d []float64) {
	if tr.natural != nil && tr.natural.cols != nil {
		tr.natural.cols.put(tr.t, j, d)
	}
}

// fill computes the columns of step t that no one computed yet: on the
// trainer's backend when it has one (samplers over NATS, or goroutines),
// else on its own prober. Probe j is keyed by (seed, t, j) and lands in
// column j, so the columns are the same bits wherever they are computed.
func (c *probeColumns) fill(ctx context.Context, tr *Trainer, t int) error {
	n := tr.ev.Layout().N
	if c.step != t || c.n != n || len(c.got) != c.s {
		c.reset(t, n)
	}
	lo := c.s
	for j, ok := range c.got {
		if !ok {
			lo = j
			break
		}
	}
	if lo == c.s {
		return nil
	}
	if tr.backend == nil {
		if len(c.buf) != tr.plan.Width() {
			c.buf = make([]float64, tr.plan.Width())
		}
		for j := lo; j < c.s; j++ {
			if c.got[j] {
				continue
			}
			tr.prober.Probe(uint32(j), c.buf)
			c.put(t, j, c.buf)
		}
		return nil
	}
	w := &Work{ID: uint64(t) + 1, PointsID: tr.pointsID(t), Step: uint32(t), Theta: tr.theta, Points: tr.points, PointSeed: tr.cfg.PointSeed}
	if tr.cfg.Resample {
		w.Counts = tr.points.Counts()
	}
	// Refusals count in the step's audit (train.csv's rejected), as
	// Algorithm 3's probes do.
	audit := &tr.rec.Audit
	before := AuditOf(tr.backend)
	var rejected int
	err := tr.backend.Probes(ctx, w, lo, c.s, func(j int, d []float64) error {
		var reason string
		switch {
		case j < lo || j >= c.s:
			reason = "refused"
		case c.got[j]:
			reason = "duplicate"
		case len(d) != n:
			reason = "length"
		case !finiteAll(d...):
			reason = "non_finite"
		default:
			c.put(t, j, d)
			return nil
		}
		rejected++
		audit.Reject(reason)
		return nil
	})
	audit.Add(AuditOf(tr.backend).Since(before))
	if err != nil {
		return fmt.Errorf("sketch columns: %w", err)
	}
	for j, ok := range c.got {
		if !ok {
			return fmt.Errorf("sketch column %d of %d did not arrive (%d results rejected)", j, c.s, rejected)
		}
	}
	return nil
}

// weighted returns the sketch's inputs for K̃ = Λ^{1/2} K Λ^{1/2} from the step's
// columns: the test matrix Λ^{-1/2}Ω (Ω the probe vectors with rows R_i = 0
// masked, as the probes applied them) and the columns Λ^{1/2}Y, since
// K̃ Λ^{-1/2}Ω = Λ^{1/2} K Ω.
func (c *probeColumns) weighted(plan *sampler.Plan, t int, r, sw []float64) (omega, y []float64) {
	n, s := c.n, c.s
	omega, y = make([]float64, n*s), make([]float64, n*s)
	g, m := make([]float64, n), make([]float64, n)
	for j := 0; j < s; j++ {
		plan.Vector(uint32(t), uint32(j), g)
		sampler.Cotangent(g, r, m)
		for i := 0; i < n; i++ {
			omega[i*s+j] = m[i] / sw[i]
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < s; j++ {
			y[i*s+j] = sw[i] * c.y[i*s+j]
		}
	}
	return omega, y
}
