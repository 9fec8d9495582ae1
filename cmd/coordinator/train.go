package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus"
	"ntkbus/coordinator/optim"
	"ntkbus/coordinator/report"
	"ntkbus/model"
)

// trainFlags are the flags of "coordinator train".
type trainFlags struct {
	bus         busFlags
	pf          problemFlags
	probe       probeFlags
	logf        logFlags
	seed        uint64
	pointSeed   uint64
	probeSeed   uint64
	steps       int
	weights     string
	fixed       string
	loss        string
	stop        coordinator.StopRules
	alpha       float64
	initProbes  int
	stepProbes  int
	exactEvery  int
	eig         int
	kernel      bool
	optimizer   string
	lr          float64
	decay       float64
	decayEvery  int
	resample    string
	spaced      bool
	spacedH0    float64
	spacedGamma float64
	workers     int
	out         string
	resume      string
	init        string    // --init: θ_0 from this snapshot
	config      string    // --config: another run's config.json
	theta0      []float64 // θ_0 read from --init
	ckEvery     int
	errEvery    int
	errGrid     int
	maxMem      int64
	figures     bool
	damping     string
	dampStart   float64
	lineSearch  bool
	solver      string
	cgTol       float64
	cgMaxIter   int
	shared      string
	standardize string
	set         map[string]bool // flags given on the command line
}

