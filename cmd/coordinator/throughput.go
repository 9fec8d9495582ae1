package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus"
	"ntkbus/model"
	"ntkbus/sampler"
)

// throughputReport is what `study throughput --json` prints.
type throughputReport struct {
	Problem string `json:"problem"`
	N       int    `json:"n"`
	P       int    `json:"p"`
	Probes  int    `json:"probes"`
	Rounds  int    `json:"rounds"`
	BLAS    string `json:"blas"`
	// Local is the in-process reference; absent with --compare-local=false.
	Local *backendSpeed `json:"local,omitempty"`
	// NATS is absent with --nats off.
	NATS *backendSpeed `json:"nats,omitempty"`
	// NATSVsLocal is NATS probes/s over in-process probes/s.
	NATSVsLocal *float64 `json:"nats_vs_local,omitempty"`
	// SameBits says whether every round's trace and block traces were
	// equal to the bit on both backends (they must be).
	SameBits *bool `json:"same_bits,omitempty"`
}

// backendSpeed is one backend's measured rounds.
type backendSpeed struct {
	Backend       string           `json:"backend"`
	Seconds       []float64        `json:"seconds"`        // wall time of each round
	ProbesPerSec  float64          `json:"probes_per_sec"` // probes over the median round
	CoordSeconds  *float64         `json:"coordinator_seconds,omitempty"`
	SamplerSecs   *float64         `json:"sampler_seconds,omitempty"`
	CoordPercent  *float64         `json:"coordinator_percent,omitempty"` // coordinator time as % of the samplers' compute
	Resent        *int64           `json:"resent_batches,omitempty"`
	Rejected      *int64           `json:"rejected,omitempty"`
	RejectedBy    map[string]int64 `json:"rejected_by_reason,omitempty"`
	Verified      *int64           `json:"verified,omitempty"`
	Mismatches    *int64           `json:"mismatches,omitempty"`
	Quarantined   *int64           `json:"quarantined,omitempty"`
	VerifySeconds *float64         `json:"verify_seconds,omitempty"`
	SamplersSeen  *int             `json:"samplers,omitempty"`
	traces        [][]float64
	medianSeconds float64
}

// runStudyThroughput measures how many probes per second a backend delivers
// at a fixed θ, and for NATS how much of that time the coordinator itself
// spends: the numbers a user checks before trusting a cluster with a run.
func runStudyThroughput(args []string, out io.Writer) (err error) {
	fs := newFlags("study throughput", "--problem P [--probes N] [--rounds 3] [--nats URL|embedded] [--samplers K]")
	var pf problemFlags
	addProblemFlags(fs, &pf)
	var prf probeFlags
	prf.register(fs)
	var lf logFlags
	lf.register(fs)
	var bf busFlags
	bf.register(fs, "embedded", runtime.NumCPU())
	seed := fs.Uint64("seed", 1, "seed of θ, the points and the probes")
	snapPath := fs.String("snapshot", "", "take θ and the points from this snapshot instead of --problem and --seed")
	probes := fs.Int("probes", 0, "probes per round (0: about 2 s of in-process work, from a warm-up)")
	rounds := fs.Int("rounds", 3, "timed rounds per backend, each a new step with its own snapshot; the median counts")
	workers := fs.Int("workers", runtime.NumCPU(), "goroutines of the in-process reference")
	compare := fs.Bool("compare-local", true, "also measure the in-process backend and compare the bits")
	asJSON := fs.Bool("json", false, "print one JSON object")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes the model's work memory may use")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *rounds < 1:
		return badInput("--rounds %d: want at least 1", *rounds)
	case *probes < 0:
		return badInput("--probes %d: want a positive count, or 0 to size rounds from a warm-up", *probes)
	case *workers < 1:
		return badInput("--workers %d: want at least 1", *workers)
	case !*compare && !bf.useNATS():
		return badInput("nothing to measure: --compare-local=false needs --nats URL or embedded")
	}
	if err := bf.check(); err != nil {
		return err
	}
	setup, coll, theta, err := fixedPoint(&pf, *snapPath, *seed)
	if err != nil {
		return err
	}
	settings, err := prf.settings(*seed)
	if err != nil {
		return err
	}
	log := lf.logger(nil)
	log.Info("study throughput", "problem", setup.Problem.Name)
	phase := newProgress(os.Stderr, log, "throughput", 0)
	defer phase.finish()
	intr := watchInterrupts(os.Stderr)
	defer intr.stop()
	ctx := intr.ctx
	defer intr.settle(&err)

	opt := model.Options{MaxMemory: *maxMem}
	local, err := coordinator.NewLocal(setup, coll, settings, *workers, opt)
	if err != nil {
		return inputError{err}
	}
	plan := local.Plan()
	lay := plan.Layout()
	ev, err := setup.NewEvaluator(coll, opt)
	if err != nil {
		return err
	}
	r0 := make([]float64, lay.N)
	ev.Residual(theta, r0)

	if *probes == 0 {
		phase.note("sizing a round by a warm-up in process")
		if *probes, err = sizeRound(ctx, local, plan, theta, coll, r0, *workers); err != nil {
			return err
		}
		log.Info("throughput: round size from a warm-up", "probes", *probes)
	}
	rep := throughputReport{
		Problem: setup.Problem.Name, N: lay.N, P: lay.P, Probes: *probes, Rounds: *rounds, BLAS: model.BLASBackend(),
	}
	m := measurer{plan: plan, theta: theta, coll: coll, r0: r0, probes: *probes, rounds: *rounds, log: log, phase: phase}
	if *compare {
		if rep.Local, err = m.run(ctx, local, fmt.Sprintf("local, %d workers", *workers), nil); err != nil {
			return fmt.Errorf("in process: %w", err)
		}
	}
	if bf.useNATS() {
		bs, err := bf.start(ctx, log, os.Stderr, setup, settings, plan.Width(), runID(bf.run, "throughput"), opt)
		if err != nil {
			return err
		}
		defer bs.close()
		if rep.NATS, err = m.run(ctx, bs.backend, bs.desc, bs.backend); err != nil {
			return fmt.Errorf("over NATS: %w", err)
		}
	}
	if rep.Local != nil && rep.NATS != nil {
		r := rep.NATS.ProbesPerSec / rep.Local.ProbesPerSec
		same := slices.EqualFunc(rep.Local.traces, rep.NATS.traces, func(a, b []float64) bool { return slices.Equal(a, b) })
		rep.NATSVsLocal, rep.SameBits = &r, &same
	}
	if *asJSON {
		if err := json.NewEncoder(out).Encode(rep); err != nil {
			return err
		}
	} else {
		printThroughput(out, &rep)
	}
	if rep.SameBits != nil && !*rep.SameBits {
		return fmt.Errorf("the NATS backend's traces differ from the in-process ones for the same seed: report this as a bug")
	}
	return nil
}

