package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"ntkbus/coordinator"
	"ntkbus/coordinator/figures"
	"ntkbus/coordinator/report"
	"ntkbus/coordinator/study"
	"ntkbus/model"
)

const studyUsage = `usage: coordinator study errors|throughput|spectrum [flags]

studies:
  errors      the estimator's error rates against the exact NTK (the paper's Figures 5 and 6)
  throughput  probes per second in process and over NATS, the coordinator's share, a bit check
  spectrum    NTK eigenvalues for operators T applied to u

Run "coordinator study <study> -h" for its flags.
`

var studies = []string{"errors", "throughput", "spectrum"}

func runStudy(args []string, out io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "errors":
			return runStudyErrors(args[1:], out)
		case "throughput":
			return runStudyThroughput(args[1:], out)
		case "spectrum":
			return runStudySpectrum(args[1:], out)
		case "-h", "-help", "--help", "help":
			if len(args) > 1 && args[0] == "help" {
				return runStudy(append(args[1:], "-h"), out)
			}
			fmt.Fprint(out, studyUsage)
			return nil
		}
		return badInput("unknown study %q%s: want errors, throughput or spectrum", args[0], suggest(args[0], studies, ""))
	}
	return badInput("which study? want errors, throughput or spectrum (\"coordinator study -h\")")
}

// loadSnapshot reads a snapshot file and resolves its problem, points and θ;
// what is wrong with the file is bad input.
func loadSnapshot(path string) (*model.Setup, *model.Collocation, []float64, error) {
	snap, err := model.ReadSnapshot(path)
	if err != nil {
		return nil, nil, nil, inputError{err}
	}
	setup, coll, theta, err := snap.Resolve()
	if err != nil {
		return nil, nil, nil, badInput("snapshot %s: %v", path, err)
	}
	return setup, coll, theta, nil
}

// fixedPoint is the θ and points a study holds fixed: a snapshot's, or the
// problem's drawn from the seed.
func fixedPoint(pf *problemFlags, snapPath string, seed uint64) (*model.Setup, *model.Collocation, []float64, error) {
	return fixedPointMem(pf, snapPath, seed, model.Memory{}, model.DefaultMaxMemory)
}

// fixedPointMem is fixedPoint with the work mem priced against limit before
// the points are drawn or any evaluator is made.
func fixedPointMem(pf *problemFlags, snapPath string, seed uint64, mem model.Memory, limit int64) (*model.Setup, *model.Collocation, []float64, error) {
	if snapPath != "" {
		setup, coll, theta, err := loadSnapshot(snapPath)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := setup.CheckMemory(coll.Counts(), mem, limit); err != nil {
			return nil, nil, nil, inputError{err}
		}
		return setup, coll, theta, nil
	}
	setup, err := pf.setup()
	if err != nil {
		return nil, nil, nil, err
	}
	var counts []int
	if len(pf.points) > 0 {
		counts = pf.points
	}
	if err := setup.CheckMemory(counts, mem, limit); err != nil {
		return nil, nil, nil, inputError{err}
	}
	coll, err := setup.DrawPoints(seed, 0, counts, nil)
	if err != nil {
		return nil, nil, nil, inputError{err}
	}
	return setup, coll, setup.InitTheta(seed), nil
}