func (f *trainFlags) register(fs *flag.FlagSet) {
	f.bus.register(fs, "embedded", runtime.NumCPU())
	addProblemFlags(fs, &f.pf)
	f.probe.register(fs)
	f.probe.registerEstimator(fs)
	f.logf.register(fs)
	fs.Uint64Var(&f.seed, "seed", 1, "seed of θ_0 (and, unless set apart, of the points and probes)")
	fs.Uint64Var(&f.pointSeed, "point-seed", 0, "seed of the collocation points (default: --seed)")
	fs.Uint64Var(&f.probeSeed, "probe-seed", 0, "seed of the probe vectors (default: --seed)")
	fs.IntVar(&f.steps, "steps", 1000, "training steps")
	fs.StringVar(&f.weights, "weights", "estimate", "loss weights: estimate (Algorithm 3), exact (Algorithm 1), or fixed (a plain PINN)")
	fs.StringVar(&f.fixed, "fixed-weights", "", "fixed weights per block, comma-separated (default all 1)")
	fs.StringVar(&f.loss, "loss", "", "how a block's squares enter the loss: mean (Σ_b λ_b‖R_b‖²/n_b) or sum (Σ_b λ_b‖R_b‖², the paper's) (default mean with --weights fixed, sum with NTK weights)")
	fs.Float64Var(&f.stop.TargetError, "target-error", 0, "stop once the relative L² error (evaluated every --error-every steps) is at most this (0: no target)")
	fs.Float64Var(&f.stop.TargetLoss, "target-loss", 0, "stop once the loss (Σ_b mean squared residual) is at most this (0: no target)")
	fs.IntVar(&f.stop.StallSteps, "stall-steps", 0, "stop when the loss has not fallen by --stall-decrease in this many steps, 0: never (default 100 for ngd, sngd and lbfgs, 0 for gd and adam)")
	fs.Float64Var(&f.stop.StallDecrease, "stall-decrease", 0.1, "the relative decrease of the loss the stall rule waits for (10%: a natural gradient at its floor still gains 1–3% per 100 steps, nothing in the error)")
	fs.Float64Var(&f.alpha, "alpha", 1e-3, "moving-average rate α of Algorithm 3")
	fs.IntVar(&f.initProbes, "init-probes", 100, "probes N at θ_0 (Algorithm 3)")
	fs.IntVar(&f.stepProbes, "probes", 0, "new probes m per step of Algorithm 3; for sngd the sketch's columns S (also Algorithm 3's m); for ngd --solver cg the preconditioner's columns (default 1; sngd 100; ngd --solver cg 0)")
	fs.IntVar(&f.exactEvery, "exact-every", 0, "exact weights every k steps: Algorithm 1's period (default 1), or with --weights estimate the period of the exact reference logged beside the estimate (0: none)")
	fs.IntVar(&f.eig, "eigenvalues", 0, "log the k largest eigenvalues of the exact K at exact steps (small problems)")
	fs.BoolVar(&f.kernel, "kernel", false, "keep the full n×n K̂ moving average, not only its block traces")
	fs.StringVar(&f.optimizer, "optimizer", "adam", "gd (the paper's gradient descent), adam, lbfgs (gonum's L-BFGS with the Moré–Thuente line search; fixed weights and points), ngd (natural gradient from the exact NTK) or sngd (from its Nyström sketch of --probes S columns)")
	fs.Float64Var(&f.lr, "lr", 0, "learning rate η (default 0.001; ngd and sngd 1, where the line search starts)")
	fs.StringVar(&f.damping, "damping", "auto", "ngd, sngd: damping μ of (K + μI)z = R, a number or auto (Levenberg–Marquardt)")
	fs.Float64Var(&f.dampStart, "damping-start", 0, "ngd, sngd with --damping auto: the first μ (0: 10⁻⁶·max K̃_ii)")
	fs.BoolVar(&f.lineSearch, "line-search", true, "ngd, sngd: backtracking Armijo line search on η")
	fs.StringVar(&f.solver, "solver", "cholesky", "ngd: cholesky (the dense exact K; for p ≤ n the same step from the p×p Gramian) or cg (conjugate gradients on J(Jᵀv), preconditioned by the Nyström sketch of --probes S columns; S = 0: none); sngd always solves by Woodbury on its sketch")
	fs.Float64Var(&f.cgTol, "cg-tol", 1e-10, "relative residual at which CG stops")
	fs.IntVar(&f.cgMaxIter, "cg-max-iter", 1000, "CG products per step at most")
	fs.StringVar(&f.shared, "shared-weight", "", "blocks that share one exact weight Tr K / Σ Tr K_bb, comma-separated (e.g. left,right: the paper's λ_B of 5.1)")
	fs.StringVar(&f.standardize, "standardize", "", "input standardization: domain (the uniform distribution on the domain), points (mean and standard deviation of the first step's collocation points) or none (default: the problem's)")
	fs.Float64Var(&f.decay, "decay", 0.9, "learning-rate decay factor")
	fs.IntVar(&f.decayEvery, "decay-every", 1000, "steps between decays (0: constant rate)")
	fs.StringVar(&f.resample, "resample", "auto", "new collocation points every step: true, false, or auto (as the problem says: the paper's wave and qtensor, a problem file's resample)")
	fs.BoolVar(&f.spaced, "spaced", false, "accept new weights only under Corollary 2's spaced-update rule")
	fs.Float64Var(&f.spacedH0, "spaced-h0", 0, "h(t) = h0·(1+t)^γ of the spaced rule (0: λmax(Λ_0)·‖R(θ_0)‖²)")
	fs.Float64Var(&f.spacedGamma, "spaced-gamma", 0.5, "exponent γ < 1 of h(t)")
	fs.IntVar(&f.workers, "workers", runtime.NumCPU(), "goroutines for the initial probes with --local")
	fs.StringVar(&f.out, "out", "", "output folder (default runs/<problem>-<time>)")
	fs.StringVar(&f.resume, "resume", "", "resume the run in this folder from its checkpoint")
	fs.StringVar(&f.init, "init", "", "start from θ of this snapshot or a run's final.json (e.g. ngd after adam); the network is the snapshot's, the points, seeds and training settings this command's")
	fs.StringVar(&f.config, "config", "", "start a new run with the settings of this config.json (another run's, with its init.json if it has one): the same numbers; --steps, --out, the stop rules and where probes are computed may be given")
	fs.IntVar(&f.ckEvery, "checkpoint-every", 0, "steps between checkpoints (default steps/10)")
	fs.IntVar(&f.errEvery, "error-every", coordinator.DefaultErrorEvery, "steps between solution-error evaluations (problems with an exact solution or reference data, and qtensor with its finite-difference reference)")
	fs.IntVar(&f.errGrid, "error-grid", 0, "grid points per coordinate of the solution error (default 201 in 1-D, 41 in 2-D, 21 in 3-D; grid points in a hole are left out, and with reference data its points are used instead)")
	fs.BoolVar(&f.figures, "figures", true, "draw the run's figures when it ends (false: \"coordinator plot DIR\" draws them later)")
	fs.Int64Var(&f.maxMem, "max-memory", model.DefaultMaxMemory, "bytes the whole work may use (evaluators, samplers in this process, kernels), checked before anything is allocated")
}

