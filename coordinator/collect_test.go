package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/model"
)

// liar is a backend whose results of one step come partly from a forger:
// in its first call of that step's Work, probes [bad, bad+k) are forged
// (each value off by ½) under the identity "forger", the others come from
// "honest-1"; after that call it learns the forger was caught and takes
// back everything "forger" gave, as the NATS backend does. Later calls
// are honest. caught, when set, is called as it retracts.
type liar struct {
	*Local
	step   uint32
	bad, k int
	calls  map[uint64]int
	cur    string
	gave   [][2]int // the forger's ranges not yet taken back
	told   bool
	caught func()
}

func (l *liar) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	if l.calls == nil {
		l.calls = map[uint64]int{}
	}
	l.calls[w.ID]++
	lies := w.Step == l.step && l.calls[w.ID] == 1
	return l.Local.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
		l.cur = "honest-1"
		if lies && j >= l.bad && j < l.bad+l.k {
			d = append([]float64(nil), d...)
			for i := range d {
				d[i] += 0.5
			}
			l.cur = "forger"
			l.gave = append(l.gave, [2]int{j, j + 1})
		}
		defer func() { l.cur = "" }()
		return emit(j, d)
	})
}

func (l *liar) Sender() string { return l.cur }

func (l *liar) Retracted(w *Work) []Retraction {
	if w.Step != l.step || l.told || len(l.gave) == 0 {
		return nil
	}
	l.told = true
	if l.caught != nil {
		l.caught()
	}
	r := []Retraction{{Identity: "forger", Reason: "mismatch", Ranges: l.gave}}
	l.gave = nil
	return r
}

// keptOut is a backend that records the identities a resumed run keeps
// out.
type keptOut struct {
	Backend
	ids map[string]string
}

func (k *keptOut) Quarantine(id, reason string) {
	if k.ids == nil {
		k.ids = map[string]string{}
	}
	k.ids[id] = reason
}