// runStudyErrors is the paper's Figures 5 and 6: M independent estimates of
// K and Tr K per N against the exact NTK at a fixed θ.
func runStudyErrors(args []string, out io.Writer) error {
	fs := newFlags("study errors", "--problem P [--N 10,20,...] [--M 100] [flags]")
	var pf problemFlags
	addProblemFlags(fs, &pf)
	var lf logFlags
	lf.register(fs)
	var bf busFlags
	bf.register(fs, "off", runtime.NumCPU())
	var ns intList = []int{10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000}
	fs.Var(&ns, "N", "numbers of probes per estimate, increasing")
	M := fs.Int("M", 100, "independent estimates per N")
	seed := fs.Uint64("seed", 1, "seed of θ, the points and the probes")
	snapPath := fs.String("snapshot", "", "take θ and the points from this snapshot instead of --problem and --seed")
	variants := fs.String("variants", "gaussian", "estimators to compare on the same probes, kind[:quotient[:Δt]][:estimator] comma-separated, e.g. gaussian,rademacher,block,gaussian:exact,gaussian:forward:1e-2,param:exact, or with the probes kept as columns gaussian:nystrom,gaussian:forward:xnystrace (estimator: hutchinson, nystrom or xnystrace; without a quotient, exact for the sketches)")
	clip := fs.Bool("clip", false, "also measure the clipped estimator max(K̂_ij, 0) (Remark 6)")
	var heat intList
	fs.Var(&heat, "heatmaps", "N values whose first K̂ is saved and drawn beside the exact K (Figure 5), e.g. 1,2000,20000")
	outDir := fs.String("out", "", "study folder (default runs/study-<problem>-<time>); run again with the same folder and flags to resume")
	workers := fs.Int("workers", runtime.NumCPU(), "in-process sampler goroutines (without --nats)")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes the whole work may use (the exact kernel, K̂, the evaluators), checked before anything is allocated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The exact K, K̂ and its accumulator, the reference evaluator and the
	// workers' or in-process samplers' evaluators.
	mem := model.Memory{Evaluators: 1 + *workers, NTK: true, Kernels: 2, Columns: 16}
	if bf.useNATS() {
		mem.Evaluators = 1 + bf.samplers
	}
	setup, coll, theta, err := fixedPointMem(&pf, *snapPath, *seed, mem, *maxMem)
	if err != nil {
		return err
	}
	vs, err := study.ParseVariants(*variants, *seed)
	if err != nil {
		return inputError{err}
	}
	cfg := study.Config{Problem: setup.Config, Seed: *seed, Snapshot: *snapPath, Ns: ns, M: *M, Clip: *clip, Heatmaps: heat}
	for _, v := range vs {
		cfg.Variants = append(cfg.Variants, strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(v.Name, "/forward"), ""), "/", ":"))
	}
	if err := cfg.Validate(); err != nil {
		return inputError{err}
	}
	log := lf.logger(nil)
	log.Info("study errors", "problem", setup.Problem.Name, "variants", strings.Join(cfg.Variants, ","), "N", ns, "M", *M)
	bar := newProgress(os.Stderr, log, "probes", 0)
	defer bar.finish()
	bar.note("the exact K at the snapshot (the reference)")
	opt := model.Options{MaxMemory: *maxMem}
	ev, err := setup.NewEvaluator(coll, opt)
	if err != nil {
		return err
	}
	lay := ev.Layout()
	r0 := make([]float64, lay.N)
	ev.Forward(theta, r0)
	if err := finiteResidual(lay, r0); err != nil {
		return inputError{err}
	}
	ref, err := study.NewReference(ev)
	if err != nil {
		return err
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join("runs", fmt.Sprintf("study-%s-%s", setup.Problem.Name, time.Now().Format("20060102-150405")))
	}
	intr := watchInterrupts(os.Stderr)
	defer intr.stop()
	ctx := intr.ctx
	fmt.Fprintf(out, "study folder: %s\n", dir)
	var buses []*bus
	defer func() {
		for _, b := range buses {
			b.close()
		}
	}()
	var total int64
	runner := &study.Runner{
		Config: cfg, Dir: dir, Setup: setup, Points: coll, Theta: theta, Ref: ref, Layout: lay, R0: r0,
		Backends: func(v study.Variant) (coordinator.Backend, error) {
			if bf.useNATS() {
				bs, err := bf.start(ctx, log, os.Stderr, setup, v.Settings, v.Settings.Width(setup.Problem, coll.Counts()), runID(bf.run, "study"), opt)
				if err != nil {
					return nil, err
				}
				buses = append(buses, bs)
				return bs.backend, nil
			}
			return coordinator.NewLocal(setup, coll, v.Settings, *workers, opt)
		},
		Progress: func(done, tot int64, rep *study.Rep) {
			if total == 0 {
				// The first repetition of this session: what came
				// before it (a resumed study's) is not this session's rate.
				total = tot
				bar.resize(int(tot), int(done)-rep.N)
			}
			bar.update(int(done), fmt.Sprintf("%s N=%d", rep.Variant, rep.N))
		},
	}
	err = runner.Run(ctx)
	bar.finish()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil && err != nil {
		resume := "coordinator study errors " + shellJoin(args)
		if *outDir == "" {
			resume += " --out " + shellQuote(dir)
		}
		fmt.Fprintf(out, "interrupted; every finished repetition is in %s; resume with: %s\n", dir, resume)
		return intr.err()
	}
	if errors.Is(err, study.ErrOtherDesign) {
		return inputError{err}
	}
	if err != nil {
		return err
	}
	if err := printStudy(out, dir, cfg, ref); err != nil {
		return err
	}
	files, err := report.StudyFigures(dir)
	if err != nil {
		return fmt.Errorf("figures: %w", err)
	}
	fmt.Fprintf(out, "figures: %s\n", strings.Join(files, ", "))
	return nil
}