func (f *trainFlags) runConfig() (coordinator.RunConfig, error) {
	var rc coordinator.RunConfig
	// Defaults that natural() changes for ngd and sngd where not given.
	if !f.set["lr"] {
		f.lr = 1e-3
	}
	if !f.set["probes"] {
		f.stepProbes = 1
	}
	s, err := f.modelSetup()
	if err != nil {
		return rc, err
	}
	rc.Model = s.Config
	if f.theta0 != nil {
		rc.Init = coordinator.NewInit(f.theta0, f.init)
	}
	rc.Seed = f.seed
	if err := f.standardization(s, &rc.Model); err != nil {
		return rc, err
	}
	rc.ErrorGrid = f.errGrid
	if f.errEvery < 1 {
		return rc, badInput("--error-every %d: want at least 1", f.errEvery)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"exact-every", f.exactEvery}, {"eigenvalues", f.eig}, {"decay-every", f.decayEvery}, {"checkpoint-every", f.ckEvery}, {"error-grid", f.errGrid}} {
		if c.v < 0 {
			return rc, badInput("--%s %d: want a number ≥ 0", c.name, c.v)
		}
	}
	rc.ErrorEvery = f.errEvery
	rc.Stop = f.stopRules(f.optimizer)
	if err := rc.Stop.Validate(); err != nil {
		return rc, inputError{err}
	}
	pointSeed, probeSeed := f.pointSeed, f.probeSeed
	if pointSeed == 0 {
		pointSeed = f.seed
	}
	if probeSeed == 0 {
		probeSeed = f.seed
	}
	mode, err := coordinator.ParseWeightMode(f.weights)
	if err != nil {
		return rc, inputError{err}
	}
	natural, err := f.natural()
	if err != nil {
		return rc, err
	}
	settings, err := f.probe.settings(probeSeed)
	if err != nil {
		return rc, err
	}
	est, err := f.probe.estimatorKind()
	if err != nil {
		return rc, err
	}
	resample := false
	switch f.resample {
	case "auto":
		resample = s.Problem.Resample
	case "true", "false":
		resample = f.resample == "true"
	default:
		return rc, badInput("--resample %q: want true, false or auto", f.resample)
	}
	var fixed []float64
	if f.fixed != "" {
		for _, x := range strings.Split(f.fixed, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return rc, badInput("--fixed-weights: %q is not a number", x)
			}
			fixed = append(fixed, v)
		}
	}
	loss := f.loss
	switch {
	case loss == "" && mode == coordinator.Fixed:
		loss = coordinator.LossMean
	case loss == "":
		loss = coordinator.LossSum
	case loss != coordinator.LossMean && loss != coordinator.LossSum:
		return rc, badInput("--loss %q: want mean or sum", f.loss)
	}
	rc.Train = coordinator.TrainConfig{
		Steps: f.steps, Mode: mode, FixedWeights: fixed, Loss: loss,
		ExactEvery: f.exactEvery, Eigenvalues: f.eig,
		Alpha: f.alpha, InitProbes: f.initProbes, StepProbes: f.stepProbes, Probe: settings, Estimator: est, Kernel: f.kernel,
		Spaced: f.spaced, SpacedH0: f.spacedH0, SpacedGamma: f.spacedGamma,
		Optimizer: f.optimizer, Schedule: optim.Schedule{LR: f.lr, Decay: f.decay, Every: f.decayEvery},
		Natural:  natural,
		Resample: resample, PointSeed: pointSeed, Counts: f.pf.points,
		Fused: true,
	}
	if f.shared != "" {
		rc.Train.SharedWeight = strings.Split(f.shared, ",")
	}
	if err := rc.Train.Validate(len(s.Problem.Blocks)); err != nil && !(mode == coordinator.ExactWeights && f.exactEvery == 0) {
		return rc, inputError{err}
	}
	if f.eig > 0 && mode == coordinator.Fixed {
		return rc, badInput("--eigenvalues needs exact steps: use --weights exact, or --exact-every with --weights estimate")
	}
	return rc, nil
}

