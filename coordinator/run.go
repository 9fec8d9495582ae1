package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/protocol"
)

// RunConfig is what a run folder's config.json holds: enough to start the
// run again from nothing, or to resume it from a checkpoint.
type RunConfig struct {
	Model     model.Config `json:"model"`
	Seed      uint64       `json:"seed"` // seed of θ_0
	Train     TrainConfig  `json:"train"`
	Backend   string       `json:"backend"`    // informational: where probes were computed
	ErrorGrid int          `json:"error_grid"` // grid points per coordinate of the solution error (0: by dimension)
	// ErrorEvery is the steps between solution-error evaluations (0:
	// DefaultErrorEvery). It does not depend on Steps, so that a run
	// extended to N steps writes the rows a run of N steps writes.
	ErrorEvery int `json:"error_every"`
	// Stop ends the run early once it has converged (StopRules); it
	// changes when the run ends, not its steps.
	Stop StopRules `json:"stop"`
	// Transport is where the run's probes are computed, as the command
	// that started it chose: a resumed run computes them there again
	// unless told otherwise. It changes no bit of the run.
	Transport *Transport `json:"transport,omitempty"`
	// Init names θ_0 when it is not drawn from Seed (train --init): a
	// snapshot kept in the run folder, and its SHA-256.
	Init *InitTheta `json:"init,omitempty"`
}

// InitTheta is a run's θ_0 taken from a file (a snapshot, or a run's
// final.json). The run keeps it as initFile, so that its folder alone
// reproduces it; the checksum ties the run's checkpoints to it.
type InitTheta struct {
	File   string `json:"file"`   // in the run folder
	SHA256 string `json:"sha256"` // of that file
	From   string `json:"from"`   // where it was taken from (informational)

	theta []float64
}

// NewInit is a θ_0 for NewRun, taken from the file from.
func NewInit(theta []float64, from string) *InitTheta {
	return &InitTheta{From: from, theta: theta}
}

// Theta is θ_0 (once read by LoadInit, or given to NewInit).
func (in *InitTheta) Theta() []float64 { return in.theta }

const initFile = "init.json"

