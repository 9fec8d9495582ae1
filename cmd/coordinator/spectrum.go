package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"gonum.org/v1/gonum/mat"

	"ntkbus/coordinator"
	"ntkbus/coordinator/figures"
	"ntkbus/coordinator/report"
	"ntkbus/coordinator/sketch"
	"ntkbus/model"
	"ntkbus/sampler"
)

// spectrumReport is the output of "coordinator spectrum".
type spectrumReport struct {
	Problem     string             `json:"problem"`
	N           int                `json:"n"`
	P           int                `json:"p"`
	Blocks      []string           `json:"blocks"`
	Trace       float64            `json:"trace"`        // exact, from the structured diagonal
	BlockShares map[string]float64 `json:"block_shares"` // exact Tr K_bb / Tr K
	Top         int                `json:"top"`
	Sketch      *spectrumPart      `json:"sketch,omitempty"`
	Exact       *spectrumPart      `json:"exact,omitempty"`
	// MaxRelDiff is max over the top eigenvalues of |λ_sketch − λ_exact| / λ_exact.
	MaxRelDiff *float64 `json:"max_relative_difference,omitempty"`
	// LeadingAgreeing is how many leading eigenvalues agree within
	// AgreeTolerance relative (sketch against exact).
	LeadingAgreeing *int    `json:"leading_agreeing,omitempty"`
	AgreeTolerance  float64 `json:"agree_tolerance,omitempty"`
	BLAS            string  `json:"blas"`
	Seconds         float64 `json:"seconds"`
}

// spectrumPart is one route's spectrum: the sketch's (Nyström of the probe
// columns) or the exact K's (dense, or randomly pivoted Cholesky).
type spectrumPart struct {
	Method   string `json:"method"` // nystrom, dense or rpcholesky
	Probes   int    `json:"probes,omitempty"`
	Quotient string `json:"quotient,omitempty"`
	Seed     uint64 `json:"seed,omitempty"`
	Backend  string `json:"backend,omitempty"`
	// Rank is the numerical rank kept (nystrom), n (dense), or the
	// number of pivots (rpcholesky).
	Rank        int       `json:"rank"`
	Eigenvalues []float64 `json:"eigenvalues"` // the largest Top, descending
	// EffectiveRank is the entropy effective rank exp(−Σ p_i log p_i),
	// p_i = λ_i / Σλ over the positive eigenvalues this route has (Roy &
	// Vetterli 2007): the number of equal eigenvalues with the same entropy.
	EffectiveRank float64 `json:"effective_rank"`
	// TopShare[k−1] = Σ_{i≤k} λ_i / Tr K (the exact trace), k = 1..Top.
	TopShare    []float64          `json:"top_share"`
	BlockShares map[string]float64 `json:"block_shares"` // this route's Tr K_bb / Tr K
	// rpcholesky: Tr(K − F Fᵀ), columns evaluated, rounds.
	ResidualTrace *float64 `json:"residual_trace,omitempty"`
	Columns       int      `json:"columns_evaluated,omitempty"`
	Rounds        int      `json:"rounds,omitempty"`
	MemoryBytes   int64    `json:"memory_bytes"` // the work memory this route needs, by its formula
	Seconds       float64  `json:"seconds"`
}