// A training run whose samplers include a forger caught at the end of a
// step (the initial probes, or a later step) keeps nothing it gave: every
// step, and the final θ, are the honest run's bits.
func TestTrainingDropsWhatACaughtForgerGave(t *testing.T) {
	s := smallWave(t)
	cfg := estimateConfig(4)
	cfg.StepProbes = 12
	theta0 := s.InitTheta(5)
	train := func(b Backend) []*StepRecord {
		tr, err := NewTrainer(s, theta0, cfg, b, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var recs []*StepRecord
		for range cfg.Steps {
			rec, err := tr.Step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c := *rec
			c.Lambda = append([]float64(nil), rec.Lambda...)
			recs = append(recs, &c)
		}
		recs = append(recs, &StepRecord{Lambda: append([]float64(nil), tr.Theta()...)})
		return recs
	}
	pts, _ := s.DrawPoints(cfg.PointSeed, 0, cfg.Counts, nil)
	local, err := NewLocal(s, pts, cfg.Probe, 2, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := train(local)
	for _, step := range []uint32{0, 2} {
		l := &liar{Local: local, step: step, bad: 3, k: 5}
		got := train(l)
		if !l.told {
			t.Fatalf("step %d: nothing was taken back: the test proves nothing", step)
		}
		for i := range got {
			for b := range got[i].Lambda {
				if math.Float64bits(got[i].Lambda[b]) != math.Float64bits(want[i].Lambda[b]) {
					t.Fatalf("forger caught at step %d: record %d differs from the honest run's (%v, want %v)", step, i, got[i].Lambda, want[i].Lambda)
				}
			}
			if i < cfg.Steps && math.Float64bits(got[i].Loss) != math.Float64bits(want[i].Loss) {
				t.Fatalf("forger caught at step %d: the loss of step %d differs", step, i)
			}
		}
	}
}

// A run stopped right after a forger was caught in its step (kill -9 or an
// error) has the retraction in its probe log: the resume serves nothing
// the forger gave, keeps it out, and ends as the honest run to the bit.
func TestResumeNeverServesARetractedSender(t *testing.T) {
	s := smallWave(t)
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: estimateConfig(4)}
	cfg.Train.StepProbes = 12
	root := t.TempDir()
	full, stopped := filepath.Join(root, "full"), filepath.Join(root, "stopped")
	r0, err := NewRun(full, cfg, localFor(t, s, cfg, 2), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r0.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Caught in step 2: the run stops as it asks for the forger's probes
	// again, after the retraction is in the log.
	l := &liar{Local: localFor(t, s, cfg, 2).Backend.(*Local), step: 2, bad: 4, k: 6, caught: cancel}
	r, err := NewRun(stopped, cfg, l, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the run stopped with %v", err)
	}
	data, err := os.ReadFile(filepath.Join(stopped, probesFile))
	if err != nil || !bytes.Contains(data, []byte("forger")) || !bytes.Contains(data, []byte("mismatch")) {
		t.Fatalf("the probe log holds no retraction of the forger (%v)", err)
	}
	ld, err := loadRun(stopped)
	if err != nil {
		t.Fatal(err)
	}
	for j, kp := range ld.probes.kept[2] {
		if kp.from == "forger" {
			t.Errorf("probe %d of step 2, the forger's, is served on resume", j)
		}
	}
	if len(ld.probes.kept[2]) == 0 || ld.probes.retracted["forger"] != "mismatch" {
		t.Fatalf("the log keeps %d probes of step 2, retracted %v", len(ld.probes.kept[2]), ld.probes.retracted)
	}
	back := &keptOut{Backend: localFor(t, s, cfg, 1)}
	resumeSameRun(t, stopped, back, RunOptions{}, readCSV(t, filepath.Join(full, csvFile)), r0.Trainer.Theta())
	if back.ids["forger"] != "mismatch" {
		t.Errorf("the resumed run keeps out %v, not the forger", back.ids)
	}
}

// The identities a checkpoint's audit names come back bounded: more than
// an audit keeps, a name no server could vouch for, or a negative count is
// a one-line error that names the file (with a valid checksum: written so).
func TestCheckpointAuditIdentitiesAreBounded(t *testing.T) {
	dir, _ := checkpointRun(t)
	path := filepath.Join(dir, checkpointFile)
	good := stateOf(t, path)
	many := map[string]string{}
	for i := range MaxAuditIdentities + 1 {
		many[fmt.Sprintf("s%d", i)] = "mismatch"
	}
	for _, tc := range []struct {
		name  string
		audit Audit
	}{
		{"too many quarantined", Audit{Quarantined: int64(len(many)), Quarantines: many}},
		{"a long identity", Audit{Quarantined: 1, Quarantines: map[string]string{strings.Repeat("a", 65): "mismatch"}}},
		{"an identity with a dot", Audit{Quarantined: 1, Quarantines: map[string]string{"a.b": "mismatch"}}},
		{"a long reason", Audit{Quarantined: 1, Quarantines: map[string]string{"a": strings.Repeat("x", 65)}}},
		{"names beyond the count", Audit{Quarantined: 0, Quarantines: map[string]string{"a": "mismatch"}}},
		{"a negative refusal count", Audit{RefusedFrom: map[string]int64{"a": -1}}},
		{"too many refused", Audit{RefusedFrom: func() map[string]int64 {
			m := map[string]int64{}
			for id := range many {
				m[id] = 1
			}
			return m
		}()}},
	} {
		ck := *good
		ck.Audit = tc.audit
		writeState(t, path, &ck)
		_, err := ReadRun(dir)
		if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "audit") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	ck := *good
	ck.Audit = Audit{Quarantined: 2, Quarantines: map[string]string{"sampler-3": "mismatch", "join": "implausible"}, RefusedFrom: map[string]int64{"sampler-3": 4}}
	writeState(t, path, &ck)
	if _, err := ReadRun(dir); err != nil {
		t.Errorf("a valid audit: %v", err)
	}
}

// A probe log of version 1 (results without a sender) is read, and written
// again as version 2 with its results when the run resumes.
func TestProbeLogVersion1IsRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, probesFile)
	lim := probeLimits{steps: 3, init: 10, each: 4, width: 3}
	// Version 1, written as that version did.
	head := probeLogHeader(1, "fp", 3)
	data := []byte(head)
	sum := sha256.Sum256([]byte(head))
	for j := range 4 {
		rec := make([]byte, 12+24)
		binary.LittleEndian.PutUint32(rec, 0)
		binary.LittleEndian.PutUint32(rec[4:], uint32(j))
		binary.LittleEndian.PutUint32(rec[8:], 3)
		for i := range 3 {
			binary.LittleEndian.PutUint64(rec[12+8*i:], math.Float64bits(float64(10*j+i)))
		}
		h := sha256.New()
		h.Write(sum[:])
		h.Write(rec)
		h.Sum(sum[:0])
		data = append(append(data, rec...), sum[:]...)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pl, err := readProbeLog(path, "fp", 0, lim)
	if err != nil || pl.read != 4 || pl.kept[0][3].d[2] != 32 {
		t.Fatalf("version 1: %d read, %v", pl.read, err)
	}
	if err := pl.open(); err != nil {
		t.Fatal(err)
	}
	pl.Close()
	again, err := readProbeLog(path, "fp", 0, lim)
	if err != nil || again.version != probeLogVersion || again.read != 4 || again.kept[0][2].d[1] != 21 {
		t.Fatalf("written again: version %d, %d read, %v", again.version, again.read, err)
	}
}

// catcher is an honest backend that, in its first call of step, learns
// that "forger" (whose results only a probe log holds: an earlier
// session's) was caught, and says so at once (Notifier); it emitted
// nothing of the forger's, so its Retracted is empty.
type catcher struct {
	*Local
	step   uint32
	notify func(id, reason string)
	told   bool
	log    string // the probe log, which holds the retraction once notify returns
	// recorded: it did
	recorded bool
}

func (c *catcher) NotifyRetraction(f func(id, reason string)) { c.notify = f }

func (c *catcher) Retracted(*Work) []Retraction { return nil }

func (c *catcher) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	if w.Step == c.step && !c.told {
		c.told = true
		c.notify("forger", "implausible")
		data, _ := os.ReadFile(c.log)
		c.recorded = bytes.Contains(data, []byte("forger\x0bimplausible"))
	}
	return c.Local.Probes(ctx, w, lo, hi, emit)
}

