package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"ntkbus/model"
)

// RunConfig is what a run folder's config.json holds: enough to start the
// run again from nothing, or to resume it from a checkpoint.
type RunConfig struct {
	Model     model.Config `json:"model"`
	Seed      uint64       `json:"seed"` // seed of θ_0
	Train     TrainConfig  `json:"train"`
	Backend   string       `json:"backend"` // informational: where probes were computed
	ErrorGrid int          `json:"error_grid"`
}

// RunOptions are the parts of a run that do not change its numbers.
type RunOptions struct {
	CheckpointEvery int // steps between checkpoints (0: only at the end)
	ErrorEvery      int // steps between solution-error evaluations (0: never)
	// Progress is called after every step with the step's record.
	Progress func(rec *StepRecord, done, total int)
	// AfterRun is called with the finished run (plots, reports).
	AfterRun func(r *Run) error
	Log      hclog.Logger
	Eval     model.Options
}

// Run is a training run writing to its folder:
//
//	config.json     the RunConfig
//	train.csv       one row per step (see Columns)
//	checkpoint.gob  the state after the last checkpointed step
//	final.json      a snapshot of the final θ (feed it to "coordinator exact")
//	summary.json    the last step's numbers and the run's time
type Run struct {
	Dir     string
	Config  RunConfig
	Trainer *Trainer

	opt      RunOptions
	log      hclog.Logger
	csv      *os.File
	w        *bufio.Writer
	grid     []float64
	start    time.Time
	elapsed  float64 // seconds of earlier sessions (resume)
	lastRec  StepRecord
	lastErr  model.ErrorNorms
	hasError bool
}

const (
	configFile     = "config.json"
	csvFile        = "train.csv"
	checkpointFile = "checkpoint.gob"
	finalFile      = "final.json"
	summaryFile    = "summary.json"
)

// NewRun starts a run in dir (created; it must not hold a run already).
func NewRun(dir string, cfg RunConfig, backend Backend, opt RunOptions) (*Run, error) {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a run: resume it, or choose another folder", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run folder: %w", err)
	}
	setup, err := model.NewSetup(cfg.Model)
	if err != nil {
		return nil, err
	}
	cfg.Model = setup.Config
	tr, err := NewTrainer(setup, setup.InitTheta(cfg.Seed), cfg.Train, backend, opt.Eval)
	if err != nil {
		return nil, err
	}
	cfg.Train = tr.cfg
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := model.WriteFileAtomic(filepath.Join(dir, configFile), append(data, '\n')); err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, Config: cfg, Trainer: tr, opt: opt}
	if err := r.openCSV(nil); err != nil {
		return nil, err
	}
	r.init()
	return r, nil
}

// ResumeRun continues the run in dir from its checkpoint. Rows of train.csv
// after the checkpoint are dropped and computed again, so the finished run
// is the one that never stopped.
func ResumeRun(dir string, backend Backend, opt RunOptions) (*Run, error) {
	data, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	var cfg RunConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("resume: %s: %w", configFile, err)
	}
	ck, err := readCheckpoint(filepath.Join(dir, checkpointFile))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	setup, err := model.NewSetup(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	tr, err := NewTrainer(setup, ck.Theta, cfg.Train, backend, opt.Eval)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := tr.restore(ck); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	r := &Run{Dir: dir, Config: cfg, Trainer: tr, opt: opt, elapsed: ck.Seconds}
	if err := r.openCSV(&ck.Step); err != nil {
		return nil, err
	}
	r.init()
	r.log.Info("resumed", "dir", dir, "step", ck.Step)
	return r, nil
}

func (r *Run) init() {
	r.log = r.opt.Log
	if r.log == nil {
		r.log = hclog.NewNullLogger()
	}
	r.log = r.log.Named("run")
	p := r.Trainer.setup.Problem
	if p.Exact != nil && r.opt.ErrorEvery > 0 {
		g := r.Config.ErrorGrid
		if g <= 0 {
			switch {
			case p.Dim == 1:
				g = 201
			case p.Dim == 2:
				g = 41
			default: // 21³ = 9261 points; 41³ would predict 68,921 points each time
				g = 21
			}
		}
		r.Config.ErrorGrid = g
		r.grid = Grid(p.Box, g)
	}
}