func runSpectrum(args []string, out io.Writer) (err error) {
	fs := newFlags("spectrum", "--snapshot FILE [--probes S] [--exact] [--json] [--out DIR]")
	snapPath := fs.String("snapshot", "", "snapshot file (JSON)")
	probes := fs.Int("probes", 30, "probes S of the sketch (0: no sketch)")
	exact := fs.Bool("exact", false, "also the exact spectrum: dense K where it fits --max-memory, else randomly pivoted Cholesky")
	method := fs.String("exact-method", "auto", "exact route: auto, dense or rpcholesky")
	rank := fs.Int("rank", 1000, "rpcholesky: the most pivots (columns of K)")
	tol := fs.Float64("tol", 1e-13, "rpcholesky: stop once Tr(K − F Fᵀ) ≤ tol·Tr K")
	block := fs.Int("block", 32, "rpcholesky: candidate pivots per round (columns evaluated together)")
	top := fs.Int("top", 20, "eigenvalues reported (all of them go to spectrum.csv)")
	agree := fs.Float64("agree", 1e-6, "with both routes: count the leading eigenvalues whose sketch and exact values agree within this relative difference")
	seed := fs.Uint64("seed", 1, "seed of the probe vectors and of the pivots")
	step := fs.Uint("step", 0, "step number that keys the probe vectors")
	// The sketch's probes: gaussian or rademacher, exact quotients unless
	// --quotient says otherwise (the Nyström estimator's defaults).
	pf := probeFlags{estimator: "nystrom"}
	pf.register(fs)
	workers := fs.Int("workers", runtime.NumCPU(), "in-process sampler goroutines (without NATS)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	outDir := fs.String("out", "", "write spectrum.csv and spectrum.png to this folder")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes the exact kernel (or the factor and its columns) may use")
	var lf logFlags
	lf.register(fs)
	var bf busFlags
	bf.register(fs, "off", runtime.NumCPU())
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkStep(*step); err != nil {
		return err
	}
	switch {
	case *snapPath == "":
		return badInput("--snapshot is required")
	case *probes < 0:
		return badInput("--probes %d: want 0 (no sketch) or more", *probes)
	case *probes == 0 && !*exact:
		return badInput("nothing to do: give --probes S for the sketch, --exact, or both")
	case *top < 1:
		return badInput("--top %d: want at least 1", *top)
	case *workers < 1:
		return badInput("--workers %d: want at least 1", *workers)
	case *method != "auto" && *method != "dense" && *method != "rpcholesky":
		return badInput("--exact-method %q: want auto, dense or rpcholesky", *method)
	case *rank < 1 || *block < 1:
		return badInput("--rank %d, --block %d: want at least 1", *rank, *block)
	case !(*tol >= 0):
		return badInput("--tol %v: want a number ≥ 0", *tol)
	case !(*agree > 0):
		return badInput("--agree %v: want a positive relative difference", *agree)
	}
	settings, err := pf.settings(*seed)
	if err != nil {
		return err
	}
	setup, coll, theta, err := loadSnapshot(*snapPath)
	if err != nil {
		return err
	}
	log := lf.logger(nil)
	log.Info("spectrum", "problem", setup.Problem.Name, "probes", *probes, "exact", *exact)
	// The command's progress: its phases say what runs, its ticker that
	// it runs (the dense exact K of the wave network takes 20 s).
	phase := newProgress(os.Stderr, log, "spectrum", 0)
	defer phase.finish()
	phase.note("the exact diagonal of K")
	intr := watchInterrupts(os.Stderr)
	defer intr.stop()
	ctx := intr.ctx
	defer intr.settle(&err)
	start := time.Now()

	// The exact diagonal: the trace and block shares, and RPCholesky's start.
	ev, err := setup.NewEvaluator(coll, model.Options{MaxMemory: *maxMem})
	if err != nil {
		return inputError{err}
	}
	lay := ev.Layout()
	n := lay.N
	r0 := make([]float64, n)
	ev.Forward(theta, r0)
	diag := make([]float64, n)
	ev.Diagonal(diag)
	traces := make([]float64, len(lay.Blocks))
	lay.BlockSums(diag, traces)
	rep := spectrumReport{
		Problem: setup.Problem.Name, N: n, P: lay.P, Blocks: lay.BlockNames(), Top: *top,
		BlockShares: map[string]float64{}, BLAS: model.BLASBackend(),
	}
	for b, t := range traces {
		rep.Trace += t
		rep.BlockShares[lay.Blocks[b].Name] = t
	}
	if !(rep.Trace > 0) {
		return fmt.Errorf("Tr K = %v: the kernel has no spectrum to show", rep.Trace)
	}
	for name := range rep.BlockShares {
		rep.BlockShares[name] /= rep.Trace
	}

	var sketchAll, exactAll []float64
	if *probes > 0 {
		phase.note(fmt.Sprintf("the sketch of %d probes", *probes))
		part, vals, err := sketchSpectrum(ctx, phase, log, &bf, setup, coll, theta, r0, settings, uint32(*step), *probes, *workers, *maxMem)
		if err != nil {
			return err
		}
		sketchAll = vals
		part.finish(vals, rep.Trace, *top)
		rep.Sketch = part
	}
	if *exact {
		part, vals, err := exactSpectrum(phase, ev, diag, *method, *maxMem, sketch.RPCholeskyOptions{MaxRank: *rank, Block: *block, Tol: *tol, Seed: *seed})
		if err != nil {
			return err
		}
		exactAll = vals
		if part.BlockShares == nil {
			part.BlockShares = rep.BlockShares
		}
		part.finish(vals, rep.Trace, *top)
		rep.Exact = part
	}
	if rep.Sketch != nil && rep.Exact != nil {
		var m float64
		for i := 0; i < min(*top, len(rep.Sketch.Eigenvalues), len(rep.Exact.Eigenvalues)); i++ {
			m = math.Max(m, math.Abs(rep.Sketch.Eigenvalues[i]-rep.Exact.Eigenvalues[i])/rep.Exact.Eigenvalues[i])
		}
		rep.MaxRelDiff = num(m)
		k := 0
		for k < min(len(sketchAll), len(exactAll)) && math.Abs(sketchAll[k]-exactAll[k]) <= *agree*exactAll[k] {
			k++
		}
		rep.LeadingAgreeing, rep.AgreeTolerance = &k, *agree
	}
	rep.Seconds = time.Since(start).Seconds()
	if *outDir != "" {
		if err := writeSpectrumFiles(*outDir, setup.Problem.Name, sketchAll, exactAll, &rep); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(rep)
	}
	printSpectrum(out, &rep, *outDir)
	return nil
}

