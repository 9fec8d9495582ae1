package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/sampler"
)

// estimateReport is the output of "coordinator estimate". Every float is in
// its shortest exact form, so two runs compare to the bit.
type estimateReport struct {
	Problem       string              `json:"problem"`
	N             int                 `json:"n"`
	P             int                 `json:"p"`
	Probes        int                 `json:"probes"`
	Estimator     string              `json:"estimator"`
	Kind          string              `json:"kind"`
	Quotient      string              `json:"quotient"`
	Seed          uint64              `json:"seed"`
	Blocks        []string            `json:"blocks"`
	Trace         float64             `json:"trace"`
	TraceSE       *float64            `json:"trace_se"`
	BlockTraces   map[string]float64  `json:"block_traces"`
	BlockTracesSE map[string]*float64 `json:"block_traces_se"`
	Weights       map[string]*float64 `json:"weights"` // null where Tr K_bb is 0 (every row of the block has R_i = 0)
	WeightsSE     map[string]*float64 `json:"weights_se"`
	WeightsLo     map[string]*float64 `json:"weights_lo"`
	WeightsHi     map[string]*float64 `json:"weights_hi"`
	MaxRelError   *float64            `json:"max_relative_error"`
	Rank          *int                `json:"rank,omitempty"`        // sketch estimators: numerical rank of the Nyström approximation
	Eigenvalues   []float64           `json:"eigenvalues,omitempty"` // sketch estimators: its eigenvalues, descending
	StoppedEarly  bool                `json:"stopped_early"`
	Rejected      int                 `json:"rejected"`
	RejectedBy    map[string]int64    `json:"rejected_by_reason"`
	Verified      int64               `json:"verified"`
	Mismatches    int64               `json:"mismatches"`
	// Quarantined names the sampler identities caught forging (a mismatch
	// under --verify, or an implausible result), with the reason;
	// RejectedBySampler counts the refused messages of each identity.
	Quarantined       map[string]string `json:"quarantined"`
	RejectedBySampler map[string]int64  `json:"rejected_by_sampler"`
	Masked            int               `json:"masked_rows"`
	Kernel            string            `json:"kernel_file,omitempty"`
	Workers           int               `json:"workers"`
	Backend           string            `json:"backend"`
	BLAS              string            `json:"blas"`
	Seconds           float64           `json:"seconds"`
}