// Grid returns the g^d points of a regular grid over the box, row-major
// with the last coordinate fastest.
func Grid(box [][2]float64, g int) []float64 {
	d := len(box)
	total := 1
	for range box {
		total *= g
	}
	x := make([]float64, 0, total*d)
	idx := make([]int, d)
	for k := 0; k < total; k++ {
		rem := k
		for c := d - 1; c >= 0; c-- {
			idx[c] = rem % g
			rem /= g
		}
		for c := 0; c < d; c++ {
			lo, hi := box[c][0], box[c][1]
			x = append(x, lo+(hi-lo)*float64(idx[c])/float64(g-1))
		}
	}
	return x
}

// Columns lists train.csv's columns for blocks named as given.
//
//	step, loss (Σ_b mean squared residual), objective (½Σ λ_b‖R_b‖²),
//	grad_norm2, lr, trace, accepted,
//	loss_<b>, lambda_<b>, lambda_<b>_lo, lambda_<b>_hi, exact_lambda_<b> per block,
//	eig_1..eig_k, error_max, error_rms, error_l2,
//	[natural-gradient runs: NaturalColumns], seconds.
//
// Cells that were not computed at a step are empty.
func Columns(blocks []string, eig int, natural bool) []string {
	cols := []string{"step", "loss", "objective", "grad_norm2", "lr", "trace", "accepted"}
	for _, b := range blocks {
		cols = append(cols, "loss_"+b)
	}
	for _, b := range blocks {
		cols = append(cols, "lambda_"+b, "lambda_"+b+"_lo", "lambda_"+b+"_hi")
	}
	for _, b := range blocks {
		cols = append(cols, "exact_lambda_"+b)
	}
	for i := 1; i <= eig; i++ {
		cols = append(cols, "eig_"+strconv.Itoa(i))
	}
	cols = append(cols, "error_max", "error_rms", "error_l2")
	if natural {
		cols = append(cols, NaturalColumns()...)
	}
	return append(cols, "seconds")
}

// openCSV opens train.csv: new with a header, or (resume) keeping the rows
// of steps before keepBefore.
func (r *Run) openCSV(keepBefore *int) error {
	path := filepath.Join(r.Dir, csvFile)
	header := strings.Join(Columns(r.Trainer.Layout().BlockNames(), r.Config.Train.Eigenvalues, r.Trainer.natural != nil), ",")
	var kept bytes.Buffer
	kept.WriteString(header + "\n")
	if keepBefore != nil {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		lines := strings.Split(string(old), "\n")
		for _, line := range lines[min(1, len(lines)):] {
			if line == "" {
				continue
			}
			step, err := strconv.Atoi(line[:strings.IndexByte(line+",", ',')])
			if err != nil || step >= *keepBefore {
				continue
			}
			kept.WriteString(line + "\n")
		}
	}
	if err := model.WriteFileAtomic(path, kept.Bytes()); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	r.csv, r.w = f, bufio.NewWriter(f)
	return nil
}

// Execute runs the remaining steps, checkpointing as configured, and writes
// the final snapshot and summary. It returns ctx's error if interrupted,
// after writing a checkpoint of the last completed step.
func (r *Run) Execute(ctx context.Context) error {
	defer r.csv.Close()
	tr := r.Trainer
	total := r.Config.Train.Steps
	r.start = time.Now()
	r.log.Info("run started", "dir", r.Dir, "problem", tr.setup.Problem.Name, "mode", r.Config.Train.Mode, "steps", total, "from", tr.t, "p", tr.ev.Layout().P, "n", tr.ev.Layout().N)
	for tr.t < total {
		if err := ctx.Err(); err != nil {
			r.log.Warn("interrupted", "step", tr.t)
			if cerr := r.checkpoint(); cerr != nil {
				return errors.Join(err, cerr)
			}
			return err
		}
		t := tr.t
		r.hasError = false
		if r.grid != nil && (t%r.opt.ErrorEvery == 0 || t == total-1) {
			r.lastErr, _ = tr.setup.SolutionErrors(tr.theta, r.grid)
			r.hasError = true
		}
		var exactFirst []float64
		if t == 0 && r.Config.Train.Kernel {
			n := tr.Layout().N
			exactFirst = make([]float64, n*n)
			if err := tr.ExactKernel(exactFirst); err != nil {
				return err
			}
		}
		rec, err := tr.Step(ctx)
		if err != nil {
			r.w.Flush()
			if errors.Is(err, context.Canceled) {
				r.checkpoint()
			}
			return err
		}
		if err := r.writeRow(rec); err != nil {
			return err
		}
		logNatural(r.log, rec)
		if exactFirst != nil && tr.avg != nil && tr.avg.Kernel != nil {
			if err := r.saveKernels("first", exactFirst); err != nil {
				return err
			}
		}
		r.lastRec = *rec
		if r.opt.Progress != nil {
			r.opt.Progress(rec, t+1, total)
		}
		if r.opt.CheckpointEvery > 0 && tr.t%r.opt.CheckpointEvery == 0 && tr.t < total {
			if err := r.checkpoint(); err != nil {
				return err
			}
		}
	}
	if err := r.w.Flush(); err != nil {
		return err
	}
	if err := r.checkpoint(); err != nil {
		return err
	}
	if tr.avg != nil && tr.avg.Kernel != nil {
		if err := r.saveKernels("last", nil); err != nil {
			return err
		}
	}
	if err := r.finish(); err != nil {
		return err
	}
	if r.opt.AfterRun != nil {
		if err := r.opt.AfterRun(r); err != nil {
			return err
		}
	}
	r.log.Info("run finished", "dir", r.Dir, "steps", total, "loss", r.lastRec.Loss, "seconds", r.elapsed+time.Since(r.start).Seconds())
	return nil
}