// finish fills the summaries of a route from all its eigenvalues.
func (p *spectrumPart) finish(vals []float64, trace float64, top int) {
	p.Eigenvalues = vals[:min(top, len(vals))]
	var sum, ent float64
	for _, v := range vals {
		if v > 0 {
			sum += v
		}
	}
	for _, v := range vals {
		if v > 0 {
			q := v / sum
			ent -= q * math.Log(q)
		}
	}
	p.EffectiveRank = math.Exp(ent)
	var acc float64
	p.TopShare = make([]float64, len(p.Eigenvalues))
	for i, v := range p.Eigenvalues {
		acc += v
		p.TopShare[i] = acc / trace
	}
}

// sketchSpectrum draws S probes of the step (over the bus or in process,
// as "estimate" does), keeps their columns Y = KΩ, and returns the
// Nyström approximation's eigenvalues and block shares.
func sketchSpectrum(ctx context.Context, phase *progress, log hclog.Logger, bf *busFlags, setup *model.Setup, coll *model.Collocation, theta, r0 []float64,
	settings sampler.Settings, step uint32, S, workers int, maxMem int64) (*spectrumPart, []float64, error) {
	start := time.Now()
	// Priced before anything is made: the in-process workers' evaluators
	// and the sketch's columns (and their probe vectors, twice while the
	// estimate forms).
	if err := coordinator.Nystrom.CheckProbes("--probes", S); err != nil {
		return nil, nil, badInput("%v", err)
	}
	if err := setup.CheckMemory(coll.Counts(), model.Memory{Evaluators: 1 + workers, Columns: 4*S + 16}, maxMem); err != nil {
		return nil, nil, inputError{err}
	}
	opt := model.Options{MaxMemory: maxMem}
	local, err := coordinator.NewLocal(setup, coll, settings, workers, opt)
	if err != nil {
		return nil, nil, err
	}
	plan := local.Plan()
	lay := plan.Layout()
	n := lay.N
	if need := 2 * 8 * int64(n) * int64(S); need > maxMem {
		return nil, nil, badInput("a sketch of %d probes of %d residuals keeps %s of columns, over --max-memory %s: use fewer probes", S, n, fmtBytes(need), fmtBytes(maxMem))
	}
	var backend coordinator.Backend = local
	desc := fmt.Sprintf("local, %d workers", workers)
	if bf.useNATS() {
		bs, err := bf.start(ctx, log, os.Stderr, setup, settings, plan.Width(), runID(bf.run, "spectrum"), opt)
		if err != nil {
			return nil, nil, err
		}
		defer bs.close()
		backend, desc = bs.backend, bs.desc
	}
	w := &coordinator.Work{ID: 1, PointsID: 1, Step: step, Theta: theta, Points: coll}
	bar := phase.child("probes", S)
	cols, err := coordinator.NewColumnAccumulator(plan, step, r0, false)
	if err != nil {
		return nil, nil, err
	}
	// Collect: nothing a sampler caught forging gave reaches the columns.
	refused, err := coordinator.Collect(ctx, backend, w, 0, S, plan.Width(), cols.Add, func(n int) { bar.update(n, "") })
	bar.finish()
	if err != nil {
		return nil, nil, err
	}
	if got := cols.Accumulator().Applied(); got != S {
		return nil, nil, fmt.Errorf("only %d of %d probes arrived (%d rejected)", got, S, refused.Total())
	}
	ny, bt, err := cols.Nystrom()
	if err != nil {
		return nil, nil, fmt.Errorf("nyström of %d probes: %w", S, err)
	}
	part := &spectrumPart{
		Method: "nystrom", Probes: S, Quotient: settings.Quotient.String(), Seed: settings.Seed, Backend: desc,
		Rank: ny.Rank, BlockShares: map[string]float64{}, MemoryBytes: 8 * int64(n) * int64(3*S),
	}
	var tr float64
	for _, v := range bt {
		tr += v
	}
	for b, v := range bt {
		part.BlockShares[lay.Blocks[b].Name] = v / tr
	}
	part.Seconds = time.Since(start).Seconds()
	return part, append([]float64(nil), ny.Lambda...), nil
}