// shellJoin quotes args for a shell command line.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:=/+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printStudy prints errors.csv as a table beside the theory, with the
// fitted log-log slopes.
func printStudy(out io.Writer, dir string, cfg study.Config, ref *study.Reference) error {
	reps, err := study.ReadReps(filepath.Join(dir, "reps.csv"), len(ref.Blocks))
	if err != nil {
		return err
	}
	rows := study.Aggregate(reps, &cfg, ref)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "variant\tN\tMSE K̂\t± SE\tThm 4 (2n(n+2)/N ‖K‖²)\tGaussian exact\tMSE Tr\t± SE\tThm 4 (4/N ‖K‖²)\tGaussian exact\t\n")
	byVariant := map[string][]study.Row{}
	var order []string
	for _, r := range rows {
		if byVariant[r.Variant] == nil {
			order = append(order, r.Variant)
		}
		byVariant[r.Variant] = append(byVariant[r.Variant], r)
		fmt.Fprintf(tw, "%s\t%d\t%.4g\t%.2g\t%.4g\t%.4g\t%.4g\t%.2g\t%.4g\t%.4g\t\n", r.Variant, r.N, r.MSEKernel, r.MSEKernelSE, r.Thm4Kernel, r.GaussKernel, r.MSETrace, r.MSETraceSE, r.Thm4Trace, r.GaussTrace)
	}
	tw.Flush()
	fmt.Fprintln(out)
	sketch := map[string]bool{}
	if vs, err := study.ParseVariants(strings.Join(cfg.Variants, ","), 0); err == nil {
		for _, vr := range vs {
			sketch[vr.Name] = vr.Estimator.Sketch()
		}
	}
	for _, v := range order {
		var x, yk, yt []float64
		for _, r := range byVariant[v] {
			x = append(x, float64(r.N))
			yk = append(yk, r.MSEKernel)
			yt = append(yt, r.MSETrace)
		}
		for _, s := range []struct {
			what string
			y    []float64
		}{{"K̂", yk}, {"trace", yt}} {
			slope, _, lo, hi, err := figures.FitLogLog(x, s.y)
			switch {
			case err != nil:
			case sketch[v]:
				// A sketch's error is no power of N (it falls to a floor
				// at the kernel's numerical rank): no slope, no theory.
				fmt.Fprintf(out, "%s: MSE of the %s from %.3g at N = %d to %.3g at N = %d (a sketch: no Monte Carlo rate)\n", v, s.what, s.y[0], int(x[0]), s.y[len(s.y)-1], int(x[len(x)-1]))
			default:
				fmt.Fprintf(out, "%s: MSE of the %s ∝ N^%.3f (95%% interval [%.3f, %.3f]; theory −1)\n", v, s.what, slope, lo, hi)
			}
		}
	}
	fmt.Fprintf(out, "\nresults in %s: errors.csv, reps.csv\n", dir)
	return nil
}