func runEstimate(args []string, out io.Writer) error {
	fs := newFlags("estimate", "--snapshot FILE --probes N --seed S [flags]")
	snapPath := fs.String("snapshot", "", "snapshot file (JSON)")
	probes := fs.Int("probes", 1000, "number of probes N (the most, with --rel-error)")
	seed := fs.Uint64("seed", 1, "seed of the probe vectors")
	step := fs.Uint("step", 0, "step number that keys the probe vectors")
	workers := fs.Int("workers", runtime.NumCPU(), "in-process sampler goroutines")
	batch := fs.Int("batch", 0, "probes per batch (default: 8 per worker)")
	relErr := fs.Float64("rel-error", 0, "stop once every weight's standard error is below this fraction of it (0: draw all N)")
	clip := fs.Bool("clip", false, "write the clipped estimator max(K̂_ij, 0) (Remark 6)")
	kernelOut := fs.String("kernel-out", "", "write K̂ to this file (.npy, or CSV)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes the whole work may use (evaluators, K̂), checked before anything is allocated")
	var pf probeFlags
	pf.register(fs)
	pf.registerEstimator(fs)
	var lf logFlags
	lf.register(fs)
	var bf busFlags
	bf.register(fs, "off", runtime.NumCPU())
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *snapPath == "" {
		return badInput("--snapshot is required")
	}
	if *probes < 1 {
		return badInput("--probes %d: want at least 1", *probes)
	}
	if *workers < 1 {
		return badInput("--workers %d: want at least 1", *workers)
	}
	if err := checkStep(*step); err != nil {
		return err
	}
	if *batch < 0 {
		return badInput("--batch %d: want 0 (8 per worker) or more", *batch)
	}
	if !(*relErr >= 0) || math.IsInf(*relErr, 0) {
		return badInput("--rel-error %v: want a fraction ≥ 0 (0: draw all N)", *relErr)
	}
	if err := bf.check(); err != nil {
		return err
	}
	settings, err := pf.settings(*seed)
	if err != nil {
		return err
	}
	est, err := pf.estimatorKind()
	if err != nil {
		return err
	}
	if *kernelOut != "" && settings.Kind == sampler.Param {
		return badInput("param probes (Theorem 5) estimate traces only: they give no kernel for --kernel-out")
	}
	if *kernelOut != "" && est == coordinator.XNysTrace {
		return badInput("xnystrace estimates traces only: use --estimator nystrom (or hutchinson) for --kernel-out")
	}
	if *relErr != 0 && est.Sketch() {
		return badInput("--rel-error stops Algorithm 2's probes early; the %s estimator uses all --probes: drop --rel-error", est)
	}
	setup, coll, theta, err := loadSnapshot(*snapPath)
	if err != nil {
		return err
	}
	// The residual at θ, checked before any probe is sent; every worker's
	// or in-process sampler's evaluator; K̂ and its sum with --kernel-out.
	mem := model.Memory{Evaluators: 2 + *workers, Columns: 16}
	if bf.useNATS() {
		// The samplers in this process, the plausibility bound's evaluator,
		// and every probe's result kept until the estimate ends (a sampler
		// caught forging loses them all).
		mem.Evaluators = 3 + bf.samplers
		mem.Columns += *probes
	}
	if *kernelOut != "" {
		mem.Kernels = 2
	}
	if est.Sketch() {
		// Every probe's column and its probe vector (twice while the
		// estimate is formed), and the S×S matrices of the estimate
		// (XNysTrace's leave-two-out one per block), priced in columns.
		if err := est.CheckProbes("--probes", *probes); err != nil {
			return badInput("%v", err)
		}
		n := 0
		for b, c := range coll.Counts() {
			n += c * setup.Problem.Blocks[b].Components
		}
		s := *probes
		mem.Columns += 4*s + s*s*(len(setup.Problem.Blocks)+4)/max(n, 1) + 1
	}
	if err := setup.CheckMemory(coll.Counts(), mem, *maxMem); err != nil {
		return inputError{err}
	}
	opt := model.Options{MaxMemory: *maxMem}
	check, err := setup.NewEvaluator(coll, opt)
	if err != nil {
		return inputError{err}
	}
	r0 := make([]float64, check.Layout().N)
	check.Residual(theta, r0)
	if err := finiteResidual(check.Layout(), r0); err != nil {
		return badInput("snapshot %s: %v", *snapPath, err)
	}
	log := lf.logger(nil)
	log.Info("estimate", "problem", setup.Problem.Name, "n", check.Layout().N, "p", check.Layout().P, "probes", *probes, "estimator", est.String())
	bar := newProgress(os.Stderr, log, "probes", *probes)
	defer bar.finish()
	intr := watchInterrupts(os.Stderr)
	defer intr.stop()
	ctx := intr.ctx

	start := time.Now()
	local, err := coordinator.NewLocal(setup, coll, settings, 1, opt)
	if err != nil {
		return err
	}
	plan := local.Plan()
	lay := plan.Layout()
	var backend coordinator.Backend = local
	backendDesc := fmt.Sprintf("local, %d workers", *workers)
	if bf.useNATS() {
		bs, err := bf.start(ctx, log, os.Stderr, setup, settings, plan.Width(), runID(bf.run, "estimate"), opt)
		if err != nil {
			return err
		}
		defer bs.close()
		backend, backendDesc = bs.backend, bs.desc
	} else if *workers > 1 {
		if local, err = coordinator.NewLocal(setup, coll, settings, *workers, opt); err != nil {
			return err
		}
		backend = local
	}
	// R at θ decides which rows the probes drop (R_i = 0).
	masked := 0
	for _, v := range r0 {
		if v == 0 {
			masked++
		}
	}
	if *batch == 0 {
		*batch = 8 * *workers
	}
	w := &coordinator.Work{ID: 1, PointsID: 1, Step: uint32(*step), Theta: theta, Points: coll}
	bar.from(0)
	res, err := coordinator.EstimateAt(ctx, backend, plan, w, r0, coordinator.EstimateOptions{
		Probes: *probes, Batch: *batch, RelError: *relErr, Kernel: *kernelOut != "" && !est.Sketch(), Estimator: est,
		Progress: func(done, total int, e coordinator.Estimate) {
			if est.Sketch() {
				bar.update(done, fmt.Sprintf("%d columns kept", done))
				return
			}
			bar.update(done, fmt.Sprintf("Tr K ≈ %.6g", e.Trace))
		},
	})
	bar.finish()
	if ctx.Err() != nil {
		return intr.err()
	}
	if err != nil {
		return err
	}
	rep := estimateReport{
		Problem: setup.Problem.Name, N: lay.N, P: lay.P, Probes: res.Estimate.Probes, Estimator: est.String(),
		Kind: settings.Kind.String(), Quotient: settings.Quotient.String(), Seed: *seed,
		Blocks: lay.BlockNames(), BlockTraces: map[string]float64{}, BlockTracesSE: map[string]*float64{},
		Weights: map[string]*float64{}, WeightsSE: map[string]*float64{}, WeightsLo: map[string]*float64{}, WeightsHi: map[string]*float64{},
		StoppedEarly: res.Stopped, Rejected: res.Rejected, RejectedBy: map[string]int64{}, Masked: masked,
		Verified: res.Audit.Verified, Mismatches: res.Audit.Mismatches,
		Quarantined: map[string]string{}, RejectedBySampler: map[string]int64{},
		Workers: *workers, Backend: backendDesc, BLAS: model.BLASBackend(),
	}
	for k, v := range res.Audit.Rejected {
		rep.RejectedBy[k] = v
	}
	for id, why := range res.Audit.Quarantines {
		rep.Quarantined[id] = why
	}
	for id, v := range res.Audit.RefusedFrom {
		rep.RejectedBySampler[id] = v
	}
	if res.Rejected > 0 || res.Audit.Verified > 0 {
		log.Info("results refused and checked", "rejected", res.Rejected, "rejected_by_reason", res.Audit.Rejected,
			"verified", res.Audit.Verified, "mismatches", res.Audit.Mismatches, "quarantined", res.Audit.Quarantines, "rejected_by_sampler", res.Audit.RefusedFrom)
	}
	e := res.Estimate
	rep.Trace, rep.TraceSE = e.Trace, num(e.TraceSE())
	lam, se := e.Weights()
	for b, name := range rep.Blocks {
		rep.BlockTraces[name] = e.BlockTraces[b]
		rep.BlockTracesSE[name] = num(e.BlockSE(b))
		rep.Weights[name] = num(lam[b])
		rep.WeightsSE[name] = num(se[b])
		rep.WeightsLo[name] = num(lam[b] - coordinator.Z95*se[b])
		rep.WeightsHi[name] = num(lam[b] + coordinator.Z95*se[b])
	}
	rep.MaxRelError = num(e.MaxRelativeError())
	if res.Sketch != nil {
		rank := res.Sketch.Nystrom.Rank
		rep.Rank, rep.Eigenvalues = &rank, res.Sketch.Nystrom.Lambda
	}
	var notPositive []string
	for b, name := range rep.Blocks {
		if t := e.BlockTraces[b]; !(t > 0) && lay.Blocks[b].Len > 0 {
			notPositive = append(notPositive, fmt.Sprintf("%s (%.4g ± %s)", name, t, fmtSE(rep.BlockTracesSE[name])))
		}
	}
	var warning string
	if len(notPositive) > 0 {
		warning = fmt.Sprintf("the estimated trace of block %s is not positive, so its weight means nothing: draw more probes (--probes), use --kind block (each probe on one block), or the sketch (--estimator nystrom)", strings.Join(notPositive, ", "))
		log.Warn(warning)
	}
	if *kernelOut != "" {
		K := make([]float64, lay.N*lay.N)
		if res.Sketch != nil {
			res.Sketch.Kernel(K)
			if *clip {
				for i, v := range K {
					K[i] = math.Max(v, 0)
				}
			}
		} else if err := res.Acc.Kernel(K, *clip); err != nil {
			return err
		}
		if err := writeMatrix(*kernelOut, K, lay.N, lay.N); err != nil {
			return err
		}
		rep.Kernel = *kernelOut
	}
	rep.Seconds = time.Since(start).Seconds()
	if *asJSON {
		return json.NewEncoder(out).Encode(rep)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "problem\t%s: n = %d, p = %d\n", rep.Problem, rep.N, rep.P)
	fmt.Fprintf(tw, "probes\t%d %s probes, %s quotient, seed %d%s\n", rep.Probes, rep.Kind, rep.Quotient, rep.Seed, map[bool]string{true: " (stopped on --rel-error)", false: ""}[rep.StoppedEarly])
	if rep.Rank != nil {
		fmt.Fprintf(tw, "estimator\t%s: a Nyström sketch of rank %d%s\n", rep.Estimator, *rep.Rank, fmtEigenvalues(rep.Eigenvalues, 5))
	}
	fmt.Fprintf(tw, "trace\tTr K ≈ %.8g ± %s\n\n", rep.Trace, fmtSE(rep.TraceSE))
	fmt.Fprintf(tw, "block\tTr K_bb\t± SE\tλ_b\t95%% interval\n")
	for _, name := range rep.Blocks {
		fmt.Fprintf(tw, "%s\t%.8g\t%s\t%s\t[%s, %s]\n", name, rep.BlockTraces[name], fmtSE(rep.BlockTracesSE[name]), fmtSE(rep.Weights[name]), fmtSE(rep.WeightsLo[name]), fmtSE(rep.WeightsHi[name]))
	}
	if warning != "" {
		fmt.Fprintf(tw, "\nwarning\t%s\n", warning)
	}
	if rep.Masked > 0 {
		fmt.Fprintf(tw, "\nnote\t%d residual rows are exactly zero and take no part in the probes\n", rep.Masked)
	}
	if rep.Kernel != "" {
		fmt.Fprintf(tw, "kernel\twritten to %s\n", rep.Kernel)
	}
	if rep.Rejected > 0 || rep.Verified > 0 {
		fmt.Fprintf(tw, "\nresults\t%d refused %v; %d batches verified, %d wrong\n", rep.Rejected, rep.RejectedBy, rep.Verified, rep.Mismatches)
		if len(rep.RejectedBySampler) > 0 {
			fmt.Fprintf(tw, "refused from\t%v\n", rep.RejectedBySampler)
		}
		if len(rep.Quarantined) > 0 {
			fmt.Fprintf(tw, "quarantined\t%v (caught forging: everything they gave was computed again)\n", rep.Quarantined)
		}
	}
	fmt.Fprintf(tw, "\ntime\t%.3f s (%s; BLAS %s)\n", rep.Seconds, rep.Backend, rep.BLAS)
	return tw.Flush()
}

// fmtEigenvalues lists the first k eigenvalues.
func fmtEigenvalues(v []float64, k int) string {
	if len(v) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString(", eigenvalues")
	for i, x := range v[:min(k, len(v))] {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, " %.6g", x)
	}
	if len(v) > k {
		sb.WriteString(", …")
	}
	return sb.String()
}

func fmtSE(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4g", *v)
}