// exactSpectrum computes the exact K's spectrum: all eigenvalues of the
// dense K (structured route, symmetric eigensolver) when it fits maxMem,
// else the eigenvalues of a randomly pivoted Cholesky factor on the exact
// diagonal and columns.
func exactSpectrum(phase *progress, ev model.Evaluator, diag []float64, method string, maxMem int64, ro sketch.RPCholeskyOptions) (*spectrumPart, []float64, error) {
	start := time.Now()
	n := ev.Layout().N
	dense := model.KernelBytes(ev) + 8*int64(n)*int64(n) // K, NTK's work, the eigensolver's copy
	if method == "dense" || (method == "auto" && dense <= maxMem) {
		if dense > maxMem {
			return nil, nil, badInput("the dense exact K of %d residuals needs %s, over --max-memory %s: use --exact-method rpcholesky", n, fmtBytes(dense), fmtBytes(maxMem))
		}
		phase.note(fmt.Sprintf("the dense exact K (%d×%d)", n, n))
		K := make([]float64, n*n)
		if err := ev.NTK(K); err != nil {
			return nil, nil, err
		}
		phase.note("the eigenvalues of the exact K")
		var es mat.EigenSym
		if !es.Factorize(mat.NewSymDense(n, K), false) {
			return nil, nil, fmt.Errorf("the eigenvalues of K did not converge")
		}
		vals := es.Values(nil)
		sort.Sort(sort.Reverse(sort.Float64Slice(vals)))
		return &spectrumPart{Method: "dense", Rank: n, MemoryBytes: dense, Seconds: time.Since(start).Seconds()}, vals, nil
	}
	ro.MaxRank = min(ro.MaxRank, n)
	// The factor (built as rows, then laid out as n×rank), a round's
	// candidate columns, and the evaluator's kept cotangents with its
	// chunk buffers for one round (Columns bounds these by the evaluator's
	// limit; a round asks for at most Block columns).
	factor := 16*int64(n)*int64(ro.MaxRank) + 8*int64(n)*int64(ro.Block)
	need := model.ColumnBytes(ev) + factor + model.ColumnChunkBytes(ev, ro.Block)
	if need > maxMem {
		return nil, nil, badInput("randomly pivoted Cholesky of rank %d on %d residuals needs %s (factor %s, kept cotangents %s), over --max-memory %s: lower --rank or raise the limit",
			ro.MaxRank, n, fmtBytes(need), fmtBytes(factor), fmtBytes(model.ColumnBytes(ev)), fmtBytes(maxMem))
	}
	phase.note("randomly pivoted Cholesky of the exact K")
	bar := phase.child("pivots", ro.MaxRank)
	ro.Progress = func(rank int, resid float64) {
		bar.update(rank, fmt.Sprintf("Tr(K − FFᵀ)/Tr K = %.2e", resid/sumOf(diag)))
	}
	f, err := sketch.RPCholesky(diag, ev.Columns, ro)
	bar.finish()
	if err != nil {
		return nil, nil, err
	}
	vals, err := f.Eigenvalues()
	if err != nil {
		return nil, nil, err
	}
	rt := f.ResidualTrace
	return &spectrumPart{
		Method: "rpcholesky", Rank: f.Rank, Seed: ro.Seed, ResidualTrace: &rt, Columns: f.Evaluated, Rounds: f.Rounds,
		MemoryBytes: need, Seconds: time.Since(start).Seconds(),
	}, vals, nil
}