func runTrain(args []string, out io.Writer) error {
	fs := newFlags("train", "--problem P [flags]   |   train --resume DIR [--steps N]")
	var f trainFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	set := f.set
	if f.workers < 1 {
		return badInput("--workers %d: want at least 1", f.workers)
	}
	if err := f.bus.check(); err != nil {
		return err
	}
	if f.steps < 1 && (f.resume == "" || set["steps"]) {
		return badInput("--steps %d: want at least 1", f.steps)
	}
	var (
		rc   coordinator.RunConfig
		dir  string
		err  error
		from int // the step the run starts at
	)
	if f.resume != "" {
		dir = f.resume
		if f.init != "" || f.config != "" {
			return badInput("--init and --config start a new run; --resume goes on with the run in %s", dir)
		}
		if name := configFlag(fs, set); name != "" {
			return badInput("--%s with --resume: a resumed run keeps the settings in %s (only --steps extends it); start a new run to change them", name, filepath.Join(dir, "config.json"))
		}
		st, err := coordinator.ReadRun(dir)
		if err != nil {
			return inputError{err}
		}
		if !st.Finished() || set["steps"] {
			fmt.Fprintf(out, "train: resuming %s at step %d of %d\n", dir, st.Step, st.Config.Train.Steps)
		}
		if stopSet(set) {
			rules := f.stopRules(st.Config.Train.Optimizer)
			old := st.Config.Stop
			for name, keep := range map[string]func(){
				"target-error": func() { rules.TargetError = old.TargetError }, "target-loss": func() { rules.TargetLoss = old.TargetLoss },
				"stall-steps": func() { rules.StallSteps = old.StallSteps }, "stall-decrease": func() { rules.StallDecrease = old.StallDecrease },
			} {
				if !set[name] {
					keep()
				}
			}
			if err := coordinator.SetStopRules(dir, rules); err != nil {
				return inputError{err}
			}
			st.Config.Stop = rules
		}
		if set["steps"] && f.steps != st.Config.Train.Steps {
			if err := coordinator.ExtendRun(dir, f.steps); err != nil {
				return inputError{err}
			}
			fmt.Fprintf(out, "run %s: %d steps, now %d (from its checkpoint at step %d)\n", dir, st.Config.Train.Steps, f.steps, st.Step)
			st.Config.Train.Steps = f.steps
		}
		if st.Finished() {
			fmt.Fprintf(out, "run %s is finished (%d steps; its results are in summary.json); extend it with: coordinator train --resume %s --steps N\n", dir, st.Step, dir)
			return nil
		}
		rc, from = st.Config, st.Step
		if st.Probes > 0 {
			fmt.Fprintf(out, "run %s: resuming at step %d with %d probes already computed\n", dir, st.Step, st.Probes)
		}
		if msg := f.keepTransport(rc.Transport); msg != "" {
			if err := f.bus.check(); err != nil {
				return err
			}
			fmt.Fprintf(out, "run %s: %s\n", dir, msg)
		}
	} else {
		if f.config != "" {
			rc, err = f.fromConfig(fs)
		} else {
			rc, err = f.runConfig()
		}
		if err != nil {
			return err
		}
		dir = f.out
		if dir == "" {
			dir = filepath.Join("runs", fmt.Sprintf("%s-%s", rc.Model.Problem, time.Now().Format("20060102-150405")))
		}
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
			return badInput("%s already holds a run: resume it with coordinator train --resume %s, or choose another --out", dir, dir)
		}
	}
	if err := f.checkMemory(rc); err != nil {
		return err
	}
	log := f.logf.logger(nil)
	// The first line of a new run, before anything slow starts (servers,
	// samplers); a resumed run's came as soon as its folder was read.
	if f.resume == "" {
		fmt.Fprintf(out, "train: %s\n", describeRun(rc))
	}
	bar := newProgress(os.Stderr, log, "train", rc.Train.Steps).from(from)
	defer bar.finish()
	intr := watchInterrupts(os.Stderr)
	defer intr.stop()
	ctx := intr.ctx
	evalOpt := model.Options{MaxMemory: f.maxMem}
	if rc.Train.NeedsProbes() {
		bar.note("starting where probes are computed")
	}
	backend, desc, closeBus, err := f.backend(ctx, rc, dir, log, out, evalOpt)
	if err != nil {
		if ctx.Err() != nil {
			return intr.err()
		}
		return err
	}
	defer closeBus()
	rc.Train.Fused = !f.bus.useNATS()
	rc.Backend = desc
	rc.Transport = f.transport()
	var run *coordinator.Run
	if f.resume != "" {
		run, err = coordinator.ResumeRun(dir, backend, runOptions(rc, f, log, out, bar))
	} else {
		run, err = coordinator.NewRun(dir, rc, backend, runOptions(rc, f, log, out, bar))
	}
	if err != nil {
		return inputError{err}
	}
	fmt.Fprintf(out, "run folder: %s\n", run.Dir)
	err = run.Execute(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(out, "interrupted at step %d; resume with: coordinator train --resume %s\n", run.Trainer.Next(), run.Dir)
		return intr.err()
	}
	if err != nil {
		fmt.Fprintf(out, "stopped at step %d; the run keeps its checkpoint and every probe computed: resume with: coordinator train --resume %s\n", run.Trainer.Next(), run.Dir)
		return err
	}
	if nb, ok := backend.(*natsbus.Backend); ok {
		st := nb.Stats()
		log.Info("bus", st.LogFields()...)
	}
	fmt.Fprintf(out, "done: %d steps, results in %s\n", run.Trainer.Next(), run.Dir)
	return nil
}

// transport is where this command computes probes, for config.json.
func (f *trainFlags) transport() *coordinator.Transport {
	t := &coordinator.Transport{NATS: "off", Samplers: f.bus.samplers, Workers: f.workers}
	if f.bus.useNATS() {
		t.NATS = f.bus.nf.URL
		if u, err := url.Parse(t.NATS); err == nil && u.User != nil {
			u.User = nil // credentials are given again, never stored
			t.NATS = u.String()
		}
	}
	return t
}

// keepTransport makes a resumed run compute its probes where it was
// started (t, from its config.json), except where the command line says
// otherwise, and says where that is.
func (f *trainFlags) keepTransport(t *coordinator.Transport) string {
	if t == nil {
		return ""
	}
	if !f.set["nats"] && !f.set["local"] {
		if t.NATS == "off" {
			f.bus.local = true
		} else {
			f.bus.local, f.bus.nf.URL = false, t.NATS
		}
	}
	if !f.set["samplers"] && t.Samplers >= 0 {
		f.bus.samplers = t.Samplers
	}
	if !f.set["workers"] && t.Workers >= 1 {
		f.workers = t.Workers
	}
	if !f.bus.useNATS() {
		return fmt.Sprintf("probes on %d goroutines in this process, as the run was started (--nats embedded or --nats URL changes it)", f.workers)
	}
	return fmt.Sprintf("probes on NATS %s with %d samplers in this process, as the run was started (--local, --nats or --samplers changes it)", f.bus.nf.URL, f.bus.samplers)
}