// sizeRound times growing batches in process until one takes 0.2 s, and
// returns the probes that take about 2 s.
func sizeRound(ctx context.Context, local *coordinator.Local, plan *sampler.Plan, theta []float64, coll *model.Collocation, r0 []float64, workers int) (int, error) {
	acc := coordinator.NewAccumulator(plan, 0, r0, false)
	w := &coordinator.Work{ID: 1, PointsID: 1, Step: 0, Theta: theta, Points: coll}
	for k := workers; ; k *= 4 {
		acc.Reset(0, r0)
		start := time.Now()
		if err := local.Probes(ctx, w, 0, k, acc.Add); err != nil {
			return 0, fmt.Errorf("warm-up: %w", err)
		}
		el := time.Since(start).Seconds()
		if el >= 0.2 || k >= 1<<20 {
			n := int(math.Ceil(2 * float64(k) / el))
			return min(max(n, workers), 1<<22), nil
		}
	}
}

// measurer runs the same rounds on each backend: round r is step r+1 with
// work id r+1, so both backends draw the same probes.
type measurer struct {
	plan   *sampler.Plan
	theta  []float64
	coll   *model.Collocation
	r0     []float64
	probes int
	rounds int
	log    hclog.Logger
	phase  *progress // the command's progress: which round runs
	acc    *coordinator.Accumulator
}