func sumOf(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

// writeSpectrumFiles writes spectrum.csv (index, sketch, exact; empty where
// a route has no such eigenvalue) and spectrum.png.
func writeSpectrumFiles(dir, problem string, sk, ex []float64, rep *spectrumReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var f bytes.Buffer
	f.WriteString("index,sketch,exact\n")
	for i := 0; i < max(len(sk), len(ex)); i++ {
		cell := func(v []float64) string {
			if i < len(v) {
				return fmt.Sprint(v[i])
			}
			return ""
		}
		fmt.Fprintf(&f, "%d,%s,%s\n", i+1, cell(sk), cell(ex))
	}
	if err := model.WriteFileAtomic(filepath.Join(dir, "spectrum.csv"), f.Bytes()); err != nil {
		return err
	}
	var curves []report.EigenCurve
	if ex != nil {
		curves = append(curves, report.EigenCurve{Name: "exact (" + rep.Exact.Method + ")", Values: ex})
	}
	if sk != nil {
		curves = append(curves, report.EigenCurve{Name: fmt.Sprintf("sketch (Nyström, %d probes)", rep.Sketch.Probes), Values: sk, Style: figures.Dashed})
	}
	var floor float64
	for _, v := range [][]float64{ex, sk} {
		if len(v) > 0 {
			floor = 0x1p-52 * v[0]
			break
		}
	}
	return report.EigenvaluePlot(filepath.Join(dir, "spectrum.png"), fmt.Sprintf("NTK eigenvalues, %s (n = %d)", problem, rep.N), curves, floor)
}

func printSpectrum(out io.Writer, rep *spectrumReport, outDir string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "problem\t%s: n = %d, p = %d (BLAS %s)\n", rep.Problem, rep.N, rep.P, rep.BLAS)
	fmt.Fprintf(tw, "trace\tTr K = %.10g (exact, from the diagonal)\n", rep.Trace)
	for _, p := range []*spectrumPart{rep.Sketch, rep.Exact} {
		if p == nil {
			continue
		}
		what := p.Method
		switch p.Method {
		case "nystrom":
			what = fmt.Sprintf("sketch: Nyström of %d %s-quotient probes, rank %d (%s)", p.Probes, p.Quotient, p.Rank, p.Backend)
		case "dense":
			what = "exact: dense K, symmetric eigensolver"
		case "rpcholesky":
			what = fmt.Sprintf("exact: randomly pivoted Cholesky, rank %d from %d columns in %d rounds, Tr(K − FFᵀ)/Tr K = %.2e", p.Rank, p.Columns, p.Rounds, *p.ResidualTrace/rep.Trace)
		}
		fmt.Fprintf(tw, "%s\t%s; %.2f s, work memory %s\n", map[bool]string{true: "sketch", false: "exact"}[p == rep.Sketch], what, p.Seconds, fmtBytes(p.MemoryBytes))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "i")
	if rep.Sketch != nil {
		fmt.Fprintf(tw, "\tλ_i sketch\tshare of Tr K in top i")
	}
	if rep.Exact != nil {
		fmt.Fprintf(tw, "\tλ_i exact\tshare of Tr K in top i")
	}
	if rep.Sketch != nil && rep.Exact != nil {
		fmt.Fprintf(tw, "\t|rel. diff.|")
	}
	fmt.Fprintln(tw)
	for i := 0; i < rep.Top; i++ {
		var cells string
		any := false
		for _, p := range []*spectrumPart{rep.Sketch, rep.Exact} {
			if p == nil {
				continue
			}
			if i < len(p.Eigenvalues) {
				cells += fmt.Sprintf("\t%.10g\t%.12f", p.Eigenvalues[i], p.TopShare[i])
				any = true
			} else {
				cells += "\t\t"
			}
		}
		if !any {
			break
		}
		if rep.Sketch != nil && rep.Exact != nil && i < len(rep.Sketch.Eigenvalues) && i < len(rep.Exact.Eigenvalues) {
			cells += fmt.Sprintf("\t%.2e", math.Abs(rep.Sketch.Eigenvalues[i]-rep.Exact.Eigenvalues[i])/rep.Exact.Eigenvalues[i])
		}
		fmt.Fprintf(tw, "%d%s\n", i+1, cells)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "effective rank\t(entropy, exp(−Σ p_i log p_i), p_i = λ_i/Σλ)")
	for _, p := range []*spectrumPart{rep.Sketch, rep.Exact} {
		if p != nil {
			fmt.Fprintf(tw, "\t%s %.4g", p.Method, p.EffectiveRank)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "\nblock\tshare of Tr K (exact)")
	if rep.Sketch != nil {
		fmt.Fprintf(tw, "\tsketch")
	}
	fmt.Fprintln(tw)
	for _, name := range rep.Blocks {
		fmt.Fprintf(tw, "%s\t%.6g", name, rep.BlockShares[name])
		if rep.Sketch != nil {
			fmt.Fprintf(tw, "\t%.6g", rep.Sketch.BlockShares[name])
		}
		fmt.Fprintln(tw)
	}
	if rep.MaxRelDiff != nil {
		fmt.Fprintf(tw, "\nagreement\tmax |λ_sketch − λ_exact| / λ_exact over the top %d: %.2e; the leading %d agree within %g\n",
			min(rep.Top, len(rep.Sketch.Eigenvalues), len(rep.Exact.Eigenvalues)), *rep.MaxRelDiff, *rep.LeadingAgreeing, rep.AgreeTolerance)
	}
	if outDir != "" {
		fmt.Fprintf(tw, "files\t%s\n", filepath.Join(outDir, "spectrum.csv")+", "+filepath.Join(outDir, "spectrum.png"))
	}
	fmt.Fprintf(tw, "time\t%.3f s\n", rep.Seconds)
	tw.Flush()
}

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", b)
	}
}