// LoadInit reads the θ_0 of a configuration read from the folder dir
// (which holds cfg.Init.File), after checking the file's SHA-256, and
// checks it against the configuration's network.
func LoadInit(dir string, cfg *RunConfig) error {
	in := cfg.Init
	if in == nil {
		return nil
	}
	if in.File != initFile {
		return fmt.Errorf("init file %q: a run keeps its θ_0 in %s", in.File, initFile)
	}
	path := filepath.Join(dir, in.File)
	data, err := model.ReadFileLimit(path, model.MaxSnapshotBytes)
	if err != nil {
		return fmt.Errorf("θ_0: %w", err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != in.SHA256 {
		return fmt.Errorf("%s does not match the SHA-256 in %s: the file was changed or damaged since the run wrote it", path, configFile)
	}
	snap, err := model.ParseSnapshot(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	setup, err := model.NewSetup(cfg.Model)
	if err != nil {
		return err
	}
	if err := setup.CheckTheta(snap.Theta); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	in.theta = snap.Theta
	return nil
}

// Transport names where a run's probes are computed.
type Transport struct {
	// NATS is "off" (goroutines in the coordinator's process), "embedded"
	// (a NATS server in its process) or the URL of a NATS server, without
	// credentials (they are given again on resume).
	NATS     string `json:"nats"`
	Samplers int    `json:"samplers"` // samplers in the coordinator's process on NATS
	Workers  int    `json:"workers"`  // goroutines with NATS off
}

// DefaultErrorEvery is the default of RunConfig.ErrorEvery.
const DefaultErrorEvery = 10

// RunOptions are the parts of a run that do not change its numbers.
type RunOptions struct {
	CheckpointEvery int // steps between checkpoints (0: only at the end)
	// CheckpointSeconds bounds the wall-clock time between checkpoints
	// (0: DefaultCheckpointSeconds), so that a long run stopped by kill -9
	// does few steps again.
	CheckpointSeconds float64
	// Progress is called after every step with the step's record.
	Progress func(rec *StepRecord, done, total int)
	// ProbeProgress is called as the initial probes of Algorithm 3 arrive:
	// done are in hand, held more received and held by the backend for
	// its checks (--verify); done falls when a sampler caught forging
	// loses what it gave.
	ProbeProgress func(done, held, total int)
	// StepStart is called as each step starts.
	StepStart func(step, total int)
	// WorkProgress is told how the long parts of a step go (Trainer.OnWork).
	WorkProgress func(what string, done, total int)
	// AfterRun is called with the finished run (plots, reports).
	AfterRun func(r *Run) error
	Log      hclog.Logger
	Eval     model.Options
}

// DefaultCheckpointSeconds is the default of RunOptions.CheckpointSeconds.
const DefaultCheckpointSeconds = 120

// Run is a training run writing to its folder:
//
//	config.json     the RunConfig
//	train.csv       one row per step (see Columns)
//	checkpoint.gob  the state after the last checkpointed step, from the
//	                moment the folder holds a run (config.json)
//	probes.log      the probes computed since that checkpoint (runs that
//	                draw probes), so that no probe is computed twice
//	final.json      a snapshot of the final θ (feed it to "coordinator exact")
//	summary.json    the last step's numbers and the run's time
//
// A run stopped in any way (an error, a signal, kill -9) resumes from its
// checkpoint and probe log and ends as the run that never stopped.
type Run struct {
	Dir     string
	Config  RunConfig
	Trainer *Trainer

	opt      RunOptions
	log      hclog.Logger
	csv      *os.File
	w        *bufio.Writer
	csvHash  hash.Hash // SHA-256 of train.csv as written
	csvBytes int64     // its length
	probes   *probeLog // nil for runs that draw no probes
	lastCk   time.Time // when the last checkpoint was written
	grid     []float64
	start    time.Time
	elapsed  float64 // seconds of earlier sessions (resume)
	lastRec  StepRecord
	lastErr  model.ErrorNorms
	hasError bool
	// fingerprint of Config as config.json holds it, for checkpoints
	fingerprint string
	audit       Audit // the run's refusals and checks, over every session
	stopState   stopState
}

const (
	configFile     = "config.json"
	csvFile        = "train.csv"
	checkpointFile = "checkpoint.gob"
	finalFile      = "final.json"
	summaryFile    = "summary.json"
)

// MaxConfigBytes bounds a config.json (a problem file's text included).
const MaxConfigBytes = 16 << 20

// MaxErrorGrid bounds the points of the solution error's grid.
const MaxErrorGrid = 1_000_000

// Validate reports a configuration that cannot run (as a config.json may
// hold, whoever wrote it), with what to change.
func (c *RunConfig) Validate(setup *model.Setup) error {
	if c.Train.Steps < 1 {
		return fmt.Errorf("steps = %d: want at least 1", c.Train.Steps)
	}
	if c.ErrorEvery < 1 {
		return fmt.Errorf("error every %d steps: want a positive period", c.ErrorEvery)
	}
	if err := c.Stop.Validate(); err != nil {
		return err
	}
	if g := c.ErrorGrid; g != 0 && (g < 2 || math.Pow(float64(g), float64(setup.Problem.Dim)) > MaxErrorGrid) {
		return fmt.Errorf("error grid of %d points per coordinate in %d-D: want at least 2, and at most %d points in all", g, setup.Problem.Dim, MaxErrorGrid)
	}
	tc := c.Train
	if tc.Mode == ExactWeights && tc.ExactEvery == 0 {
		tc.ExactEvery = 1
	}
	if tc.ExactEvery < 0 || tc.Eigenvalues < 0 {
		return fmt.Errorf("exact every %d steps, %d eigenvalues: want numbers ≥ 0", tc.ExactEvery, tc.Eigenvalues)
	}
	if err := tc.Validate(len(setup.Problem.Blocks)); err != nil {
		return err
	}
	if _, n, _ := checkpointBytes(c, setup); tc.Eigenvalues > n {
		return fmt.Errorf("%d eigenvalues of K: it has %d (one per residual)", tc.Eigenvalues, n)
	}
	if tc.Counts != nil {
		if _, err := setup.MemoryNeed(tc.Counts, model.Memory{}); err != nil {
			return err
		}
	}
	return nil
}

// NewRun starts a run in dir (created once the configuration is known to
// be good; it must not hold a run already).
func NewRun(dir string, cfg RunConfig, backend Backend, opt RunOptions) (*Run, error) {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a run: resume it, or choose another folder", dir)
	}
	if cfg.ErrorEvery == 0 {
		cfg.ErrorEvery = DefaultErrorEvery
	}
	setup, err := model.NewSetup(cfg.Model)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(setup); err != nil {
		return nil, err
	}
	cfg.Model = setup.Config
	theta0 := setup.InitTheta(cfg.Seed)
	if cfg.Init != nil {
		if theta0 = cfg.Init.theta; theta0 == nil {
			return nil, errors.New("θ_0 from a file: the file was not read (LoadInit)")
		}
	}
	tr, err := NewTrainer(setup, theta0, cfg.Train, backend, opt.Eval)
	if err != nil {
		return nil, err
	}
	cfg.Train = tr.cfg
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run folder: %w", err)
	}
	if cfg.Init != nil {
		// θ_0 as a snapshot at the first step's points (so that it also
		// feeds "coordinator exact"); config.json keeps its checksum.
		init := *cfg.Init
		data, err := json.Marshal(model.NewSnapshot(setup, theta0, tr.points))
		if err != nil {
			return nil, err
		}
		data = append(data, '\n')
		if err := model.WriteFileAtomic(filepath.Join(dir, initFile), data); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		init.File, init.SHA256 = initFile, hex.EncodeToString(sum[:])
		cfg.Init = &init
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, Config: cfg, Trainer: tr, opt: opt, fingerprint: cfg.Fingerprint()}
	// train.csv's header, the probe log and the checkpoint of step 0 come
	// before config.json, which makes the folder a run: a run folder always
	// has a checkpoint to resume from.
	if err := r.openCSV(nil); err != nil {
		return nil, err
	}
	if cfg.Train.NeedsProbes() {
		if r.probes, err = newProbeLog(filepath.Join(dir, probesFile), r.fingerprint, probeWidth(&cfg, setup)); err != nil {
			r.csv.Close()
			return nil, err
		}
		if backend != nil {
			tr.backend = logged(backend, r.probes)
		}
	}
	r.init()
	err = r.checkpoint()
	if err == nil {
		err = model.WriteFileAtomic(filepath.Join(dir, configFile), append(data, '\n'))
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// probeWidth is the number of values of one probe's result.
func probeWidth(cfg *RunConfig, setup *model.Setup) int {
	return cfg.Train.Probe.Width(setup.Problem, counts(setup, cfg.Train.Counts))
}

func counts(setup *model.Setup, c []int) []int {
	if c == nil {
		return setup.Problem.DefaultCounts()
	}
	return c
}

// ErrFinished is returned by ResumeRun for a run that has done all its
// steps: its outputs stay as they are (ExtendRun lengthens it).
var ErrFinished = errors.New("the run is finished")

// RunState is what a run folder says about its run: the configuration and
// the step its checkpoint is at, both checked.
type RunState struct {
	Config RunConfig
	Step   int // the next step of the checkpoint
	Probes int // probe results of that step and later ones in the probe log
}

// Finished reports whether the run has done all its steps.
func (s *RunState) Finished() bool { return s.Step >= s.Config.Train.Steps }

// ReadRun reads and checks a run folder's config.json and checkpoint: the
// checkpoint must be this configuration's (its fingerprint) and whole (every
// array's length and values, the step range).
func ReadRun(dir string) (*RunState, error) {
	ld, err := loadRun(dir)
	if err != nil {
		return nil, err
	}
	return &RunState{Config: ld.cfg, Step: ld.ck.Step, Probes: ld.probes.read}, nil
}

// loaded is a run folder read and checked in full, before anything in it
// is changed: its configuration, its checkpoint (checksum and contents),
// train.csv's rows up to the checkpoint (their checksum) and the probe log
// (its chain of checksums).
type loaded struct {
	cfg     RunConfig
	setup   *model.Setup
	ck      *checkpointState
	csvHash hash.Hash
	probes  *probeLog
}

func loadRun(dir string) (*loaded, error) {
	cfg, err := ReadRunConfig(dir)
	if err != nil {
		return nil, err
	}
	setup, err := model.NewSetup(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", dir, configFile, err)
	}
	if err := cfg.Validate(setup); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", dir, configFile, err)
	}
	ck, err := readCheckpoint(filepath.Join(dir, checkpointFile), &cfg, setup)
	if err != nil {
		return nil, err
	}
	h, err := checkCSV(filepath.Join(dir, csvFile), ck)
	if err != nil {
		return nil, err
	}
	ld := &loaded{cfg: cfg, setup: setup, ck: ck, csvHash: h, probes: &probeLog{}}
	if cfg.Train.NeedsProbes() {
		lim := limitsOf(&cfg, probeWidth(&cfg, setup))
		if ld.probes, err = readProbeLog(filepath.Join(dir, probesFile), ck.Fingerprint, ck.Step, lim); err != nil {
			return nil, err
		}
	}
	return ld, nil
}

// checkCSV checks that train.csv begins with the bytes the checkpoint
// says it had (their length and SHA-256) and returns their hash, to go on
// from. What follows them (rows after the checkpoint) is dropped by the
// resume and computed again.
func checkCSV(path string, ck *checkpointState) (hash.Hash, error) {
	f, err := model.OpenRegular(path, -1)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyN(h, f, ck.CSVBytes)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("resume: read %s: %w", path, err)
	}
	if n != ck.CSVBytes || !bytes.Equal(h.Sum(nil), ck.CSVSum) {
		return nil, fmt.Errorf("%s: its first %d bytes (the header and the rows before step %d) are not those the checkpoint was written with (their SHA-256 differs): the file was changed or damaged; restore it, or start the run again", path, ck.CSVBytes, ck.Step)
	}
	return h, nil
}

// ExtendRun sets the length of the run in dir to steps (config.json), after
// checking its checkpoint: a finished run is extended, an unfinished one
// resumed to the new length. Nothing in the run depends on its length, so
// the extended run is, row for row, the run of that many steps from the
// start.
func ExtendRun(dir string, steps int) error {
	st, err := ReadRun(dir)
	if err != nil {
		return err
	}
	// A run ends only by running its last step (which writes the summary
	// and the final snapshot), so its length stays beyond its checkpoint.
	if steps < st.Step || steps == st.Step && !st.Finished() {
		return fmt.Errorf("%s: its checkpoint is at step %d: a run cannot be shortened to %d steps", dir, st.Step, steps)
	}
	cfg := st.Config
	cfg.Train.Steps = steps
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return model.WriteFileAtomic(filepath.Join(dir, configFile), append(data, '\n'))
}

// ResumeRun continues the run in dir from its checkpoint. Rows of train.csv
// after the checkpoint are dropped and computed again, so the finished run
// is the one that never stopped. A finished run gives ErrFinished.
func ResumeRun(dir string, backend Backend, opt RunOptions) (*Run, error) {
	ld, err := loadRun(dir)
	if err != nil {
		return nil, err
	}
	cfg, ck := ld.cfg, ld.ck
	if ck.Step >= cfg.Train.Steps {
		return nil, fmt.Errorf("%s: %w at step %d", dir, ErrFinished, ck.Step)
	}
	tr, err := NewTrainer(ld.setup, ck.Theta, cfg.Train, backend, opt.Eval)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := tr.restore(ck); err != nil {
		return nil, fmt.Errorf("resume %s: %s: %w", dir, checkpointFile, err)
	}
	r := &Run{Dir: dir, Config: cfg, Trainer: tr, opt: opt, elapsed: ck.Seconds, fingerprint: ck.Fingerprint, audit: ck.Audit.Clone(), stopState: ck.Stop}
	if r.stopState.Reason != "" {
		// A run a stop rule had ended, extended: its rules start afresh.
		r.stopState = stopState{}
	}
	// Everything is checked: from here on the folder is written.
	r.csvHash, r.csvBytes = ld.csvHash, ck.CSVBytes
	if err := r.openCSV(&ck.CSVBytes); err != nil {
		return nil, err
	}
	if cfg.Train.NeedsProbes() {
		r.probes = ld.probes
		if err := r.probes.open(); err != nil {
			r.close()
			return nil, err
		}
		if backend != nil {
			tr.backend = logged(backend, r.probes)
		}
	}
	r.init()
	r.log.Info("resumed", "dir", dir, "step", ck.Step, "probes_kept", ld.probes.read)
	r.keepOut(backend, ld.probes.retracted)
	return r, nil
}

// close closes the run's open files.
func (r *Run) close() {
	if r.csv != nil {
		r.csv.Close()
	}
	r.probes.Close()
}

func (r *Run) init() {
	r.log = r.opt.Log
	if r.log == nil {
		r.log = hclog.NewNullLogger()
	}
	r.log = r.log.Named("run")
	r.start, r.lastCk = time.Now(), time.Now()
	r.Trainer.OnProbe = r.opt.ProbeProgress
	r.Trainer.OnWork = r.opt.WorkProgress
	p := r.Trainer.setup.Problem
	if p.Exact != nil && r.Config.ErrorEvery > 0 {
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
		r.grid = p.ErrorPoints(g) // the reference's points, or the grid's points in the domain
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
//	step, loss (Σ_b mean squared residual), objective (½Σ w_b‖R_b‖², w_b = λ_b or λ_b/n_b),
//	grad_norm2, lr, trace, accepted,
//	loss_<b>, lambda_<b>, lambda_<b>_lo, lambda_<b>_hi, exact_lambda_<b> per block,
//	eig_1..eig_k, error_max, error_rms, error_l2,
//	the optimizer's own columns (ngd, sngd: optim.NaturalColumns),
//	rejected, verified, mismatches, quarantined (this step's probes: results
//	refused, batches checked by --verify, of them wrong, samplers quarantined),
//	seconds.
//
// Cells that were not computed at a step are empty.
func Columns(blocks []string, eig int, optimizer []string) []string {
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
	cols = append(cols, optimizer...)
	return append(cols, "rejected", "verified", "mismatches", "quarantined", "seconds")
}

// openCSV opens train.csv for appending: new with a header, or (resume)
// cut to the keep bytes that loadRun checked.
func (r *Run) openCSV(keep *int64) error {
	path := filepath.Join(r.Dir, csvFile)
	if keep == nil {
		header := strings.Join(Columns(r.Trainer.Layout().BlockNames(), r.Config.Train.Eigenvalues, r.Trainer.method.Columns()), ",") + "\n"
		if err := model.WriteFileAtomic(path, []byte(header)); err != nil {
			return err
		}
		r.csvHash = sha256.New()
		r.csvHash.Write([]byte(header))
		r.csvBytes = int64(len(header))
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if keep != nil {
		if err := f.Truncate(*keep); err != nil {
			f.Close()
			return fmt.Errorf("resume: %w", err)
		}
	}
	if _, err := f.Seek(r.csvBytes, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	r.csv, r.w = f, bufio.NewWriter(io.MultiWriter(f, r.csvHash))
	return nil
}

// Execute runs the remaining steps, checkpointing as configured, and writes
// the final snapshot and summary. It returns ctx's error if interrupted,
// after writing a checkpoint of the last completed step.
func (r *Run) Execute(ctx context.Context) error {
	defer r.close()
	tr := r.Trainer
	total := r.Config.Train.Steps
	r.log.Info("run started", "dir", r.Dir, "problem", tr.setup.Problem.Name, "mode", r.Config.Train.Mode, "steps", total, "from", tr.t, "p", tr.ev.Layout().P, "n", tr.ev.Layout().N)
	for tr.t < total {
		if err := ctx.Err(); err != nil {
			r.log.Info("interrupted", "step", tr.t)
			if cerr := r.checkpoint(); cerr != nil {
				return errors.Join(err, cerr)
			}
			return err
		}
		t := tr.t
		r.hasError = false
		if r.grid != nil && t%r.Config.ErrorEvery == 0 {
			r.lastErr, _ = tr.setup.SolutionErrors(tr.theta, r.grid)
			r.hasError = true
		}
		if target := r.Config.Stop.TargetError; r.hasError && t > 0 && target > 0 && r.lastErr.L2 <= target {
			// θ_t meets the target: it is the run's last θ.
			if err := r.endEarly(t-1, StopTargetError); err != nil {
				return err
			}
			total = tr.t
			r.log.Info("run converged: stopping", "step", t, "reason", StopTargetError, "error_l2", r.lastErr.L2)
			break
		}
		var exactFirst []float64
		if t == 0 && r.Config.Train.Kernel {
			n := tr.Layout().N
			exactFirst = make([]float64, n*n)
			if err := tr.ExactKernel(exactFirst); err != nil {
				return err
			}
		}
		if r.opt.StepStart != nil {
			r.opt.StepStart(t, total)
		}
		rec, err := tr.Step(ctx)
		if err != nil {
			// A step that failed before changing the trainer's state
			// (while its probes came in, the long part) leaves a
			// checkpoint of the steps done so far; otherwise the last
			// one stands. The probe log keeps the probes either way.
			if !tr.touched {
				if cerr := r.checkpoint(); cerr != nil {
					return errors.Join(err, cerr)
				}
			} else {
				r.w.Flush()
			}
			return err
		}
		if err := r.writeRow(rec); err != nil {
			return err
		}
		r.audit.Add(rec.Audit)
		if n := rec.Audit.Total(); n > 0 || rec.Audit.Mismatches > 0 {
			r.log.Warn("results refused", "step", t, "rejected", n, "rejected_by_reason", rec.Audit.Rejected,
				"verified", rec.Audit.Verified, "mismatches", rec.Audit.Mismatches, "quarantined", rec.Audit.Quarantined)
		}
		logStep(r.log, tr.method.Columns(), rec)
		if exactFirst != nil && tr.avg != nil && tr.avg.Kernel != nil {
			if err := r.saveKernels("first", exactFirst); err != nil {
				return err
			}
		}
		r.lastRec = *rec
		if r.opt.Progress != nil {
			r.opt.Progress(rec, t+1, total)
		}
		if reason := r.stop(rec); reason != "" {
			if err := r.endEarly(t, reason); err != nil {
				return err
			}
			total = tr.t
			r.log.Info("run converged: stopping", "step", t, "reason", reason, "loss", rec.Loss)
		}
		every := r.opt.CheckpointEvery > 0 && tr.t%r.opt.CheckpointEvery == 0
		secs := r.opt.CheckpointSeconds
		if secs == 0 {
			secs = DefaultCheckpointSeconds
		}
		if (every || time.Since(r.lastCk).Seconds() >= secs) && tr.t < total {
			if err := r.checkpoint(); err != nil {
				return err
			}
		}
	}
	if err := r.w.Flush(); err != nil {
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
	// The final checkpoint comes last: a checkpoint at the last step means
	// the summary and the final snapshot are written.
	if err := r.checkpoint(); err != nil {
		return err
	}
	if r.opt.AfterRun != nil {
		if err := r.opt.AfterRun(r); err != nil {
			return err
		}
	}
	r.log.Info("run finished", "dir", r.Dir, "steps", total, "stop_reason", r.stopReason(), "loss", r.lastRec.Loss, "seconds", r.elapsed+time.Since(r.start).Seconds(),
		"rejected", r.audit.Total(), "rejected_by_reason", r.audit.Rejected, "verified", r.audit.Verified, "mismatches", r.audit.Mismatches, "quarantined", r.audit.Quarantined)
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
	if rec.Optim != nil {
		b = rec.Optim.AppendCells(b, r.Trainer.method.Columns())
	}
	for _, n := range []int64{rec.Audit.Total(), rec.Audit.Verified, rec.Audit.Mismatches, rec.Audit.Quarantined} {
		b = strconv.AppendInt(append(b, ','), n, 10)
	}
	b = fmtFloat(append(b, ','), r.elapsed+time.Since(r.start).Seconds())
	b = append(b, '\n')
	_, err := r.w.Write(b)
	r.csvBytes += int64(len(b))
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

// MaxMatrixBytes bounds a matrix CSV file (a 4,000×4,000 K in shortest
// exact form is about 300 MB).
const MaxMatrixBytes = 1 << 30

// ReadMatrixCSV reads a square matrix written by WriteMatrixCSV.
func ReadMatrixCSV(path string) ([]float64, int, error) {
	data, err := model.ReadFileLimit(path, MaxMatrixBytes)
	if err != nil {
		return nil, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	n := len(lines)
	// n rows of n values take at least 2n² bytes (a digit and a
	// separator each): check before sizing anything by n².
	if n > 0 && (n > len(data)/(2*n)+1 || strings.Count(lines[0], ",")+1 != n) {
		return nil, 0, fmt.Errorf("%s: %d rows, the first with %d values: not a square matrix", path, n, strings.Count(lines[0], ",")+1)
	}
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

// checkpointVersion changes whenever checkpointState does.
const checkpointVersion = 5

// checkpointState is the trainer's state after a step: everything the next
// step reads that is not in the config, and the fingerprint of that config.
type checkpointState struct {
	Version     int
	Fingerprint string // RunConfig.Fingerprint of the run that wrote it
	Step        int
	Theta       []float64
	Lambda      []float64
	Avg         *MovingAverage
	Spaced      *SpacedRule
	Seconds     float64
	Optimizer   *optim.State // the optimizer's state (Adam's moments, ngd's damping); nil: none
	Audit       Audit        // the run's refusals and checks up to the checkpoint
	Stop        stopState    // the stall rule's memory; why the run ended early
	// CSVBytes and CSVSum are the length and SHA-256 of train.csv at
	// the checkpoint: a resume checks them and goes on from there.
	CSVBytes int64
	CSVSum   []byte
}

// Fingerprint identifies a run's configuration: everything that fixes its
// numbers (model, seeds, points, training and probe settings, the error
// grid) except its length, which ExtendRun changes, and where probes are
// computed (Backend, Transport, Fused), which changes no bit.
func (c RunConfig) Fingerprint() string {
	c.Train.Steps = 0
	c.Stop = StopRules{}
	c.Train.Fused = false
	c.Backend = ""
	c.Transport = nil
	if c.Init != nil {
		in := *c.Init
		in.From = ""
		c.Init = &in
	}
	data, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("run config does not encode: %v", err)) // every field is plain data
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (tr *Trainer) state() *checkpointState {
	ck := &checkpointState{Version: checkpointVersion, Step: tr.t, Theta: tr.theta, Lambda: tr.lambda, Avg: tr.avg, Spaced: tr.spaced}
	ck.Optimizer = tr.method.State()
	return ck
}

// restore installs a checkpoint that readCheckpoint has checked.
func (tr *Trainer) restore(ck *checkpointState) error {
	tr.t = ck.Step
	copy(tr.lambda, ck.Lambda)
	tr.avg, tr.spaced = ck.Avg, ck.Spaced
	if tr.method.State() != nil {
		return tr.method.SetState(ck.Optimizer)
	}
	return nil
}

// checkpoint writes checkpoint.gob (atomically) after flushing the CSV.
func (r *Run) checkpoint() error {
	if err := r.w.Flush(); err != nil {
		return err
	}
	ck := r.Trainer.state()
	ck.Fingerprint = r.fingerprint
	ck.Seconds = r.elapsed + time.Since(r.start).Seconds()
	ck.Audit = r.audit
	ck.Stop = r.stopState
	ck.CSVBytes, ck.CSVSum = r.csvBytes, r.csvHash.Sum(nil)
	data, err := encodeCheckpoint(ck)
	if err != nil {
		return err
	}
	if err := model.WriteFileAtomic(filepath.Join(r.Dir, checkpointFile), data); err != nil {
		return err
	}
	r.lastCk = time.Now()
	if r.probes != nil {
		if err := r.probes.checkpointed(ck.Step); err != nil {
			return err
		}
	}
	r.log.Debug("checkpoint written", "step", ck.Step)
	return nil
}

// checkpointBytes bounds the size of a checkpoint of cfg: θ and two Adam
// moments, the weights, the moving average (with its kernel), and room
// for gob's framing.
func checkpointBytes(cfg *RunConfig, setup *model.Setup) (int64, int, int) {
	p := setup.NumParams()
	B := len(setup.Problem.Blocks)
	counts := cfg.Train.Counts
	if counts == nil {
		counts = setup.Problem.DefaultCounts()
	}
	n := 0
	for b, c := range counts {
		if b < B {
			n += c * setup.Problem.Blocks[b].Components
		}
	}
	floats := float64(3*p+4*B+3*B*B) + 64
	if cfg.Train.Kernel {
		floats += float64(n) * float64(n)
	}
	return int64(math.Min(9*floats+1<<16, math.MaxInt64/2)), n, B
}

// readCheckpoint reads the checkpoint at path and checks it in full against
// the run's configuration: its fingerprint, the step range, and the length
// and values of every array, so that a checkpoint of another run, a torn
// or a crafted one is an error that says so, never a panic or a wrong run.
func readCheckpoint(path string, cfg *RunConfig, setup *model.Setup) (*checkpointState, error) {
	limit, n, B := checkpointBytes(cfg, setup)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("checkpoint %s: %s", path, fmt.Sprintf(format, a...))
	}
	data, err := model.ReadFileLimit(path, limit+checkpointHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	ck, err := decodeCheckpoint(data)
	if err != nil {
		return nil, bad("%v", err)
	}
	if ck.Fingerprint != cfg.Fingerprint() {
		return nil, bad("written for another configuration than %s holds (config.json was changed, or the checkpoint is another run's): resume a run from its own folder, as it was written", configFile)
	}
	if err := checkState(ck, cfg, setup, n, B); err != nil {
		return nil, bad("%v", err)
	}
	return ck, nil
}

// A checkpoint file is one header line, then the gob of a checkpointState:
//
//	ntkbus checkpoint <version> sha256 <64 hex digits of the gob's SHA-256>
//
// The checksum covers the whole state, so a changed bit anywhere (the
// header's digits included) is found before anything in it is used.
const checkpointMagic = "ntkbus checkpoint"

// checkpointHeaderBytes bounds the header line.
const checkpointHeaderBytes = 128

// encodeCheckpoint returns a checkpoint file's bytes.
func encodeCheckpoint(ck *checkpointState) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(ck); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	head := fmt.Sprintf("%s %d sha256 %s\n", checkpointMagic, ck.Version, hex.EncodeToString(sum[:]))
	return append([]byte(head), buf.Bytes()...), nil
}

// decodeCheckpoint checks a checkpoint file's header and checksum and
// decodes its state (whose fields checkState checks).
func decodeCheckpoint(data []byte) (*checkpointState, error) {
	if !bytes.HasPrefix(data, []byte(checkpointMagic+" ")) {
		return nil, errors.New("not a checkpoint of this version: earlier versions wrote no checksum header (start such a run again), or it is torn or another file")
	}
	line, _, ok := bytes.Cut(data[:min(len(data), checkpointHeaderBytes)], []byte("\n"))
	if !ok {
		return nil, errors.New("no whole header line: it is torn, or not a checkpoint")
	}
	body := data[len(line)+1:]
	var version int
	var sum string
	if n, err := fmt.Sscanf(string(line), checkpointMagic+" %d sha256 %64s", &version, &sum); n != 2 || err != nil || string(line) != fmt.Sprintf("%s %d sha256 %s", checkpointMagic, version, sum) {
		return nil, errors.New("its header is not a checkpoint's: it is torn, changed, or not a checkpoint")
	}
	if version != checkpointVersion {
		return nil, fmt.Errorf("format %d, this version reads %d: start the run again", version, checkpointVersion)
	}
	want := sha256.Sum256(body)
	if sum != hex.EncodeToString(want[:]) {
		return nil, errors.New("its contents do not match their SHA-256: the file was changed or damaged since it was written; restore it, or start the run again")
	}
	var ck checkpointState
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&ck); err != nil {
		return nil, fmt.Errorf("unreadable (%v)", err)
	}
	if ck.Version != version {
		return nil, fmt.Errorf("format %d in a file of format %d", ck.Version, version)
	}
	return &ck, nil
}

// checkState checks every field of a decoded checkpoint against the run.
func checkState(ck *checkpointState, cfg *RunConfig, setup *model.Setup, n, B int) error {
	tc := &cfg.Train
	p := setup.NumParams()
	if ck.Step < 0 || ck.Step > tc.Steps {
		return fmt.Errorf("step %d is outside the run's 0..%d", ck.Step, tc.Steps)
	}
	if err := setup.CheckTheta(ck.Theta); err != nil {
		return err
	}
	if !finiteAll(ck.Seconds) || ck.Seconds < 0 {
		return fmt.Errorf("elapsed time %v", ck.Seconds)
	}
	if len(ck.Lambda) != B {
		return fmt.Errorf("%d weights for %d blocks", len(ck.Lambda), B)
	}
	for b, l := range ck.Lambda {
		if !(l > 0) || math.IsInf(l, 0) {
			return fmt.Errorf("weight %d is %v: weights are positive and finite", b, l)
		}
	}
	// The optimizer checks its own state, as it would install it.
	m, err := optim.New(tc.optimConfig(0), p)
	if err != nil {
		return err
	}
	// A state whose fields are all zero reads back as none (gob).
	if st := m.State(); ck.Optimizer != nil && st == nil {
		return fmt.Errorf("optimizer state present: true, for optimizer %s", tc.Optimizer)
	} else if st != nil {
		if err := m.SetState(ck.Optimizer); err != nil {
			return fmt.Errorf("optimizer state present: %v, for optimizer %s: %w", ck.Optimizer != nil, tc.Optimizer, err)
		}
	}
	// The moving average exists from the end of step 0 on, in estimate mode.
	wantAvg := tc.Mode == Estimated && ck.Step > 0
	if (ck.Avg != nil) != wantAvg {
		return fmt.Errorf("moving average present: %v, want %v at step %d in %s mode", ck.Avg != nil, wantAvg, ck.Step, tc.Mode)
	}
	if a := ck.Avg; a != nil {
		switch {
		case a.Alpha != tc.Alpha:
			return fmt.Errorf("moving-average rate %v, the run's α is %v", a.Alpha, tc.Alpha)
		case len(a.T) != B || len(a.V) != B*B || len(a.S) != B*B:
			return fmt.Errorf("moving average of %d traces, %d and %d covariances for %d blocks", len(a.T), len(a.V), len(a.S), B)
		case !finiteAll(a.T...) || !finiteAll(a.V...) || !finiteAll(a.S...):
			return errors.New("moving average is not finite")
		case a.Steps != ck.Step-1:
			return fmt.Errorf("moving average of %d updates at step %d", a.Steps, ck.Step)
		case tc.Kernel && len(a.Kernel) != n*n || !tc.Kernel && a.Kernel != nil:
			return fmt.Errorf("moving-average kernel of %d values for n = %d (kernel kept: %v)", len(a.Kernel), n, tc.Kernel)
		case !finiteAll(a.Kernel...):
			return errors.New("moving-average kernel is not finite")
		}
	}
	wantSpaced := tc.Spaced && ck.Step > 0
	if (ck.Spaced != nil) != wantSpaced {
		return fmt.Errorf("spaced-update state present: %v, want %v", ck.Spaced != nil, wantSpaced)
	}
	if sp := ck.Spaced; sp != nil {
		if _, err := NewSpacedRule(sp.H0, sp.Gamma); err != nil {
			return err
		}
		switch {
		case sp.Gamma != tc.SpacedGamma || tc.SpacedH0 != 0 && sp.H0 != tc.SpacedH0:
			return fmt.Errorf("spaced rule h0 = %v, γ = %v; the run's are %v, %v", sp.H0, sp.Gamma, tc.SpacedH0, tc.SpacedGamma)
		case !finiteAll(sp.S):
			return fmt.Errorf("spaced rule budget %v", sp.S)
		case sp.Accepted < 0 || sp.Rejected < 0 || sp.Accepted+sp.Rejected > ck.Step:
			return fmt.Errorf("spaced rule counts %d and %d at step %d", sp.Accepted, sp.Rejected, ck.Step)
		}
	}
	if err := ck.Stop.check(ck.Step); err != nil {
		return err
	}
	if a := ck.Audit; a.Verified < 0 || a.Mismatches < 0 || a.Quarantined < 0 || a.Mismatches > a.Verified || len(a.Rejected) > maxAuditReasons {
		return fmt.Errorf("audit counts %d verified, %d mismatches, %d quarantined, %d reasons", a.Verified, a.Mismatches, a.Quarantined, len(a.Rejected))
	}
	for reason, n := range ck.Audit.Rejected {
		if n < 0 || len(reason) > 64 {
			return fmt.Errorf("audit: %d rejected for a reason of %d bytes", n, len(reason))
		}
	}
	if err := checkAuditIdentities(ck.Audit); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if ck.CSVBytes < 0 || len(ck.CSVSum) != sha256.Size {
		return fmt.Errorf("train.csv's length %d and checksum of %d bytes", ck.CSVBytes, len(ck.CSVSum))
	}
	return nil
}

// keepOut tells the backend of a resumed run which identities were caught
// forging earlier in the run (the checkpoint's audit, and the probe log's
// retractions after it): quarantine is for the run, so they get no work.
func (r *Run) keepOut(backend Backend, retracted map[string]string) {
	for id, why := range retracted {
		if _, ok := r.audit.Quarantines[id]; !ok && len(r.audit.Quarantines) < MaxAuditIdentities {
			if r.audit.Quarantines == nil {
				r.audit.Quarantines = map[string]string{}
			}
			r.audit.Quarantines[id] = why
			r.audit.Quarantined++
		}
	}
	q, ok := backend.(Quarantiner)
	if !ok || len(r.audit.Quarantines) == 0 {
		return
	}
	ids := make([]string, 0, len(r.audit.Quarantines))
	for id := range r.audit.Quarantines {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		q.Quarantine(id, r.audit.Quarantines[id])
	}
	r.log.Info("samplers caught forging earlier in the run stay quarantined", "samplers", ids)
}

// maxAuditReasons bounds the rejection reasons a checkpoint may list (the
// bus knows about a dozen).
const maxAuditReasons = 64

// checkAuditIdentities checks the identities an audit read back names:
// at most MaxAuditIdentities in each map, each an identity of 1 to 64
// bytes (what a subject token may hold), reasons of at most 64 bytes and
// counts that are not negative.
func checkAuditIdentities(a Audit) error {
	if len(a.Quarantines) > MaxAuditIdentities || len(a.RefusedFrom) > MaxAuditIdentities {
		return fmt.Errorf("%d quarantined and %d refused identities, more than the %d an audit keeps", len(a.Quarantines), len(a.RefusedFrom), MaxAuditIdentities)
	}
	if int64(len(a.Quarantines)) > a.Quarantined {
		return fmt.Errorf("%d identities named quarantined, %d counted", len(a.Quarantines), a.Quarantined)
	}
	for id, why := range a.Quarantines {
		if err := protocol.ValidIdentity(id); err != nil {
			return fmt.Errorf("quarantined: %w", err)
		}
		if len(why) == 0 || len(why) > 64 {
			return fmt.Errorf("identity %s quarantined for a reason of %d bytes (want 1 to 64)", id, len(why))
		}
	}
	for id, n := range a.RefusedFrom {
		if err := protocol.ValidIdentity(id); err != nil {
			return fmt.Errorf("refusals: %w", err)
		}
		if n < 0 {
			return fmt.Errorf("%d refusals of identity %s", n, id)
		}
	}
	return nil
}

func finiteAll(v ...float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// ReadRunConfig reads a run folder's config.json. Unknown keys are errors,
// and a config.json in the key style of earlier versions (Steps,
// FixedWeights) is named as such.
func ReadRunConfig(dir string) (RunConfig, error) {
	cfg, err := ReadRunConfigFile(filepath.Join(dir, configFile))
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("resume %s: %w", dir, err)
	}
	return cfg, err
}

// ReadRunConfigFile reads a run's config.json at path.
func ReadRunConfigFile(path string) (RunConfig, error) {
	var cfg RunConfig
	data, err := model.ReadFileLimit(path, MaxConfigBytes)
	if err != nil {
		return cfg, err
	}
	if key := oldStyleKey(data); key != "" {
		return cfg, fmt.Errorf("%s is in the key style of an earlier version (%q): this version reads snake_case keys and cannot resume the run; start it again", path, key)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// oldStyleKey returns a key of the "train" object written with Go field
// names (Steps, Mode, FixedWeights), as versions before snake_case did.
func oldStyleKey(data []byte) string {
	var top struct {
		Train map[string]json.RawMessage `json:"train"`
	}
	if json.Unmarshal(data, &top) != nil {
		return ""
	}
	keys := make([]string, 0, len(top.Train))
	for k := range top.Train {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "" && k[0] >= 'A' && k[0] <= 'Z' {
			return k
		}
	}
	return ""
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
	// Results refused over the run (the total and by reason) and the
	// --verify checks: batches recomputed, of them wrong, samplers
	// quarantined.
	Rejected         int64            `json:"rejected"`
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`
	Verified         int64            `json:"verified"`
	Mismatches       int64            `json:"mismatches"`
	Quarantined      int64            `json:"quarantined"`
	// StopReason is why the run ended: "steps" (all its steps), or a stop
	// rule: "target_error", "target_loss", "stall".
	StopReason string `json:"stop_reason"`
}

// stopReason is why the run ended (or will, at its last step).
func (r *Run) stopReason() string {
	if r.stopState.Reason != "" {
		return r.stopState.Reason
	}
	return StopSteps
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
		Rejected: r.audit.Total(), RejectedByReason: map[string]int64{},
		Verified: r.audit.Verified, Mismatches: r.audit.Mismatches, Quarantined: r.audit.Quarantined,
		StopReason: r.stopReason(),
	}
	for k, v := range r.audit.Rejected {
		s.RejectedByReason[k] = v
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