// A session that logged a forger's results and stopped before it was
// caught is resumed; the resumed session catches the forger: what the log
// served of it is taken back and computed again, the retraction is in the
// log at once, and the run ends as the honest one to the bit.
func TestCaughtAfterResumeLosesWhatTheLogServed(t *testing.T) {
	s := smallWave(t)
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: estimateConfig(4)}
	cfg.Train.StepProbes = 12
	root := t.TempDir()
	full, stopped := filepath.Join(root, "full"), filepath.Join(root, "stopped")
	r0, err := NewRun(full, cfg, localFor(t, s, cfg, 2), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r0.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	local := localFor(t, s, cfg, 1).Backend.(*Local)
	l := &liar{Local: local, step: 2, bad: 0, k: 5, told: true}
	// Stopped once the forger's five results of step 2 are in the log.
	r, err := NewRun(stopped, cfg, &stopAfter{liar: l, n: 5, stop: cancel}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the run stopped with %v", err)
	}
	ld, err := loadRun(stopped)
	if err != nil {
		t.Fatal(err)
	}
	forged := 0
	for _, kp := range ld.probes.kept[2] {
		if kp.from == "forger" {
			forged++
		}
	}
	if forged == 0 {
		t.Fatal("the log holds none of the forger's results: the test proves nothing")
	}
	c := &catcher{Local: local, step: 2, log: filepath.Join(stopped, probesFile)}
	resumeSameRun(t, stopped, c, RunOptions{}, readCSV(t, filepath.Join(full, csvFile)), r0.Trainer.Theta())
	if !c.told {
		t.Fatal("the forger was never caught")
	}
	if !c.recorded {
		t.Error("the retraction was not in the probe log as soon as the forger was caught")
	}
}

// stopAfter is a liar that cancels the run once it has emitted n forged
// results (they are logged before it returns).
type stopAfter struct {
	*liar
	n    int
	stop func()
}

func (s *stopAfter) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	return s.liar.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
		err := emit(j, d)
		if len(s.gave) >= s.n {
			s.stop()
		}
		return err
	})
}

// holding is a backend that says, while it emits, that it holds 3 more
// probes for checks.
type holding struct{ *Local }

func (h holding) Held() int { return 3 }

// The initial probes' progress reports the probes in hand and those a
// backend holds for its checks, through a run's probe log too.
func TestInitialProgressShowsHeldProbes(t *testing.T) {
	s := smallWave(t)
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: estimateConfig(1)}
	var done, held []int
	r, err := NewRun(filepath.Join(t.TempDir(), "run"), cfg, holding{localFor(t, s, cfg, 1).Backend.(*Local)}, RunOptions{ProbeProgress: func(d, h, total int) {
		done, held = append(done, d), append(held, h)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(done) != cfg.Train.InitProbes || done[len(done)-1] != cfg.Train.InitProbes || held[0] != 3 {
		t.Errorf("progress %v, held %v", done, held)
	}
}