// stopRules are the stop flags, the stall rule's default (-1) resolved for
// the optimizer: on for the natural gradients, which reach their floor in
// hundreds of steps and then only spend time, off for gd, adam and lbfgs
// (L-BFGS gains less than 10% of the loss per 100 steps long before its
// floor: on poisson2d the rule stopped it after 7 s at 1.8·10⁻³).
func (f *trainFlags) stopRules(optimizer string) coordinator.StopRules {
	s := f.stop
	if !f.set["stall-steps"] {
		s.StallSteps = 0
		if optim.IsNatural(optimizer) {
			s.StallSteps = 100
		}
	}
	return s
}

// stopSet reports whether a stop flag was given.
func stopSet(set map[string]bool) bool {
	return set["target-error"] || set["target-loss"] || set["stall-steps"] || set["stall-decrease"]
}

// resumeFlags are the train flags that --resume accepts: they change where
// and how the work is done, or when it ends, not its numbers (--steps
// extends the run; the stop rules only end it sooner).
func resumeFlags() map[string]bool {
	ok := map[string]bool{"resume": true, "steps": true, "workers": true, "checkpoint-every": true, "max-memory": true, "figures": true,
		"target-error": true, "target-loss": true, "stall-steps": true, "stall-decrease": true}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	var b busFlags
	b.register(fs, "", 0)
	var l logFlags
	l.register(fs)
	fs.VisitAll(func(fl *flag.Flag) { ok[fl.Name] = true })
	return ok
}

// configFlag returns a flag given with --resume (or --config) that would
// change the run's configuration, or "": the flags of resumeFlags, and
// those named, may be given.
func configFlag(fs *flag.FlagSet, set map[string]bool, also ...string) string {
	ok := resumeFlags()
	for _, name := range also {
		ok[name] = true
	}
	var bad string
	fs.VisitAll(func(fl *flag.Flag) {
		if set[fl.Name] && !ok[fl.Name] && bad == "" {
			bad = fl.Name
		}
	})
	return bad
}

// checkMemory checks the run's configuration and prices it before anything
// is started or allocated: the trainer's
// evaluator (with a fused step's cotangents), the samplers or workers in
// this process, the kernels that --kernel and --eigenvalues keep, the
// gradients per block and the optimizer's moments, and the initial probes.
func (f *trainFlags) checkMemory(rc coordinator.RunConfig) error {
	setup, err := model.NewSetup(rc.Model)
	if err != nil {
		return inputError{err}
	}
	if err := rc.Validate(setup); err != nil {
		return inputError{err}
	}
	tc := rc.Train
	m := model.Memory{Evaluators: 1, Cotangents: 1, Params: len(setup.Problem.Blocks) + 7}
	if tc.Mode == coordinator.Estimated {
		m.Cotangents = 5
		m.Columns = coordinator.InitKept(tc.InitProbes, tc.Probe.Width(setup.Problem, counts(setup, tc.Counts))) + 64
		if f.bus.useNATS() {
			m.Evaluators += f.bus.samplers
		} else {
			m.Evaluators += f.workers
		}
		if tc.Kernel {
			m.Kernels += 4
		}
	}
	if tc.Kernel || tc.Eigenvalues > 0 {
		m.NTK = true
	}
	if tc.Eigenvalues > 0 {
		m.Kernels += 2
	}
	// The natural gradients: ngd by Cholesky keeps the dense K and its
	// factor (p > n), or J, J̃, the SVD's U and Vᵀ (p ≤ n); the sketch
	// (sngd, CG's preconditioner) keeps its columns, test matrix and
	// weighted columns.
	hint := ""
	if optim.IsNatural(tc.Optimizer) {
		p := setup.NumParams()
		n := 0
		for b, c := range counts(setup, tc.Counts) {
			n += c * setup.Problem.Blocks[b].Components
		}
		switch {
		case tc.Natural.Solver != optim.SolverCholesky:
		case p > n:
			m.NTK = true
			m.Kernels += 2
			hint = " (ngd: --solver cg needs no dense K)"
		default:
			m.Columns += 3 * p // J, J̃ and the SVD's U
			m.Params += p
			hint = " (ngd: --solver cg needs no Jacobian)"
		}
		m.Columns += 3*tc.StepProbes + 8
	}
	if err := setup.CheckMemory(tc.Counts, m, f.maxMem); err != nil {
		return inputError{fmt.Errorf("%w%s", err, hint)}
	}
	return nil
}

