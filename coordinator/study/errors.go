// Package study runs the estimator's error-rate studies (the paper's
// Figures 5 and 6): M independent estimates of K and Tr K for each number
// of probes N, against the exact NTK, for one or several estimator variants
// on the same probe budget. Every finished repetition is appended to a file
// at once, so a study that is interrupted resumes where it stopped and ends
// with the numbers it would have had.
package study

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/sampler"
)

// Variant is one estimator of a study.
type Variant struct {
	Name      string
	Settings  sampler.Settings
	Estimator coordinator.Estimator
}

// ParseVariants reads a comma-separated list of
// kind[:quotient[:dt]][:estimator], e.g.
// "gaussian,rademacher,block,gaussian:exact,gaussian:forward:1e-3,param:exact"
// or, with the probes kept as columns, "gaussian:nystrom" and
// "gaussian:forward:xnystrace". Without a quotient each estimator takes its
// default (forward for hutchinson, exact for the sketches).
func ParseVariants(list string, seed uint64) ([]Variant, error) {
	var vs []Variant
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		est := coordinator.Hutchinson
		if n := len(parts); n > 1 {
			if e, err := coordinator.ParseEstimator(parts[n-1]); err == nil {
				est, parts = e, parts[:n-1]
			}
		}
		if len(parts) > 3 {
			return nil, fmt.Errorf("variant %q: want kind[:quotient[:dt]][:estimator]", item)
		}
		s := sampler.Settings{Seed: seed, Quotient: est.DefaultQuotient()}
		var err error
		if s.Kind, err = sampler.ParseKind(parts[0]); err != nil {
			return nil, fmt.Errorf("variant %q: %w", item, err)
		}
		if len(parts) > 1 {
			if s.Quotient, err = sampler.ParseQuotient(parts[1]); err != nil {
				return nil, fmt.Errorf("variant %q: %w", item, err)
			}
		}
		if len(parts) > 2 {
			if s.Dt, err = strconv.ParseFloat(parts[2], 64); err != nil || !(s.Dt > 0) {
				return nil, fmt.Errorf("variant %q: Δt %q is not a positive number", item, parts[2])
			}
			if s.Kind == sampler.Param {
				s.Epsilon, s.Dt = s.Dt, 0
			}
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("variant %q: %w", item, err)
		}
		if err := est.Check(s); err != nil {
			return nil, fmt.Errorf("variant %q: %w", item, err)
		}
		name := s.Kind.String() + "/" + s.Quotient.String()
		if len(parts) > 2 {
			name += "/" + parts[2]
		}
		if est != coordinator.Hutchinson {
			name += "/" + est.String()
		}
		if seen[name] {
			return nil, fmt.Errorf("variant %s listed twice", name)
		}
		seen[name] = true
		vs = append(vs, Variant{Name: name, Settings: s, Estimator: est})
	}
	if len(vs) == 0 {
		return nil, errors.New("no estimator variants")
	}
	return vs, nil
}

// Config is a study's design. Changing it changes which probes each
// repetition draws, so a study folder resumes only with the same Config.
type Config struct {
	Problem  model.Config `json:"model"`
	Seed     uint64       `json:"seed"` // θ and points (unless a snapshot gives them)
	Snapshot string       `json:"snapshot,omitempty"`
	Ns       []int        `json:"N"`
	M        int          `json:"M"`
	Variants []string     `json:"variants"`
	Clip     bool         `json:"clip"`
	Heatmaps []int        `json:"heatmaps,omitempty"`
}