func fmtFloat(buf []byte, v float64) []byte {
	if math.IsNaN(v) {
		return buf
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

func (r *Run) writeRow(rec *StepRecord) error {
	b := make([]byte, 0, 512)
	b = strconv.AppendInt(b, int64(rec.Step), 10)
	for _, v := range []float64{rec.Loss, rec.Objective, rec.GradNorm2, rec.LR, rec.Trace} {
		b = fmtFloat(append(b, ','), v)
	}
	b = append(b, ',')
	if rec.Accepted {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	for _, v := range rec.BlockMSE {
		b = fmtFloat(append(b, ','), v)
	}
	for i := range rec.Lambda {
		b = fmtFloat(append(b, ','), rec.Lambda[i])
		b = fmtFloat(append(b, ','), rec.LambdaLo[i])
		b = fmtFloat(append(b, ','), rec.LambdaHi[i])
	}
	for i := range rec.Lambda {
		b = append(b, ',')
		if rec.ExactLambda != nil {
			b = fmtFloat(b, rec.ExactLambda[i])
		}
	}
	for i := 0; i < r.Config.Train.Eigenvalues; i++ {
		b = append(b, ',')
		if i < len(rec.Eigenvalues) {
			b = fmtFloat(b, rec.Eigenvalues[i])
		}
	}
	for _, v := range []float64{r.lastErr.Max, r.lastErr.RMS, r.lastErr.L2} {
		b = append(b, ',')
		if r.hasError {
			b = fmtFloat(b, v)
		}
	}
	if r.Trainer.natural != nil {
		b = appendNatural(b, rec.Natural)
	}
	b = fmtFloat(append(b, ','), r.elapsed+time.Since(r.start).Seconds())
	b = append(b, '\n')
	_, err := r.w.Write(b)
	return err
}

// saveKernels writes the moving average K̂ and the exact K (given, or at
// the current θ) as kernel_estimate_<when>.csv and kernel_exact_<when>.csv:
// the paper's Figure 7.
func (r *Run) saveKernels(when string, exact []float64) error {
	tr := r.Trainer
	n := tr.Layout().N
	if exact == nil {
		exact = make([]float64, n*n)
		if err := tr.ExactKernel(exact); err != nil {
			return err
		}
	}
	if err := WriteMatrixCSV(filepath.Join(r.Dir, "kernel_estimate_"+when+".csv"), tr.avg.Kernel, n); err != nil {
		return err
	}
	return WriteMatrixCSV(filepath.Join(r.Dir, "kernel_exact_"+when+".csv"), exact, n)
}

// WriteMatrixCSV writes an n×n matrix, every value in its shortest exact form.
func WriteMatrixCSV(path string, m []float64, n int) error {
	var b []byte
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, m[i*n+j], 'g', -1, 64)
		}
		b = append(b, '\n')
	}
	return model.WriteFileAtomic(path, b)
}

// ReadMatrixCSV reads a square matrix written by WriteMatrixCSV.
func ReadMatrixCSV(path string) ([]float64, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	n := len(lines)
	m := make([]float64, 0, n*n)
	for i, line := range lines {
		fields := strings.Split(line, ",")
		if len(fields) != n {
			return nil, 0, fmt.Errorf("%s: row %d has %d values, want %d", path, i, len(fields), n)
		}
		for _, f := range fields {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", path, err)
			}
			m = append(m, v)
		}
	}
	return m, n, nil
}