// backend makes where a run's probes are computed: samplers on NATS, or
// (--local) goroutines for the initial probes and the trainer's own fused
// steps after. Runs with exact or fixed weights draw no probes.
func (f *trainFlags) backend(ctx context.Context, rc coordinator.RunConfig, dir string, log hclog.Logger, out io.Writer, opt model.Options) (coordinator.Backend, string, func(), error) {
	none := func() {}
	if !rc.Train.NeedsProbes() {
		return nil, "none (no probes)", none, nil
	}
	setup, err := model.NewSetup(rc.Model)
	if err != nil {
		return nil, "", none, inputError{err}
	}
	pts, err := setup.DrawPoints(rc.Train.PointSeed, 0, rc.Train.Counts, nil)
	if err != nil {
		return nil, "", none, inputError{err}
	}
	if !f.bus.useNATS() {
		l, err := coordinator.NewLocal(setup, pts, rc.Train.Probe, f.workers, opt)
		return l, fmt.Sprintf("local, %d workers, fused steps", f.workers), none, err
	}
	width := rc.Train.Probe.Width(setup.Problem, pts.Counts())
	bs, err := f.bus.start(ctx, log, out, setup, rc.Train.Probe, width, runID(f.bus.run, filepath.Base(dir)), opt)
	if err != nil {
		return nil, "", none, err
	}
	return bs.backend, bs.desc, bs.close, nil
}

func runOptions(rc coordinator.RunConfig, f trainFlags, log hclog.Logger, out io.Writer, bar *progress) coordinator.RunOptions {
	steps := rc.Train.Steps
	ck := f.ckEvery
	if ck == 0 {
		ck = max(1, steps/10)
	}
	var blocks []string
	if s, err := model.NewSetup(rc.Model); err == nil {
		blocks = s.Problem.BlockNames()
	}
	probes := bar.child("initial probes", rc.Train.InitProbes)
	figures := func(r *coordinator.Run) error {
		bar.note("drawing the figures")
		files, err := report.RunFigures(r.Dir)
		if err != nil {
			return fmt.Errorf("figures: %w", err)
		}
		fmt.Fprintf(out, "figures: %s\n", strings.Join(files, ", "))
		return nil
	}
	if !f.figures {
		figures = nil
	}
	var step int
	return coordinator.RunOptions{
		AfterRun:        figures,
		CheckpointEvery: ck,
		Log:             log,
		Eval:            model.Options{MaxMemory: f.maxMem},
		StepStart: func(t, total int) {
			step = t
			bar.note(fmt.Sprintf("step %d running", t))
			if t == 0 && rc.Train.Mode == coordinator.Estimated {
				probes.begin(0)
			}
		},
		ProbeProgress: func(done, held, total int) {
			status := "at θ₀ (Algorithm 3's K̂₀)"
			if held > 0 {
				// --verify: answers wait for this process's checks.
				status = fmt.Sprintf("in hand, %d more received and being checked; %s", held, status)
			}
			// Finished with the step (Progress): a sampler caught forging
			// at the end may still lose what it gave.
			probes.update(done, status)
		},
		WorkProgress: func(what string, done, total int) {
			if total > 0 {
				bar.note(fmt.Sprintf("step %d: %s %d/%d", step, what, done, total))
			} else {
				bar.note(fmt.Sprintf("step %d: %s %d", step, what, done))
			}
		},
		Progress: func(rec *coordinator.StepRecord, done, total int) {
			probes.finish()
			status := fmt.Sprintf("loss %.3e λ %s", rec.Loss, lambdas(blocks, rec.Lambda))
			if nr := rec.Optim; nr != nil && optim.IsNatural(rc.Train.Optimizer) {
				status += fmt.Sprintf(" μ %.2g η %.2g", nr.Mu, nr.Eta)
				if nr.Rejected {
					status += " rejected"
				}
			}
			bar.update(done, status)
		},
	}
}

// modelSetup is the problem and network of a new run: the flags', or with
// --init the snapshot's, which the model flags given must agree with.
func (f *trainFlags) modelSetup() (*model.Setup, error) {
	if f.init == "" {
		return f.pf.setup()
	}
	if f.set["standardize"] {
		return nil, badInput("--standardize with --init: the snapshot's network has its own input standardization")
	}
	snap, err := model.ReadSnapshot(f.init)
	if err != nil {
		return nil, inputError{fmt.Errorf("--init: %w", err)}
	}
	s, _, theta, err := snap.Resolve()
	if err != nil {
		return nil, badInput("--init %s: %v", f.init, err)
	}
	for _, name := range []string{"problem", "layers", "activation", "params"} {
		if !f.set[name] {
			continue
		}
		pf := f.pf
		if pf.problem == "" {
			pf.problem = s.Problem.Name
		}
		given, err := pf.setup()
		if err != nil {
			return nil, err
		}
		if key, a, b := configDiff(s.Config, given.Config); key != "" {
			return nil, badInput("--init %s holds a %s network with %s %s; the flags ask for %s: drop --%s, or start from a snapshot of that network", f.init, s.Problem.Name, key, a, b, name)
		}
		break
	}
	if len(f.pf.points) > 0 && len(f.pf.points) != len(s.Problem.Blocks) {
		return nil, badInput("--points has %d counts; the snapshot's problem %s has blocks %v", len(f.pf.points), s.Problem.Name, s.Problem.BlockNames())
	}
	f.pf.problem, f.theta0 = s.Problem.Name, theta
	return s, nil
}