// Validate checks the design.
func (c *Config) Validate() error {
	if len(c.Ns) == 0 {
		return errors.New("no N values")
	}
	if c.M < 2 {
		return fmt.Errorf("M = %d: want at least 2 repetitions (the errors' standard errors need them)", c.M)
	}
	total := 0
	for i, n := range c.Ns {
		if n < 1 {
			return fmt.Errorf("N = %d: want positive numbers of probes", n)
		}
		if i > 0 && n <= c.Ns[i-1] {
			return fmt.Errorf("N values must increase: %v", c.Ns)
		}
		// Checked before it is added, so that it cannot wrap around.
		if n > (math.MaxUint32-1-total)/c.M {
			return fmt.Errorf("N = %d, M = %d: Σ N·M is beyond the generator's 2^32 indices per step", n, c.M)
		}
		total += n * c.M
	}
	if vs, err := ParseVariants(strings.Join(c.Variants, ","), 0); err == nil {
		for _, v := range vs {
			if err := v.Estimator.CheckProbes("N", c.Ns[len(c.Ns)-1]); err != nil {
				return fmt.Errorf("variant %s: %w", v.Name, err)
			}
		}
	}
	for _, h := range c.Heatmaps {
		if !contains(c.Ns, h) {
			return fmt.Errorf("heatmap at N = %d: it must be one of the N values %v", h, c.Ns)
		}
	}
	return nil
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// base is the first probe index of repetition m at N = Ns[i]: ranges are
// disjoint, so repetitions are independent, and the same for every variant,
// so variants are compared on the same probe vectors where their kinds agree.
func (c *Config) base(i, m int) int {
	b := 0
	for _, n := range c.Ns[:i] {
		b += n * c.M
	}
	return b + m*c.Ns[i]
}

// Rep is one repetition's squared errors.
type Rep struct {
	Variant      string
	N, Rep       int
	SqKernel     float64 // ‖K̂ − K‖²_F (NaN for param probes)
	SqKernelClip float64 // with K̂ clipped at 0 (Remark 6)
	SqTrace      float64
	SqBlock      []float64
	Seconds      float64
}

// Reference is the exact NTK at the study's θ.
type Reference struct {
	K           []float64
	N           int // residuals
	Trace       float64
	BlockTraces []float64
	Frob2       float64
	Blocks      []string
}

// NewReference computes the exact NTK at ev's base point.
func NewReference(ev model.Evaluator) (*Reference, error) {
	lay := ev.Layout()
	ref := &Reference{N: lay.N, K: make([]float64, lay.N*lay.N), Blocks: lay.BlockNames(), BlockTraces: make([]float64, len(lay.Blocks))}
	if err := ev.NTK(ref.K); err != nil {
		return nil, err
	}
	for b, sp := range lay.Blocks {
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			ref.BlockTraces[b] += ref.K[i*lay.N+i]
		}
		ref.Trace += ref.BlockTraces[b]
	}
	for _, v := range ref.K {
		ref.Frob2 += v * v
	}
	return ref, nil
}

// Predictions are the theory beside the measurements at N probes: Theorem
// 4's Monte Carlo terms, 2n(n+2)‖K‖²_F/N (kernel) and 4‖K‖²_F/N (trace),
// and the exact mean squared errors of Gaussian probes with an exact
// quotient, ((n+2)‖K‖²_F + (Tr K)²)/(2N) and 2‖K‖²_F/N.
func (r *Reference) Predictions(N int) (thm4K, thm4T, gaussK, gaussT float64) {
	n, f, nn := float64(r.N), r.Frob2, float64(N)
	return 2 * n * (n + 2) * f / nn, 4 * f / nn, ((n+2)*f + r.Trace*r.Trace) / (2 * nn), 2 * f / nn
}

// Runner runs a study into a folder:
//
//	study.json   the Config
//	reps.csv     one row per finished repetition (appended as they finish)
//	errors.csv   per variant and N: the mean squared errors, their
//	             standard errors and the theory (written at the end, and
//	             again on every resume)
//	kernel_exact.csv, kernel_<variant>_N<N>.csv   for the heatmaps
type Runner struct {
	Config   Config
	Dir      string
	Setup    *model.Setup
	Points   *model.Collocation
	Theta    []float64
	Ref      *Reference
	Layout   *model.Layout
	R0       []float64
	Backends func(v Variant) (coordinator.Backend, error)
	// Progress is called after every repetition with probes done of total.
	Progress func(done, total int64, rep *Rep)
}