func (m *measurer) run(ctx context.Context, b coordinator.Backend, desc string, nb *natsbus.Backend) (*backendSpeed, error) {
	if m.acc == nil {
		m.acc = coordinator.NewAccumulator(m.plan, 0, m.r0, false)
	}
	// Warm-up (step 0): samplers fetch a snapshot and build their
	// evaluators; not timed.
	warm := min(m.probes, max(16, m.probes/10))
	w := &coordinator.Work{ID: 1 << 40, PointsID: 1, Step: 0, Theta: m.theta, Points: m.coll}
	m.acc.Reset(0, m.r0)
	m.phase.note(desc + ": warm-up")
	if err := b.Probes(ctx, w, 0, warm, m.acc.Add); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	sp := &backendSpeed{Backend: desc}
	var before natsbus.Stats
	var auditBefore coordinator.Audit
	if nb != nil {
		before, auditBefore = nb.Stats(), nb.Audit()
	}
	for r := range m.rounds {
		step := uint32(r + 1)
		w := &coordinator.Work{ID: uint64(r + 1), PointsID: 1, Step: step, Theta: m.theta, Points: m.coll}
		m.acc.Reset(step, m.r0)
		m.phase.note(fmt.Sprintf("%s: round %d of %d", desc, r+1, m.rounds))
		start := time.Now()
		// As a training step collects them (a forger's results never count).
		if _, err := coordinator.Collect(ctx, b, w, 0, m.probes, m.plan.Width(), m.acc.Add, nil); err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		if m.acc.Applied() != m.probes {
			return nil, fmt.Errorf("round %d: %d of %d probes arrived", r+1, m.acc.Applied(), m.probes)
		}
		sp.Seconds = append(sp.Seconds, time.Since(start).Seconds())
		e := m.acc.Estimate()
		sp.traces = append(sp.traces, append([]float64{e.Trace}, e.BlockTraces...))
		m.log.Info("throughput: round", "backend", desc, "round", r+1, "seconds", sp.Seconds[r])
	}
	sorted := slices.Clone(sp.Seconds)
	slices.Sort(sorted)
	sp.medianSeconds = sorted[len(sorted)/2]
	sp.ProbesPerSec = float64(m.probes) / sp.medianSeconds
	if nb != nil {
		after := nb.Stats()
		coord := after.CoordinatorSeconds - before.CoordinatorSeconds
		comp := after.SamplerSeconds - before.SamplerSeconds
		resent := after.Redispatched - before.Redispatched
		audit := nb.Audit().Since(auditBefore)
		rejected := audit.Total()
		sp.CoordSeconds, sp.SamplerSecs = &coord, &comp
		if comp > 0 {
			pct := 100 * coord / comp
			sp.CoordPercent = &pct
		}
		sp.Resent, sp.Rejected, sp.SamplersSeen = &resent, &rejected, &after.Samplers
		sp.RejectedBy = audit.Rejected
		verifySecs := after.VerifySeconds - before.VerifySeconds
		sp.Verified, sp.Mismatches, sp.Quarantined, sp.VerifySeconds = &audit.Verified, &audit.Mismatches, &audit.Quarantined, &verifySecs
	}
	return sp, nil
}

func printThroughput(out io.Writer, rep *throughputReport) {
	fmt.Fprintf(out, "problem %s: n = %d, p = %d; %d probes per round, %d rounds, BLAS %s\n\n", rep.Problem, rep.N, rep.P, rep.Probes, rep.Rounds, rep.BLAS)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "backend\tmedian round\tprobes/s\tcoordinator (all rounds)\tsamplers' compute (all rounds)\tcoordinator/compute\tre-sent batches\trejected\n")
	for i, sp := range []*backendSpeed{rep.Local, rep.NATS} {
		if sp == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.3f s\t%.4g", []string{"in process", "NATS"}[i], sp.medianSeconds, sp.ProbesPerSec)
		if sp.CoordSeconds != nil {
			pct := "-"
			if sp.CoordPercent != nil {
				pct = fmt.Sprintf("%.2f%%", *sp.CoordPercent)
			}
			fmt.Fprintf(tw, "\t%.3f s\t%.3f s\t%s\t%d\t%d\n", *sp.CoordSeconds, *sp.SamplerSecs, pct, *sp.Resent, *sp.Rejected)
		} else {
			fmt.Fprintf(tw, "\t\t\t\t\t\n")
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
	if rep.Local != nil {
		fmt.Fprintf(out, "in process: %s\n", rep.Local.Backend)
	}
	if rep.NATS != nil {
		fmt.Fprintf(out, "NATS: %s, %d samplers answered discovery\n", rep.NATS.Backend, *rep.NATS.SamplersSeen)
		if *rep.NATS.Verified > 0 || *rep.NATS.Rejected > 0 {
			fmt.Fprintf(out, "checks: %d batches verified in %.3f s, %d wrong, %d samplers quarantined; rejected %v\n",
				*rep.NATS.Verified, *rep.NATS.VerifySeconds, *rep.NATS.Mismatches, *rep.NATS.Quarantined, rep.NATS.RejectedBy)
		}
	}
	if rep.NATSVsLocal != nil {
		same := "yes"
		if !*rep.SameBits {
			same = "NO"
		}
		fmt.Fprintf(out, "NATS / in process: %.0f%% of the probes per second; the same bits: %s\n", 100**rep.NATSVsLocal, same)
	}
}