// checkpointState is the trainer's state after a step: everything the next
// step reads that is not in the config.
type checkpointState struct {
	Step    int
	Theta   []float64
	Lambda  []float64
	AdamM   []float64
	AdamV   []float64
	Avg     *MovingAverage
	Spaced  *SpacedRule
	Natural *NaturalState // ngd, sngd: the damping
	Seconds float64
}

func (tr *Trainer) state() *checkpointState {
	ck := &checkpointState{Step: tr.t, Theta: tr.theta, Lambda: tr.lambda, Avg: tr.avg, Spaced: tr.spaced}
	if a, ok := tr.opt.(*Adam); ok {
		ck.AdamM, ck.AdamV = a.M, a.V
	}
	if tr.natural != nil {
		st := tr.natural.state
		ck.Natural = &st
	}
	return ck
}

func (tr *Trainer) restore(ck *checkpointState) error {
	if len(ck.Lambda) != len(tr.lambda) {
		return fmt.Errorf("checkpoint has %d weights, the problem %d blocks", len(ck.Lambda), len(tr.lambda))
	}
	tr.t = ck.Step
	copy(tr.lambda, ck.Lambda)
	tr.avg, tr.spaced = ck.Avg, ck.Spaced
	if a, ok := tr.opt.(*Adam); ok {
		if len(ck.AdamM) != len(a.M) {
			return errors.New("checkpoint has no Adam state for this optimizer")
		}
		copy(a.M, ck.AdamM)
		copy(a.V, ck.AdamV)
	}
	if tr.cfg.Mode == Estimated && tr.t > 0 && tr.avg == nil {
		return errors.New("checkpoint lacks the moving average")
	}
	if tr.natural != nil {
		if ck.Natural == nil {
			if tr.t > 0 {
				return errors.New("checkpoint lacks the natural gradient's damping state")
			}
		} else {
			tr.natural.state = *ck.Natural
		}
	}
	return nil
}

// checkpoint writes checkpoint.gob (atomically) after flushing the CSV.
func (r *Run) checkpoint() error {
	if err := r.w.Flush(); err != nil {
		return err
	}
	ck := r.Trainer.state()
	ck.Seconds = r.elapsed + time.Since(r.start).Seconds()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(ck); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := model.WriteFileAtomic(filepath.Join(r.Dir, checkpointFile), buf.Bytes()); err != nil {
		return err
	}
	r.log.Debug("checkpoint written", "step", ck.Step)
	return nil
}

func readCheckpoint(path string) (*checkpointState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ck checkpointState
	if err := gob.NewDecoder(f).Decode(&ck); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return &ck, nil
}

// Summary is summary.json.
type Summary struct {
	Problem    string             `json:"problem"`
	Mode       string             `json:"mode"`
	Steps      int                `json:"steps"`
	Loss       float64            `json:"loss"`
	BlockLoss  map[string]float64 `json:"block_loss"`
	Weights    map[string]float64 `json:"weights"`
	ErrorMax   *float64           `json:"error_max,omitempty"`
	ErrorRMS   *float64           `json:"error_rms,omitempty"`
	ErrorL2    *float64           `json:"error_l2,omitempty"` // relative L² error
	Seconds    float64            `json:"seconds"`
	BLAS       string             `json:"blas"`
	FinalTheta string             `json:"final_snapshot"`
}

func (r *Run) finish() error {
	tr := r.Trainer
	snap := model.NewSnapshot(tr.setup, tr.theta, tr.points)
	if err := snap.Write(filepath.Join(r.Dir, finalFile)); err != nil {
		return err
	}
	s := Summary{
		Problem: tr.setup.Problem.Name, Mode: r.Config.Train.Mode.String(), Steps: tr.t,
		Loss: r.lastRec.Loss, BlockLoss: map[string]float64{}, Weights: map[string]float64{},
		Seconds: r.elapsed + time.Since(r.start).Seconds(), BLAS: model.BLASBackend(), FinalTheta: finalFile,
	}
	for b, name := range tr.Layout().BlockNames() {
		if b < len(r.lastRec.BlockMSE) {
			s.BlockLoss[name] = r.lastRec.BlockMSE[b]
			s.Weights[name] = r.lastRec.Lambda[b]
		}
	}
	if r.grid != nil {
		e, _ := tr.setup.SolutionErrors(tr.theta, r.grid)
		s.ErrorMax, s.ErrorRMS, s.ErrorL2 = &e.Max, &e.RMS, &e.L2
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return model.WriteFileAtomic(filepath.Join(r.Dir, summaryFile), append(data, '\n'))
}