// Run runs every repetition not in reps.csv yet, then writes errors.csv.
func (r *Runner) Run(ctx context.Context) error {
	cfg := &r.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := r.checkFolder(); err != nil {
		return err
	}
	done, err := ReadReps(filepath.Join(r.Dir, "reps.csv"), len(r.Ref.Blocks))
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, d := range done {
		have[repKey(d.Variant, d.N, d.Rep)] = true
	}
	variants, err := ParseVariants(strings.Join(cfg.Variants, ","), 0)
	if err != nil {
		return err
	}
	var total, progress int64
	for range variants {
		for _, n := range cfg.Ns {
			total += int64(n * cfg.M)
		}
	}
	f, err := os.OpenFile(filepath.Join(r.Dir, "reps.csv"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Size() == 0 {
		fmt.Fprintln(f, strings.Join(repColumns(r.Ref.Blocks), ","))
	}
	if err := coordinator.WriteMatrixCSV(filepath.Join(r.Dir, "kernel_exact.csv"), r.Ref.K, r.Ref.N); err != nil {
		return err
	}
	n := r.Ref.N
	Khat := make([]float64, n*n)
	for _, v := range variants {
		v.Settings.Seed = cfg.Seed
		backend, err := r.Backends(v)
		if err != nil {
			return err
		}
		plan, err := sampler.NewPlan(v.Settings, r.Layout)
		if err != nil {
			return err
		}
		acc := coordinator.NewAccumulator(plan, 0, r.R0, v.Settings.Kind != sampler.Param && !v.Estimator.Sketch())
		add := acc.Add
		var cols *coordinator.ColumnAccumulator
		if v.Estimator.Sketch() {
			if cols, err = coordinator.NewColumnAccumulator(plan, 0, r.R0, false); err != nil {
				return err
			}
			add = cols.Add
		}
		w := &coordinator.Work{ID: 1, PointsID: 1, Step: 0, Theta: r.Theta, Points: r.Points}
		for i, N := range cfg.Ns {
			for m := 0; m < cfg.M; m++ {
				if have[repKey(v.Name, N, m)] {
					progress += int64(N)
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				start := time.Now()
				first := cfg.base(i, m)
				if cols != nil {
					cols.ResetFrom(0, r.R0, first)
					acc = cols.Accumulator()
				} else {
					acc.ResetFrom(0, r.R0, first)
				}
				if _, err := coordinator.Collect(ctx, backend, w, first, first+N, plan.Width(), add, nil); err != nil {
					return fmt.Errorf("%s, N = %d, repetition %d: %w", v.Name, N, m, err)
				}
				if acc.Applied() != N {
					return fmt.Errorf("%s, N = %d, repetition %d: %d of %d probes arrived", v.Name, N, m, acc.Applied(), N)
				}
				rep := Rep{Variant: v.Name, N: N, Rep: m, SqKernel: math.NaN(), SqKernelClip: math.NaN()}
				var traces []float64
				kernel := v.Settings.Kind != sampler.Param
				switch v.Estimator {
				case coordinator.Nystrom:
					ny, t, err := cols.Nystrom()
					if err != nil {
						return fmt.Errorf("%s, N = %d, repetition %d: %w", v.Name, N, m, err)
					}
					traces = t
					ny.Dense(Khat)
				case coordinator.XNysTrace:
					res, err := cols.Estimate(v.Estimator)
					if err != nil {
						return fmt.Errorf("%s, N = %d, repetition %d: %w", v.Name, N, m, err)
					}
					traces, kernel = res.Estimate.BlockTraces, false
				default:
					e := acc.Estimate()
					traces = e.BlockTraces
					if kernel {
						if err := acc.Kernel(Khat, false); err != nil {
							return err
						}
					}
				}
				var tr float64
				for b, t := range traces {
					tr += t
					rep.SqBlock = append(rep.SqBlock, sq(t-r.Ref.BlockTraces[b]))
				}
				rep.SqTrace = sq(tr - r.Ref.Trace)
				if kernel {
					rep.SqKernel = sqDist(Khat, r.Ref.K)
					if m == 0 && contains(cfg.Heatmaps, N) {
						name := fmt.Sprintf("kernel_%s_N%d.csv", strings.ReplaceAll(v.Name, "/", "-"), N)
						if err := coordinator.WriteMatrixCSV(filepath.Join(r.Dir, name), Khat, n); err != nil {
							return err
						}
					}
					if cfg.Clip {
						for k, x := range Khat {
							Khat[k] = math.Max(x, 0)
						}
						rep.SqKernelClip = sqDist(Khat, r.Ref.K)
					}
				}
				rep.Seconds = time.Since(start).Seconds()
				if _, err := fmt.Fprintln(f, rep.csv()); err != nil {
					return err
				}
				progress += int64(N)
				if r.Progress != nil {
					r.Progress(progress, total, &rep)
				}
				done = append(done, rep)
			}
		}
		if c, ok := backend.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	rows := Aggregate(done, cfg, r.Ref)
	return WriteErrors(filepath.Join(r.Dir, "errors.csv"), rows, r.Ref.Blocks, cfg.Clip)
}

// ErrOtherDesign is a study folder that holds a study of another design.
var ErrOtherDesign = errors.New("the folder holds a study of another design")

// checkFolder writes study.json, or checks that the one there matches.
func (r *Runner) checkFolder() error {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(r.Dir, "study.json")
	data, err := json.MarshalIndent(r.Config, "", "  ")
	if err != nil {
		return err
	}
	old, err := model.ReadFileLimit(path, coordinator.MaxConfigBytes)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err == nil {
		if strings.TrimSpace(string(old)) != strings.TrimSpace(string(data)) {
			return fmt.Errorf("%s: %w (see its study.json): use another --out, or the arguments it was made with to resume it", r.Dir, ErrOtherDesign)
		}
		return nil
	}
	return model.WriteFileAtomic(path, append(data, '\n'))
}

func repKey(v string, n, m int) string { return fmt.Sprintf("%s|%d|%d", v, n, m) }

func sq(x float64) float64 { return x * x }

func sqDist(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return s
}

func repColumns(blocks []string) []string {
	cols := []string{"variant", "N", "rep", "sq_kernel", "sq_kernel_clipped", "sq_trace"}
	for _, b := range blocks {
		cols = append(cols, "sq_trace_"+b)
	}
	return append(cols, "seconds")
}

func fmtF(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func (r *Rep) csv() string {
	f := []string{r.Variant, strconv.Itoa(r.N), strconv.Itoa(r.Rep), fmtF(r.SqKernel), fmtF(r.SqKernelClip), fmtF(r.SqTrace)}
	for _, v := range r.SqBlock {
		f = append(f, fmtF(v))
	}
	return strings.Join(append(f, fmtF(r.Seconds)), ",")
}

// ReadReps reads the repetitions finished so far (a missing file is none;
// a torn last line from a crash is dropped).
func ReadReps(path string, blocks int) ([]Rep, error) {
	f, err := model.OpenRegular(path, -1) // read line by line, each line bounded
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var reps []Rep
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Split(sc.Text(), ",")
		if len(fields) != 7+blocks {
			continue
		}
		var r Rep
		r.Variant = fields[0]
		var e1, e2 error
		r.N, e1 = strconv.Atoi(fields[1])
		r.Rep, e2 = strconv.Atoi(fields[2])
		if e1 != nil || e2 != nil {
			continue
		}
		parse := func(s string) float64 {
			if s == "" {
				return math.NaN()
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return math.NaN()
			}
			return v
		}
		r.SqKernel, r.SqKernelClip, r.SqTrace = parse(fields[3]), parse(fields[4]), parse(fields[5])
		for b := 0; b < blocks; b++ {
			r.SqBlock = append(r.SqBlock, parse(fields[6+b]))
		}
		r.Seconds = parse(fields[6+blocks])
		if math.IsNaN(r.SqTrace) {
			continue
		}
		reps = append(reps, r)
	}
	return reps, sc.Err()
}

// Row is one (variant, N) line of errors.csv.
type Row struct {
	Variant                      string
	N, M                         int
	MSEKernel, MSEKernelSE       float64
	MSEKernelClip, MSEKernelClSE float64
	MSETrace, MSETraceSE         float64
	MSEBlock, MSEBlockSE         []float64
	Thm4Kernel, Thm4Trace        float64
	GaussKernel, GaussTrace      float64
	Seconds                      float64
}

// Aggregate averages repetitions per (variant, N), in the config's order.
func Aggregate(reps []Rep, cfg *Config, ref *Reference) []Row {
	groups := map[string][]Rep{}
	for _, r := range reps {
		k := r.Variant + "|" + strconv.Itoa(r.N)
		groups[k] = append(groups[k], r)
	}
	var rows []Row
	for _, v := range cfg.Variants {
		vs, err := ParseVariants(v, 0)
		if err != nil {
			continue
		}
		name := vs[0].Name
		for _, N := range cfg.Ns {
			g := groups[name+"|"+strconv.Itoa(N)]
			if len(g) == 0 {
				continue
			}
			sort.Slice(g, func(a, b int) bool { return g[a].Rep < g[b].Rep })
			row := Row{Variant: name, N: N, M: len(g)}
			col := func(f func(Rep) float64) (mean, se float64) {
				x := make([]float64, len(g))
				for i, r := range g {
					x[i] = f(r)
				}
				return meanSE(x)
			}
			row.MSEKernel, row.MSEKernelSE = col(func(r Rep) float64 { return r.SqKernel })
			row.MSEKernelClip, row.MSEKernelClSE = col(func(r Rep) float64 { return r.SqKernelClip })
			row.MSETrace, row.MSETraceSE = col(func(r Rep) float64 { return r.SqTrace })
			for b := range ref.Blocks {
				m, s := col(func(r Rep) float64 { return r.SqBlock[b] })
				row.MSEBlock = append(row.MSEBlock, m)
				row.MSEBlockSE = append(row.MSEBlockSE, s)
			}
			row.Thm4Kernel, row.Thm4Trace, row.GaussKernel, row.GaussTrace = ref.Predictions(N)
			for _, r := range g {
				row.Seconds += r.Seconds
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func meanSE(x []float64) (mean, se float64) {
	if len(x) == 0 || math.IsNaN(x[0]) {
		return math.NaN(), math.NaN()
	}
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(x)-1) / float64(len(x)))
}

// ErrorColumns are errors.csv's columns.
func ErrorColumns(blocks []string, clip bool) []string {
	cols := []string{"variant", "N", "M", "mse_kernel", "mse_kernel_se"}
	if clip {
		cols = append(cols, "mse_kernel_clipped", "mse_kernel_clipped_se")
	}
	cols = append(cols, "mse_trace", "mse_trace_se")
	for _, b := range blocks {
		cols = append(cols, "mse_trace_"+b, "mse_trace_"+b+"_se")
	}
	return append(cols, "theorem4_kernel", "theorem4_trace", "gaussian_kernel", "gaussian_trace", "seconds")
}

// WriteErrors writes errors.csv.
func WriteErrors(path string, rows []Row, blocks []string, clip bool) error {
	var sb strings.Builder
	sb.WriteString(strings.Join(ErrorColumns(blocks, clip), ",") + "\n")
	for _, r := range rows {
		f := []string{r.Variant, strconv.Itoa(r.N), strconv.Itoa(r.M), fmtF(r.MSEKernel), fmtF(r.MSEKernelSE)}
		if clip {
			f = append(f, fmtF(r.MSEKernelClip), fmtF(r.MSEKernelClSE))
		}
		f = append(f, fmtF(r.MSETrace), fmtF(r.MSETraceSE))
		for b := range blocks {
			f = append(f, fmtF(r.MSEBlock[b]), fmtF(r.MSEBlockSE[b]))
		}
		f = append(f, fmtF(r.Thm4Kernel), fmtF(r.Thm4Trace), fmtF(r.GaussKernel), fmtF(r.GaussTrace), fmtF(r.Seconds))
		sb.WriteString(strings.Join(f, ",") + "\n")
	}
	return model.WriteFileAtomic(path, []byte(sb.String()))
}