// configDiff returns the first field in which two model configurations
// differ, with its values, or "".
func configDiff(a, b model.Config) (string, string, string) {
	var ma, mb map[string]json.RawMessage
	da, _ := json.Marshal(a)
	db, _ := json.Marshal(b)
	json.Unmarshal(da, &ma)
	json.Unmarshal(db, &mb)
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if string(ma[k]) != string(mb[k]) {
			return k, orNone(ma[k]), orNone(mb[k])
		}
	}
	return "", "", ""
}

func orNone(v json.RawMessage) string {
	if len(v) == 0 {
		return "none"
	}
	return string(v)
}

// fromConfig reads the configuration of --config FILE (another run's
// config.json, with its init.json) for a new run, with the flags that may
// change where and how long it runs.
func (f *trainFlags) fromConfig(fs *flag.FlagSet) (coordinator.RunConfig, error) {
	if f.init != "" {
		return coordinator.RunConfig{}, badInput("--init with --config: the configuration says where θ_0 comes from")
	}
	if name := configFlag(fs, f.set, "out", "config"); name != "" {
		return coordinator.RunConfig{}, badInput("--%s with --config: the run's settings come from %s (only --steps, --out, the stop rules and where probes are computed may be given)", name, f.config)
	}
	rc, err := coordinator.ReadRunConfigFile(f.config)
	if err != nil {
		return rc, inputError{fmt.Errorf("--config: %w", err)}
	}
	setup, err := model.NewSetup(rc.Model)
	if err != nil {
		return rc, badInput("--config %s: %v", f.config, err)
	}
	if err := rc.Validate(setup); err != nil {
		return rc, badInput("--config %s: %v", f.config, err)
	}
	if err := coordinator.LoadInit(filepath.Dir(f.config), &rc); err != nil {
		return rc, badInput("--config %s: %v", f.config, err)
	}
	if f.set["steps"] {
		rc.Train.Steps = f.steps
	}
	if stopSet(f.set) {
		rules := f.stopRules(rc.Train.Optimizer)
		for name, keep := range map[string]func(){
			"target-error": func() { rules.TargetError = rc.Stop.TargetError }, "target-loss": func() { rules.TargetLoss = rc.Stop.TargetLoss },
			"stall-steps": func() { rules.StallSteps = rc.Stop.StallSteps }, "stall-decrease": func() { rules.StallDecrease = rc.Stop.StallDecrease },
		} {
			if !f.set[name] {
				keep()
			}
		}
		if err := rules.Validate(); err != nil {
			return rc, inputError{err}
		}
		rc.Stop = rules
	}
	f.pf.problem = rc.Model.Problem
	if msg := f.keepTransport(rc.Transport); msg != "" {
		if err := f.bus.check(); err != nil {
			return rc, err
		}
	}
	return rc, nil
}

// describeRun says in one line what a new run does.
func describeRun(rc coordinator.RunConfig) string {
	s := fmt.Sprintf("problem %s, %d steps, %s weights, %s", rc.Model.Problem, rc.Train.Steps, rc.Train.Mode, rc.Train.Optimizer)
	if setup, err := model.NewSetup(rc.Model); err == nil {
		n := 0
		for b, c := range counts(setup, rc.Train.Counts) {
			n += c * setup.Problem.Blocks[b].Components
		}
		s += fmt.Sprintf(" (p = %d, n = %d)", setup.NumParams(), n)
	}
	if rc.Train.Mode == coordinator.Estimated {
		s += fmt.Sprintf("; %d initial probes, %d per step", rc.Train.InitProbes, rc.Train.StepProbes)
	}
	return s
}

// lambdas formats weights with their block names: "pde=70.1 u0=4.2".
func lambdas(blocks []string, l []float64) string {
	var b strings.Builder
	for i, v := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i < len(blocks) {
			b.WriteString(blocks[i] + "=")
		}
		fmt.Fprintf(&b, "%.3g", v)
	}
	return b.String()
}

// counts are the points per block: given, or the problem's defaults.
func counts(s *model.Setup, c []int) []int {
	if c == nil {
		return s.Problem.DefaultCounts()
	}
	return c
}

