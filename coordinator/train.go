package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
)

// WeightMode is how a training run sets its loss weights.
type WeightMode int

// The weight modes.
const (
	// Fixed weights: a plain PINN (all ones unless given).
	Fixed WeightMode = iota
	// Exact weights from the exact block traces every ExactEvery steps
	// (Algorithm 1).
	ExactWeights
	// Estimated weights from the moving average of probes (Algorithm 3).
	Estimated
)

var modeNames = [...]string{Fixed: "fixed", ExactWeights: "exact", Estimated: "estimate"}

func (m WeightMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("WeightMode(%d)", int(m))
}

// ParseWeightMode reads "fixed", "exact" or "estimate".
func ParseWeightMode(s string) (WeightMode, error) {
	for i, n := range modeNames {
		if n == s {
			return WeightMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown weight mode %q (want one of %v)", s, modeNames)
}

// The losses of TrainConfig.Loss.
const (
	LossSum  = "sum"
	LossMean = "mean"
)

// TrainConfig describes a training run. Everything that changes its result
// is here, so a run is reproduced from its config and seed.
type TrainConfig struct {
	Steps int        `json:"steps"`
	Mode  WeightMode `json:"mode"`

	FixedWeights []float64 `json:"fixed_weights"` // Fixed mode; nil means all ones
	// Loss is how a block's squares enter the objective: LossSum
	// (Σ_b λ_b ‖R_b‖², the paper's; "" is the same) or LossMean
	// (Σ_b λ_b ‖R_b‖²/n_b, the PINN libraries' and the ENGD papers').
	Loss        string `json:"loss,omitempty"`
	ExactEvery  int    `json:"exact_every"` // Exact mode: recompute every k steps (default 1); Estimated mode: also log the exact weights every k steps (0: never)
	Eigenvalues int    `json:"eigenvalues"` // with exact weights, also log the largest eigenvalues of K (small problems)

	Alpha      float64          `json:"alpha"`       // Algorithm 3's rate α
	InitProbes int              `json:"init_probes"` // N probes at θ_0
	StepProbes int              `json:"step_probes"` // m probes per step
	Probe      sampler.Settings `json:"probe"`       // how probes are drawn
	Estimator  Estimator        `json:"estimator"`   // what each step's probes give: Hutchinson's mean, or a sketch's block traces
	Kernel     bool             `json:"kernel"`      // keep the full K̂ moving average

	Spaced      bool    `json:"spaced"`    // Corollary 2's rule
	SpacedH0    float64 `json:"spaced_h0"` // h(t) = H0·(1+t)^Gamma; 0: λmax(Λ_0)·‖R(θ_0)‖²
	SpacedGamma float64 `json:"spaced_gamma"`

	Optimizer string              `json:"optimizer"` // a method of package optim: gd, adam, ngd, sngd
	Schedule  optim.Schedule      `json:"schedule"`
	Natural   optim.NaturalConfig `json:"natural"` // ngd and sngd

	Resample  bool   `json:"resample"`   // draw new collocation points every step
	PointSeed uint64 `json:"point_seed"` // seed of the points
	Counts    []int  `json:"counts"`     // points per block; nil: the problem's defaults

	Fused bool `json:"fused"` // compute each step's probes in the trainer's own backward pass (in process)

	// SharedWeight names blocks that share one exact weight,
	// λ = Tr K / Σ_{b∈S} Tr K_bb (the paper's λ_B for both boundary points
	// of 5.1); exact weights only.
	SharedWeight []string `json:"shared_weight,omitempty"`
}

// Validate reports configurations that cannot run, with what to change.
func (c *TrainConfig) Validate(blocks int) error {
	if c.Steps < 0 {
		return errors.New("steps must not be negative")
	}
	if c.Loss != "" && c.Loss != LossSum && c.Loss != LossMean {
		return fmt.Errorf("loss %q: want mean or sum", c.Loss)
	}
	switch c.Mode {
	case Fixed:
		if c.FixedWeights != nil && len(c.FixedWeights) != blocks {
			return fmt.Errorf("%d fixed weights for %d blocks", len(c.FixedWeights), blocks)
		}
		for _, w := range c.FixedWeights {
			if !(w > 0) || math.IsInf(w, 0) {
				return fmt.Errorf("fixed weight %v: want positive finite weights", w)
			}
		}
	case ExactWeights:
		if c.ExactEvery < 1 {
			return errors.New("exact weights need ExactEvery ≥ 1")
		}
	case Estimated:
		if !(c.Alpha > 0 && c.Alpha <= 1) {
			return fmt.Errorf("α = %v: want 0 < α ≤ 1", c.Alpha)
		}
		if c.InitProbes < 2 {
			return fmt.Errorf("initial probes N = %d: want at least 2", c.InitProbes)
		}
		if c.StepProbes < 1 {
			return fmt.Errorf("probes per step m = %d: want at least 1", c.StepProbes)
		}
		if err := c.Probe.Validate(); err != nil {
			return err
		}
		if err := c.Estimator.Check(c.Probe); err != nil {
			return err
		}
		if err := c.Estimator.CheckProbes("initial probes N", c.InitProbes); err != nil {
			return err
		}
		if err := c.Estimator.CheckProbes("probes per step m", c.StepProbes); err != nil {
			return err
		}
	default:
		return fmt.Errorf("weight mode %d", c.Mode)
	}
	oc := c.optimConfig(0)
	if err := oc.Validate(); err != nil {
		return err
	}
	if c.Optimizer == "lbfgs" && (c.Mode != Fixed || c.Resample) {
		return errors.New("lbfgs needs one objective for the whole run: fixed weights and fixed points (--weights fixed --resample false)")
	}
	if c.needsColumns() && c.Mode != Estimated {
		if err := c.Probe.Validate(); err != nil {
			return err
		}
	}
	if c.needsColumns() && c.Probe.Kind == sampler.Param {
		return errors.New("parameter-space probes give no kernel columns to sketch: use gaussian, rademacher or block probes")
	}
	if len(c.SharedWeight) > 0 && c.Mode != ExactWeights {
		return errors.New("a shared weight needs exact weights")
	}
	if c.Spaced && c.Mode == Fixed {
		return errors.New("the spaced-update rule needs changing weights (exact or estimate)")
	}
	if c.Spaced && c.SpacedH0 != 0 {
		if _, err := NewSpacedRule(c.SpacedH0, c.SpacedGamma); err != nil {
			return err
		}
	}
	if c.Spaced && !(c.SpacedGamma >= 0 && c.SpacedGamma < 1) {
		return fmt.Errorf("spaced-update exponent γ = %v: want 0 ≤ γ < 1, so that h(t) = o(t)", c.SpacedGamma)
	}
	return nil
}

// StepRecord is what one step did, for the run's log.
type StepRecord struct {
	Step      int
	BlockMSE  []float64 // mean squared residual per block
	Loss      float64   // Σ_b BlockMSE (each block counts equally)
	Objective float64   // ½ Σ_b w_b ‖R_b‖² (w_b = λ_b, or λ_b/n_b with the mean loss), what the step descends
	GradNorm2 float64   // ‖Jᵀ Λ R‖²
	LR        float64

	Lambda             []float64 // weights used by this step
	LambdaLo, LambdaHi []float64 // 95% interval (estimated mode), else equal to Lambda
	Accepted           bool      // the weights changed this step (spaced rule)
	Kept               int       // blocks whose candidate weight was not positive and finite, so kept its weight
	Trace              float64   // Tr K (estimated or exact) behind Lambda; NaN with fixed weights

	ExactLambda []float64 // exact weights, when computed this step
	Eigenvalues []float64 // largest eigenvalues of K, when computed this step

	// Audit is what this step's probes had refused (by reason) and checked
	// (--verify), by the backend and the accumulator.
	Audit Audit

	Optim *optim.Record // what the optimizer's step did
}

// Trainer runs PINN training with NTK loss weights. Step is pure
// computation; a Run around it adds logging, checkpoints and plots.
type Trainer struct {
	cfg     TrainConfig
	setup   *model.Setup
	backend Backend
	ev      model.Evaluator
	prober  *sampler.Prober
	plan    *sampler.Plan
	method  optim.Method
	needs   optim.Needs
	problem optim.Problem
	orec    optim.Record

	theta  []float64
	points *model.Collocation
	t      int // the next step

	lambda []float64
	w      []float64 // w_b = λ_b, or λ_b/n_b with Loss "mean": Φ = ½ Σ_b w_b ‖R_b‖²
	avg    *MovingAverage
	spaced *SpacedRule
	acc    *Accumulator
	cols   *ColumnAccumulator // the step's columns (sketch estimators, an optimizer's sketch), fed through acc
	e      Estimate

	perBlock [][]float64
	grad     []float64
	lr       []float64 // Λ R
	js       []uint32
	ds       [][]float64
	diag     []float64
	traces   []float64
	kernel   []float64 // K̂ of the step's probes, when the average keeps one
	exactK   []float64
	obs      []bool
	cots     []model.Cotangent
	lam, se  []float64
	kept     []bool
	shared   []bool // blocks of cfg.SharedWeight
	rec      StepRecord

	// touched is set once a step has changed the state a checkpoint
	// keeps (θ, the weights, the moving average, the optimizer's): until
	// then a step that fails leaves the trainer as it was before it.
	touched bool
	// OnProbe, when set, is called as the initial probes arrive: done
	// are in hand, held more received and held by the backend for its
	// checks (--verify).
	OnProbe func(done, held, total int)
	// OnWork, when set, is told how the long parts of a step go: the
	// probes of a step after the first on a backend, an optimizer's solve.
	OnWork func(what string, done, total int)
}

// NewTrainer prepares a run from θ_0. backend computes probes (the initial
// N, and each step's m unless cfg.Fused); it may be nil for Fixed and
// ExactWeights runs and fused runs with in-process initial probes.
func NewTrainer(setup *model.Setup, theta0 []float64, cfg TrainConfig, backend Backend, opt model.Options) (*Trainer, error) {
	if err := setup.CheckTheta(theta0); err != nil {
		return nil, err
	}
	if cfg.ExactEvery == 0 && cfg.Mode == ExactWeights {
		cfg.ExactEvery = 1
	}
	B := len(setup.Problem.Blocks)
	if err := cfg.Validate(B); err != nil {
		return nil, err
	}
	pts, err := setup.DrawPoints(cfg.PointSeed, 0, cfg.Counts, nil)
	if err != nil {
		return nil, err
	}
	ev, err := setup.NewEvaluator(pts, opt)
	if err != nil {
		return nil, err
	}
	lay := ev.Layout()
	tr := &Trainer{
		cfg: cfg, setup: setup, backend: backend, ev: ev,
		theta: append([]float64(nil), theta0...), points: pts,
		grad: make([]float64, lay.P), diag: make([]float64, lay.N), traces: make([]float64, B),
		lambda: make([]float64, B), w: make([]float64, B), obs: make([]bool, B),
	}
	tr.perBlock = make([][]float64, B)
	for b := range tr.perBlock {
		tr.perBlock[b] = make([]float64, lay.P)
	}
	if tr.method, err = optim.New(cfg.optimConfig(opt.MaxMemory), lay.P); err != nil {
		return nil, err
	}
	tr.needs = tr.method.Needs()
	if cfg.NeedsProbes() {
		if cfg.Mode == Estimated && backend == nil && !cfg.Fused {
			return nil, errors.New("estimated weights need a backend to compute probes, or fused in-process probes")
		}
		if tr.plan, err = sampler.NewPlan(cfg.Probe, lay); err != nil {
			return nil, err
		}
		if cfg.Kernel && cfg.Probe.Kind == sampler.Param {
			return nil, errors.New("parameter-space probes give no kernel: drop the kernel option or use another probe kind")
		}
	} else {
		tr.plan, _ = sampler.NewPlan(sampler.Settings{}, lay)
	}
	tr.prober = sampler.NewProber(ev, tr.plan)
	if len(cfg.SharedWeight) > 0 {
		tr.shared = make([]bool, B)
		for _, name := range cfg.SharedWeight {
			b := slices.Index(lay.BlockNames(), name)
			if b < 0 {
				return nil, fmt.Errorf("shared weight: no block %q (blocks are %v)", name, lay.BlockNames())
			}
			tr.shared[b] = true
		}
	}
	for b := range tr.lambda {
		tr.lambda[b] = 1
		if cfg.Mode == Fixed && cfg.FixedWeights != nil {
			tr.lambda[b] = cfg.FixedWeights[b]
		}
	}
	return tr, nil
}

// Theta is the current θ (owned by the trainer).
func (tr *Trainer) Theta() []float64 { return tr.theta }

// Setup is the run's setup.
func (tr *Trainer) Setup() *model.Setup { return tr.setup }

// Layout is the residual layout.
func (tr *Trainer) Layout() *model.Layout { return tr.ev.Layout() }

// Next is the index of the next step.
func (tr *Trainer) Next() int { return tr.t }

// Points are the current step's collocation points.
func (tr *Trainer) Points() *model.Collocation { return tr.points }

// Step runs one training step: R(θ_t), the weights, the corrector step.
// The returned record is owned by the trainer until the next Step.
func (tr *Trainer) Step(ctx context.Context) (*StepRecord, error) {
	t := tr.t
	cfg := &tr.cfg
	lay := tr.ev.Layout()
	B := len(lay.Blocks)
	if cfg.Resample && t > 0 {
		if _, err := tr.setup.DrawPoints(cfg.PointSeed, uint32(t), cfg.Counts, tr.points); err != nil {
			return nil, err
		}
		if err := tr.ev.SetPoints(tr.points); err != nil {
			return nil, err
		}
	}
	r := tr.prober.SetBase(tr.theta, uint32(t))
	tr.touched = false
	rec := &tr.rec
	tr.resetRecord(B)
	rec.Step = t

	direct := false // the gradient Jᵀ Λ R is in tr.grad already, not per block
	switch cfg.Mode {
	case Fixed:
		if tr.needs.Gradient {
			tr.effectiveWeights()
			tr.weightedGradient(r)
		}
		direct = true
		rec.Trace = math.NaN()
	case ExactWeights:
		tr.gradients(r)
		if t%cfg.ExactEvery == 0 {
			cand, tr0, err := tr.exactWeights(rec)
			if err != nil {
				return nil, err
			}
			tr.touched = true
			tr.shareWeight(cand)
			tr.decide(t, cand, r, rec)
			rec.Trace = tr0
		}
	case Estimated:
		if err := tr.estimateStep(ctx, t, r); err != nil {
			return nil, err
		}
		if len(tr.lam) != B {
			tr.lam, tr.se = make([]float64, B), make([]float64, B)
		}
		lam, se := tr.lam, tr.se
		tr.avg.WeightsInto(lam, se)
		tr.decide(t, lam, r, rec)
		for b := range lam {
			if (rec.Accepted || t == 0) && !tr.kept[b] {
				rec.LambdaLo[b] = lam[b] - Z95*se[b]
				rec.LambdaHi[b] = lam[b] + Z95*se[b]
			} else {
				rec.LambdaLo[b], rec.LambdaHi[b] = tr.lambda[b], tr.lambda[b]
			}
		}
		var trace float64
		for _, v := range tr.avg.T {
			trace += v
		}
		rec.Trace = trace
		if cfg.ExactEvery > 0 && t%cfg.ExactEvery == 0 {
			if _, _, err := tr.exactWeights(rec); err != nil {
				return nil, err
			}
		}
	}
	copy(rec.Lambda, tr.lambda)
	if cfg.Mode != Estimated || !rec.Accepted && t > 0 {
		copy(rec.LambdaLo, tr.lambda)
		copy(rec.LambdaHi, tr.lambda)
	}

	// Losses, and the corrector step θ_{t+1} = θ_t − η Σ_b w_b Jᵀ R_b.
	tr.effectiveWeights()
	for b, sp := range lay.Blocks {
		var ss float64
		for _, v := range r[sp.Off : sp.Off+sp.Len] {
			ss += v * v
		}
		if sp.Len > 0 {
			rec.BlockMSE[b] = ss / float64(sp.Len)
		}
		rec.Loss += rec.BlockMSE[b]
		rec.Objective += tr.w[b] * ss / 2
	}
	switch {
	case !tr.needs.Gradient:
		rec.GradNorm2 = math.NaN() // its step needs no gradient; see gradients
	case direct:
		for _, g := range tr.grad {
			rec.GradNorm2 += g * g
		}
	default:
		// One pass over the per-block gradients, adding in block order:
		// a chunk of the gradient at a time, so it stays in cache while
		// each block's chunk is added and its squares are summed (in the
		// order of the loop above: the same bits).
		const chunk = 512
		for i0 := 0; i0 < len(tr.grad); i0 += chunk {
			g := tr.grad[i0:min(i0+chunk, len(tr.grad))]
			clear(g)
			for b, pb := range tr.perBlock {
				lb, src := tr.w[b], pb[i0:i0+len(g)]
				for j := range g {
					g[j] += lb * src[j]
				}
			}
			for _, v := range g {
				rec.GradNorm2 += v * v
			}
		}
	}
	if math.IsNaN(rec.Objective) || math.IsInf(rec.Objective, 0) {
		return nil, fmt.Errorf("step %d: the loss is %v: training diverged (lower the learning rate)", t, rec.Objective)
	}
	if cfg.needsColumns() && cfg.Mode != Estimated {
		// The optimizer's columns, computed when it asks for them.
		if tr.cols == nil {
			var err error
			if tr.cols, err = newColumns(tr.plan, uint32(t), r, false, cfg.StepProbes); err != nil {
				return nil, err
			}
		} else {
			tr.cols.Reset(uint32(t), r)
		}
	}
	tr.touched = true // the optimizer changes θ and its own state
	if err := tr.optimStep(ctx, t, r, rec); err != nil {
		return nil, err
	}
	rec.LR = tr.orec.LR
	tr.t++
	return rec, nil
}

func (tr *Trainer) resetRecord(B int) {
	rec := &tr.rec
	grow := func(s []float64) []float64 {
		if len(s) != B {
			return make([]float64, B)
		}
		for i := range s {
			s[i] = 0
		}
		return s
	}
	rec.BlockMSE = grow(rec.BlockMSE)
	rec.Lambda = grow(rec.Lambda)
	rec.LambdaLo = grow(rec.LambdaLo)
	rec.LambdaHi = grow(rec.LambdaHi)
	rec.Loss, rec.Objective, rec.GradNorm2 = 0, 0, 0
	rec.Trace = math.NaN() // set where computed: a resumed run must not inherit a stale one
	rec.Accepted = false
	rec.ExactLambda = nil
	rec.Eigenvalues = nil
	rec.Audit = Audit{}
	rec.Optim = nil
}

// exactWeights computes the exact block traces at the base point and their
// weights (and, when asked, eigenvalues of K) into rec.
func (tr *Trainer) exactWeights(rec *StepRecord) ([]float64, float64, error) {
	tr.ev.Diagonal(tr.diag)
	tr.ev.Layout().BlockSums(tr.diag, tr.traces)
	w := make([]float64, len(tr.traces))
	model.Weights(tr.traces, w)
	var tr0 float64
	for _, v := range tr.traces {
		tr0 += v
	}
	rec.ExactLambda = w
	if tr.cfg.Eigenvalues > 0 {
		n := tr.ev.Layout().N
		if tr.exactK == nil {
			tr.exactK = make([]float64, n*n)
		}
		if err := tr.ev.NTK(tr.exactK); err != nil {
			return nil, 0, err
		}
		vals, err := topEigenvalues(tr.exactK, n, tr.cfg.Eigenvalues)
		if err != nil {
			return nil, 0, err
		}
		rec.Eigenvalues = vals
	}
	return w, tr0, nil
}

// decide installs candidate weights, through the spaced rule when enabled.
// A candidate that is not positive and finite (a block whose rows all have
// R_i = 0 has no estimated trace; a noisy estimate from few probes can be
// negative, which would turn descent into ascent for that block) leaves the
// block's current weight in place.
func (tr *Trainer) decide(t int, cand []float64, r []float64, rec *StepRecord) {
	rec.Kept = 0
	if len(tr.kept) != len(cand) {
		tr.kept = make([]bool, len(cand))
	}
	for b, l := range cand {
		tr.kept[b] = !(l > 0) || math.IsInf(l, 0)
		if tr.kept[b] {
			cand[b] = tr.lambda[b]
			rec.Kept++
		}
	}
	if !tr.cfg.Spaced || t == 0 {
		if tr.cfg.Spaced && tr.spaced == nil {
			h0 := tr.cfg.SpacedH0
			if h0 == 0 {
				var rr, lmax float64
				for _, v := range r {
					rr += v * v
				}
				for _, l := range cand {
					lmax = math.Max(lmax, l)
				}
				h0 = lmax * rr
			}
			tr.spaced, _ = NewSpacedRule(h0, tr.cfg.SpacedGamma)
		}
		copy(tr.lambda, cand)
		rec.Accepted = true
		return
	}
	var rr float64
	for _, v := range r {
		rr += v * v
	}
	// At step t the rule's "t+1" is this step: S(t−1) + λmax(Λ̃_t − Λ_{t−1})‖R(θ_t)‖² ≤ h(t−1).
	if tr.spaced.Decide(t-1, tr.lambda, cand, rr) {
		copy(tr.lambda, cand)
		rec.Accepted = true
	}
}

// estimateStep draws the step's probes and updates the moving average: N
// probes at t = 0, m after. The per-block gradients are computed in the
// same backward pass (fused) or while the backend works.
func (tr *Trainer) estimateStep(ctx context.Context, t int, r []float64) error {
	cfg := &tr.cfg
	m := cfg.StepProbes
	if t == 0 {
		m = cfg.InitProbes
	}
	switch {
	case tr.acc == nil && cfg.Estimator.Sketch():
		cols, err := NewColumnAccumulator(tr.plan, uint32(t), r, false)
		if err != nil {
			return err
		}
		tr.cols, tr.acc = cols, cols.Accumulator()
	case tr.acc == nil && cfg.needsColumns():
		// Hutchinson's weights, and the optimizer's columns from the same
		// probes.
		cols, err := newColumns(tr.plan, uint32(t), r, cfg.Kernel, cfg.StepProbes)
		if err != nil {
			return err
		}
		tr.cols, tr.acc = cols, cols.Accumulator()
	case tr.acc == nil:
		tr.acc = NewAccumulator(tr.plan, uint32(t), r, cfg.Kernel)
	case tr.cols != nil:
		tr.cols.Reset(uint32(t), r)
	default:
		tr.acc.Reset(uint32(t), r)
	}
	switch {
	case cfg.Fused && t > 0 && m <= maxFused:
		for len(tr.ds) < m {
			tr.ds = append(tr.ds, make([]float64, tr.plan.Width()))
		}
		tr.js = tr.js[:0]
		for j := 0; j < m; j++ {
			tr.js = append(tr.js, uint32(j))
		}
		tr.prober.ProbesWithGradient(tr.js, tr.ds[:m], tr.perBlock)
		for j := 0; j < m; j++ {
			if err := tr.add(j, tr.ds[j]); err != nil {
				return fmt.Errorf("step %d: %w", t, err)
			}
		}
	case tr.backend == nil:
		// In process, one probe at a time on the trainer's own evaluator.
		if len(tr.ds) == 0 {
			tr.ds = append(tr.ds, make([]float64, tr.plan.Width()))
		}
		for j := 0; j < m; j++ {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("step %d probes: %w", t, err)
			}
			tr.prober.Probe(uint32(j), tr.ds[0])
			if err := tr.add(j, tr.ds[0]); err != nil {
				return fmt.Errorf("step %d: %w", t, err)
			}
			if t == 0 {
				tr.initInHand(j+1, m)
			}
		}
		tr.gradients(r)
	default:
		// On the backend (a run's goes through its probe log, which
		// serves the probes an interrupted session computed).
		w := &Work{ID: uint64(t) + 1, PointsID: tr.pointsID(t), Step: uint32(t), Theta: tr.theta, Points: tr.points, PointSeed: cfg.PointSeed}
		if cfg.Resample {
			w.Counts = tr.points.Counts()
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.gradients(r)
		}()
		before := AuditOf(tr.backend)
		audit := &tr.rec.Audit
		// Collect keeps the step's results until their senders are known
		// to be honest at the step's end, when the backend may take
		// results back (a sampler caught forging): nothing a caught forger
		// gave the step reaches the accumulator.
		refused, err := Collect(ctx, tr.backend, w, 0, m, tr.plan.Width(), tr.add, func(n int) {
			if t == 0 {
				tr.initInHand(n, m)
			} else if tr.OnWork != nil {
				tr.OnWork("probes", n, m)
			}
		})
		wg.Wait()
		audit.Add(refused)
		audit.Add(AuditOf(tr.backend).Since(before))
		if err != nil {
			return fmt.Errorf("step %d probes: %w", t, err)
		}
		if tr.acc.Applied() != m {
			return fmt.Errorf("step %d: %d of %d probes arrived (%d rejected)", t, tr.acc.Applied(), m, audit.Total())
		}
	}
	tr.touched = true // the moving average changes from here on
	var sk *SketchResult
	if cfg.Estimator.Sketch() {
		var err error
		if sk, err = tr.cols.Estimate(cfg.Estimator); err != nil {
			return err
		}
		tr.e = sk.Estimate
	} else {
		tr.acc.EstimateInto(&tr.e)
	}
	var kernel []float64
	if cfg.Kernel {
		n := tr.ev.Layout().N
		if tr.kernel == nil {
			tr.kernel = make([]float64, n*n)
		}
		if sk != nil {
			sk.Kernel(tr.kernel)
		} else if err := tr.acc.Kernel(tr.kernel, false); err != nil {
			return err
		}
		kernel = tr.kernel
	}
	if t == 0 || tr.avg == nil {
		var err error
		tr.avg, err = NewMovingAverage(cfg.Alpha, tr.e, kernel)
		return err
	}
	var observed []bool
	if tr.plan.Kind == sampler.Block {
		for b := range tr.obs {
			tr.obs[b] = false
		}
		for j := 0; j < m; j++ {
			tr.obs[tr.plan.BlockOf(uint32(j))] = true
		}
		observed = tr.obs
	}
	tr.avg.Update(tr.e, kernel, observed)
	return nil
}

// add feeds probe j's result to the step's accumulator, through the
// column accumulator with a sketch estimator.
func (tr *Trainer) add(j int, d []float64) error {
	if tr.cols != nil {
		return tr.cols.Add(j, d)
	}
	return tr.acc.Add(j, d)
}

// InitKeepBytes bounds the memory of the probes a resumed run reads back
// from its probe log (37,000 wave probes): the rest are computed again.
const InitKeepBytes = 256 << 20

// InitKept is how many probes of the given width a resumed run reads back
// from its probe log at most.
func InitKept(probes, width int) int {
	return min(probes, InitKeepBytes/(8*max(1, width)))
}

// initInHand reports the initial probes in hand (n of m), and those the
// backend received and holds for its checks.
func (tr *Trainer) initInHand(n, m int) {
	if tr.OnProbe != nil {
		tr.OnProbe(n, HeldBy(tr.backend), m)
	}
}

// shareWeight gives the blocks of cfg.SharedWeight one weight from their
// summed exact traces (tr.traces).
func (tr *Trainer) shareWeight(w []float64) {
	if len(tr.shared) == 0 {
		return
	}
	var all, part float64
	for b, t := range tr.traces {
		all += t
		if tr.shared[b] {
			part += t
		}
	}
	for b := range w {
		if tr.shared[b] {
			w[b] = all / part
		}
	}
}

// maxFused bounds the probes a fused step pushes through one backward pass
// (each needs its own work memory); more go one by one.
const maxFused = 4

// gradients sets the per-block gradients Jᵀ R_b at the base point. An
// optimizer that needs no gradient (a natural gradient takes Jᵀ Λ^{1/2} z
// instead) skips the backward pass.
func (tr *Trainer) gradients(r []float64) {
	if !tr.needs.Gradient {
		return
	}
	if len(tr.cots) != 1 {
		tr.cots = make([]model.Cotangent, 1)
	}
	tr.cots[0] = model.Cotangent{V: r, PerBlock: tr.perBlock}
	tr.ev.Backward(tr.cots)
}

// effectiveWeights sets w_b from the loss weights λ_b: λ_b, or λ_b/n_b
// (n_b the block's rows) for the per-block mean of squares.
func (tr *Trainer) effectiveWeights() {
	for b, sp := range tr.ev.Layout().Blocks {
		tr.w[b] = tr.lambda[b]
		if tr.cfg.Loss == LossMean && sp.Len > 0 {
			tr.w[b] /= float64(sp.Len)
		}
	}
}

// weightedGradient sets tr.grad = Jᵀ W R at the base point in one backward
// pass, when the weights are known before it (fixed weights): one weight
// gradient per layer instead of one per block, and no sum over blocks.
func (tr *Trainer) weightedGradient(r []float64) {
	lay := tr.ev.Layout()
	if len(tr.lr) != len(r) {
		tr.lr = make([]float64, len(r))
	}
	for b, sp := range lay.Blocks {
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			tr.lr[i] = tr.w[b] * r[i]
		}
	}
	if len(tr.cots) != 1 {
		tr.cots = make([]model.Cotangent, 1)
	}
	tr.cots[0] = model.Cotangent{V: tr.lr, Dst: tr.grad}
	tr.ev.Backward(tr.cots)
}

func (tr *Trainer) pointsID(t int) uint64 {
	if tr.cfg.Resample {
		return uint64(t) + 1
	}
	return 1
}

// Average is the moving average (estimated mode), or nil.
func (tr *Trainer) Average() *MovingAverage { return tr.avg }

// MarshalText writes the mode name.
func (m WeightMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode name.
func (m *WeightMode) UnmarshalText(b []byte) (err error) {
	*m, err = ParseWeightMode(string(b))
	return
}

// ExactKernel sets dst (n×n) to the exact NTK at the current θ and the
// current step's points (one forward pass, then the structured NTK).
func (tr *Trainer) ExactKernel(dst []float64) error {
	tr.prober.SetBase(tr.theta, uint32(tr.t))
	return tr.ev.NTK(dst)
}
