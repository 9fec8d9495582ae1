package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"text/tabwriter"
	"time"

	"gonum.org/v1/gonum/mat"

	"ntkbus/model"
)

// exactReport is the output of "coordinator exact".
type exactReport struct {
	Problem      string             `json:"problem"`
	N            int                `json:"n"`
	P            int                `json:"p"`
	Blocks       []string           `json:"blocks"`
	Points       map[string]int     `json:"points"`
	ResidualNorm float64            `json:"residual_norm"`
	BlockLoss    map[string]float64 `json:"block_loss"` // ½‖R_b‖²
	Trace        float64            `json:"trace"`
	BlockTraces  map[string]float64 `json:"block_traces"`
	Weights      map[string]float64 `json:"weights"`
	Eigenvalues  []float64          `json:"eigenvalues,omitempty"`
	SolutionMax  *float64           `json:"solution_max_error,omitempty"`
	BLAS         string             `json:"blas"`
	Seconds      float64            `json:"seconds"`
}

func runExact(args []string, out io.Writer) error {
	fs := newFlags("exact", "--snapshot FILE [--json] [--kernel-out FILE] [--eigenvalues K]")
	snapPath := fs.String("snapshot", "", "snapshot file (JSON, as written by \"coordinator snapshot\")")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	kernelOut := fs.String("kernel-out", "", "also compute the full exact K and write it (.npy, or .csv)")
	eig := fs.Int("eigenvalues", 0, "also compute the full exact K and report its K largest eigenvalues")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes the whole work may use (the evaluator, the exact kernel), checked before anything is allocated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *snapPath == "" {
		return badInput("--snapshot is required")
	}
	setup, coll, theta, err := loadSnapshot(*snapPath)
	if err != nil {
		return err
	}
	full := *kernelOut != "" || *eig > 0
	mem := model.Memory{Evaluators: 1, NTK: full}
	if *eig > 0 {
		mem.Kernels = 2 // the eigensolver's copy and its workspace
	}
	if err := setup.CheckMemory(coll.Counts(), mem, *maxMem); err != nil {
		return inputError{err}
	}
	start := time.Now()
	ev, err := setup.NewEvaluator(coll, model.Options{MaxMemory: *maxMem})
	if err != nil {
		return inputError{err}
	}
	lay := ev.Layout()
	r := make([]float64, lay.N)
	ev.Forward(theta, r)
	if err := finiteResidual(lay, r); err != nil {
		return badInput("snapshot %s: %v", *snapPath, err)
	}
	diag := make([]float64, lay.N)
	traces := make([]float64, len(lay.Blocks))
	model.BlockTraces(ev, diag, traces)
	weights := make([]float64, len(traces))
	model.Weights(traces, weights)

	rep := exactReport{
		Problem: setup.Problem.Name, N: lay.N, P: lay.P, Blocks: lay.BlockNames(),
		Points: map[string]int{}, BlockLoss: map[string]float64{}, BlockTraces: map[string]float64{}, Weights: map[string]float64{},
		BLAS: model.BLASBackend(),
	}
	var rr float64
	for b, sp := range lay.Blocks {
		var l float64
		for _, v := range r[sp.Off : sp.Off+sp.Len] {
			l += v * v
		}
		rr += l
		rep.Points[sp.Name] = sp.Points
		rep.BlockLoss[sp.Name] = l / 2
		rep.BlockTraces[sp.Name] = traces[b]
		rep.Trace += traces[b]
		rep.Weights[sp.Name] = weights[b]
	}
	rep.ResidualNorm = math.Sqrt(rr)
	if full {
		K := make([]float64, lay.N*lay.N)
		if err := ev.NTK(K); err != nil {
			return err
		}
		if *kernelOut != "" {
			if err := writeMatrix(*kernelOut, K, lay.N, lay.N); err != nil {
				return err
			}
		}
		if *eig > 0 {
			var es mat.EigenSym
			if !es.Factorize(mat.NewSymDense(lay.N, K), false) {
				return fmt.Errorf("eigenvalues of K did not converge")
			}
			vals := es.Values(nil)
			sort.Sort(sort.Reverse(sort.Float64Slice(vals)))
			rep.Eigenvalues = vals[:min(*eig, len(vals))]
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	for _, name := range rep.Blocks {
		if w := rep.Weights[name]; math.IsInf(w, 0) || math.IsNaN(w) {
			why := "every residual of the block is independent of θ"
			if rep.Points[name] == 0 {
				why = "the block has no points"
			}
			return fmt.Errorf("block %s has Tr K_bb = %v, so its weight Tr K / Tr K_bb is undefined: %s", name, rep.BlockTraces[name], why)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "problem\t%s: n = %d residuals, p = %d parameters (BLAS %s)\n", rep.Problem, rep.N, rep.P, rep.BLAS)
	fmt.Fprintf(tw, "residual\t‖R‖ = %.6g\n", rep.ResidualNorm)
	fmt.Fprintf(tw, "trace\tTr K = %.10g\n\n", rep.Trace)
	fmt.Fprintf(tw, "block\tpoints\t½‖R_b‖²\tTr K_bb\tλ_b = Tr K / Tr K_bb\n")
	for _, name := range rep.Blocks {
		fmt.Fprintf(tw, "%s\t%d\t%.6g\t%.10g\t%.10g\n", name, rep.Points[name], rep.BlockLoss[name], rep.BlockTraces[name], rep.Weights[name])
	}
	if len(rep.Eigenvalues) > 0 {
		fmt.Fprintf(tw, "\neigenvalues\t%v\n", rep.Eigenvalues)
	}
	if *kernelOut != "" {
		fmt.Fprintf(tw, "kernel\twritten to %s\n", *kernelOut)
	}
	fmt.Fprintf(tw, "\ntime\t%.3f s\n", rep.Seconds)
	return tw.Flush()
}

// finiteResidual reports the first entry of R(θ) that is not finite, with
// its block, row, point and component: such a θ (or such points) makes
// every probe, trace and weight meaningless, so nothing is computed from it.
func finiteResidual(lay *model.Layout, r []float64) error {
	var bad, first int
	for i, v := range r {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if bad == 0 {
				first = i
			}
			bad++
		}
	}
	if bad == 0 {
		return nil
	}
	b := lay.BlockOf(first)
	sp := lay.Blocks[b]
	row := first - sp.Off
	where := fmt.Sprintf("block %s, row %d (point %d", sp.Name, row, row/sp.Components)
	if sp.Components > 1 {
		where += fmt.Sprintf(", component %d", row%sp.Components)
	}
	return fmt.Errorf("R(θ) is not finite: %s) is %v, %d of %d residuals in all: θ is too large for the network to evaluate, or the points are", where, r[first], bad, len(r))
}