// natural reads the natural-gradient flags, and gives ngd and sngd their
// own defaults where a flag was not set: η = 1; sngd solves by Woodbury
// with S = 100 sketch columns; ngd with CG draws no preconditioner columns
// (beyond Algorithm 3's); sketch columns use exact quotients.
func (f *trainFlags) natural() (optim.NaturalConfig, error) {
	nc := optim.NaturalConfig{LineSearch: f.lineSearch, Solver: f.solver, CGTol: f.cgTol, CGMaxIter: f.cgMaxIter}
	if !optim.IsNatural(f.optimizer) {
		for _, name := range []string{"damping", "damping-start", "line-search", "solver", "cg-tol", "cg-max-iter"} {
			if f.set[name] {
				return nc, badInput("--%s applies to --optimizer ngd or sngd, not %s", name, f.optimizer)
			}
		}
		return optim.NaturalConfig{}, nil
	}
	if f.damping == "auto" {
		nc.DampingAuto = true
		if f.dampStart < 0 || math.IsNaN(f.dampStart) || math.IsInf(f.dampStart, 0) {
			return nc, badInput("--damping-start %v: want a positive number, or 0 for the default", f.dampStart)
		}
		nc.Damping = f.dampStart
	} else {
		if f.set["damping-start"] {
			return nc, badInput("--damping-start goes with --damping auto; a fixed --damping is its own start")
		}
		v, err := strconv.ParseFloat(f.damping, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nc, badInput("--damping %q: want a positive number or auto", f.damping)
		}
		nc.Damping = v
	}
	if !f.set["lr"] {
		f.lr = 1
	}
	if f.optimizer == "sngd" {
		if f.set["solver"] {
			return nc, badInput("--solver: sngd solves with its sketch by Woodbury; the solvers are ngd's")
		}
		nc.Solver = optim.SolverWoodbury
		if !f.set["probes"] {
			f.stepProbes = 100
		}
	}
	if f.optimizer == "ngd" && nc.Solver == optim.SolverCG && !f.set["probes"] && f.weights != "estimate" {
		f.stepProbes = 0
	}
	if !f.set["quotient"] && (f.optimizer == "sngd" || nc.Solver == optim.SolverCG) {
		f.probe.quotient = "exact"
	}
	return nc, nil
}

// standardization sets the input shift and scale of --standardize: the
// uniform distribution on the domain, the mean and (population) standard
// deviation of the first step's points per coordinate, or none.
func (f *trainFlags) standardization(s *model.Setup, cfg *model.Config) error {
	d := s.Problem.Dim
	if f.standardize != "" && !s.Problem.IsNetwork() {
		return badInput("--standardize: problem %s is not a network", s.Problem.Name)
	}
	switch f.standardize {
	case "":
		return nil
	case "none":
		cfg.Shift, cfg.Scale = make([]float64, d), make([]float64, d)
		for k := range cfg.Scale {
			cfg.Scale[k] = 1
		}
	case "domain":
		cfg.Shift, cfg.Scale = make([]float64, d), make([]float64, d)
		for k, b := range s.Problem.Box {
			cfg.Shift[k], cfg.Scale[k] = (b[0]+b[1])/2, (b[1]-b[0])/math.Sqrt(12)
		}
	case "points":
		seed := f.pointSeed
		if seed == 0 {
			seed = f.seed
		}
		var counts []int
		if len(f.pf.points) > 0 {
			counts = f.pf.points
		}
		// The points are drawn here, before the run's own memory check:
		// price at least one evaluator for them first.
		if err := s.CheckMemory(counts, model.Memory{Evaluators: 1}, f.maxMem); err != nil {
			return inputError{err}
		}
		c, err := s.DrawPoints(seed, 0, counts, nil)
		if err != nil {
			return inputError{err}
		}
		cfg.Shift, cfg.Scale = make([]float64, d), make([]float64, d)
		var m int
		for _, b := range c.Blocks {
			for i := 0; i < b.Count(); i++ {
				for k := 0; k < d; k++ {
					cfg.Shift[k] += b.X[i*d+k]
				}
				m++
			}
		}
		for k := range cfg.Shift {
			cfg.Shift[k] /= float64(m)
		}
		for _, b := range c.Blocks {
			for i := 0; i < b.Count(); i++ {
				for k := 0; k < d; k++ {
					x := b.X[i*d+k] - cfg.Shift[k]
					cfg.Scale[k] += x * x
				}
			}
		}
		for k := range cfg.Scale {
			cfg.Scale[k] = math.Sqrt(cfg.Scale[k] / float64(m))
		}
	default:
		return badInput("--standardize %q: want domain, points or none", f.standardize)
	}
	if _, err := model.NewSetup(*cfg); err != nil {
		return inputError{fmt.Errorf("--standardize %s: %w", f.standardize, err)}
	}
	return nil
}
