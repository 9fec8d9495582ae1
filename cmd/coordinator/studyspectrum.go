package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"ntkbus/coordinator/report"
	"ntkbus/coordinator/study"
	"ntkbus/model"
)

// runStudySpectrum is the operator-informed spectrum study: the NTK
// eigenvalues of one network at initialization for several operators T
// applied to u, widths and depths, with fitted decays.
func runStudySpectrum(args []string, out io.Writer) (err error) {
	fs := newFlags("study spectrum", "[--points 400] [--widths 64,256,1024] [--depths 1,2,3] [flags]")
	points := fs.Int("points", 400, "collocation points, uniform in [0,1] (1-D) and [0,1]² (2-D), the same for every operator")
	widths := intList{64, 256, 1024}
	fs.Var(&widths, "widths", "hidden widths")
	depths := intList{1, 2, 3}
	fs.Var(&depths, "depths", "numbers of hidden layers")
	activation := fs.String("activation", "tanh", "hidden activation: tanh, sin or softplus")
	seed := fs.Uint64("seed", 1, "seed of θ (Xavier-normal weights, zero biases) and the points")
	ops1 := fs.String("operators-1d", strings.Join(model.OperatorNames(1), ","), "operators T in 1-D (u, u_x, u_xx)")
	ops2 := fs.String("operators-2d", strings.Join(model.OperatorNames(2), ","), "operators T in 2-D (u, u_x, laplacian); empty for none")
	floor := fs.Float64("fit-floor", 1e-11, "fit only eigenvalues above this fraction of the largest (below, they are rounding)")
	outDir := fs.String("out", "", "study folder (default runs/study-spectrum-<time>)")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes each exact kernel may use")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := study.SpectrumConfig{
		Points: *points, Widths: widths, Depths: depths, Activation: *activation, Seed: *seed,
		Ops1D: splitList(*ops1), Ops2D: splitList(*ops2), FitFloor: *floor, MaxMemory: *maxMem,
	}
	if err := cfg.Validate(); err != nil {
		return inputError{err}
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join("runs", "study-spectrum-"+time.Now().Format("20060102-150405"))
	}
	fmt.Fprintf(out, "study folder: %s\n", dir)
	log := lf.logger(nil)
	intr := watchInterrupts(os.Stderr)
	defer intr.stop()
	ctx := intr.ctx
	defer intr.settle(&err)
	start := time.Now()
	bar := newProgress(os.Stderr, log, "kernels", len(cfg.Widths)*len(cfg.Depths)*(len(cfg.Ops1D)+len(cfg.Ops2D)))
	curves, err := study.RunSpectrum(ctx, cfg, func(done, total int, c *study.SpectrumCurve) {
		bar.update(done, fmt.Sprintf("%s %s (%.1f s)", c.Label(), c.Operator, c.Seconds))
	})
	bar.finish()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(out, "interrupted (the study takes minutes: run it again)")
		return nil
	}
	if err != nil {
		return err
	}
	var fits []study.DecayFit
	for i := range curves {
		f, err := study.FitDecay(&curves[i], cfg.FitFloor)
		if err != nil {
			return err
		}
		fits = append(fits, f...)
	}
	if err := study.WriteSpectrum(dir, cfg, curves, fits); err != nil {
		return err
	}
	files, err := report.SpectrumStudyFigures(dir, curves, fits)
	if err != nil {
		return fmt.Errorf("figures: %w", err)
	}
	printDecay(out, fits)
	fmt.Fprintf(out, "\n%d kernels in %.1f s; results in %s: spectrum.csv, decay.csv, study.json\nfigures: %s\n",
		len(curves), time.Since(start).Seconds(), dir, strings.Join(files, ", "))
	return nil
}

// printDecay prints one line per curve: both fitted rates with their
// intervals, the better model, and how many eigenvalues are above 10⁻⁶ λ₁.
func printDecay(out io.Writer, fits []study.DecayFit) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "dim\tdepth×width\tT\texp rate [95%%]\tR²\tpower rate [95%%]\tR²\tbetter\t#λ > 1e-6 λ₁\n")
	for i := 0; i+1 < len(fits); i += 2 {
		p, e := fits[i], fits[i+1]
		better := "power"
		if e.Best {
			better = "exp"
		}
		fmt.Fprintf(tw, "%d-D\t%d×%d\t%s\t%.3f [%.3f, %.3f]\t%.3f\t%.2f [%.2f, %.2f]\t%.3f\t%s\t%d\n",
			e.Dim, e.Depth, e.Width, e.Operator, e.Rate, e.RateLo, e.RateHi, e.R2, p.Rate, p.RateLo, p.RateHi, p.R2, better, e.Above6)
	}
	tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
