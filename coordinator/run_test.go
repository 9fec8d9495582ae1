package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ntkbus/coordinator/optim"
	"ntkbus/model"
)

// countingBackend counts the probes of step 0 that its backend computes.
type countingBackend struct {
	Backend
	step0 int
}

func (c *countingBackend) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	return c.Backend.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
		if w.Step == 0 {
			c.step0++
		}
		return emit(j, d)
	})
}

func localFor(t testing.TB, s *model.Setup, cfg RunConfig, workers int) *countingBackend {
	t.Helper()
	pts, _ := s.DrawPoints(cfg.Train.PointSeed, 0, cfg.Train.Counts, nil)
	l, err := NewLocal(s, pts, cfg.Train.Probe, workers, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &countingBackend{Backend: l}
}

// A run interrupted during its initial probes keeps those that arrived in
// its checkpoint; the resume computes only the others and ends as the run
// that never stopped, to the bit.
func TestInterruptedInitialProbesAreKept(t *testing.T) {
	s := smallWave(t)
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: estimateConfig(4)}
	root := t.TempDir()
	full := filepath.Join(root, "full")
	r, err := NewRun(full, cfg, localFor(t, s, cfg, 2), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := readCSV(t, filepath.Join(full, csvFile))

	dir := filepath.Join(root, "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	var seen int
	r, err = NewRun(dir, cfg, localFor(t, s, cfg, 2), RunOptions{ProbeProgress: func(done, _, total int) {
		seen = done
		if done == 15 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); err == nil || r.Trainer.Next() != 0 {
		t.Fatalf("interrupted run: %v at step %d", err, r.Trainer.Next())
	}
	if seen < 15 || seen == cfg.Train.InitProbes {
		t.Fatalf("%d initial probes arrived before the interruption took effect", seen)
	}
	again := localFor(t, s, cfg, 2)
	r, err = ResumeRun(dir, again, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again.step0 != cfg.Train.InitProbes-seen {
		t.Errorf("the resume computed %d initial probes; %d of %d were in the checkpoint", again.step0, seen, cfg.Train.InitProbes)
	}
	got := readCSV(t, filepath.Join(dir, csvFile))
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("row %d differs from the uninterrupted run's", i)
		}
	}
	// The finished run stays finished.
	if _, err := ResumeRun(dir, again, RunOptions{}); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("resume of a finished run: %v", err)
	}
}

// stateOf reads a checkpoint without checking it.
func stateOf(t *testing.T, path string) *checkpointState {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := decodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func writeState(t *testing.T, path string, ck *checkpointState) {
	t.Helper()
	data, err := encodeCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkpointRun makes a run of 6 steps with a kept kernel and the spaced
// rule, checkpointed at step 3, and returns its folder.
func checkpointRun(t testing.TB) (string, RunConfig) {
	s := smallWave(t)
	tc := estimateConfig(6)
	tc.Kernel, tc.Spaced, tc.SpacedGamma = true, true, 0.5
	tc.InitProbes = 8
	cfg := RunConfig{Model: s.Config, Seed: 3, Train: tc}
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := NewRun(dir, cfg, localFor(t, s, cfg, 1), RunOptions{Progress: func(_ *StepRecord, done, _ int) {
		if done == 3 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.Execute(ctx)
	cfg, err = ReadRunConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// Every field of a checkpoint is checked on resume: a crafted or foreign
// one is an error that names what is wrong, never a panic or a run that
// goes on with a wrong state.
func TestCheckpointIsCheckedInFull(t *testing.T) {
	dir, _ := checkpointRun(t)
	path := filepath.Join(dir, checkpointFile)
	good, _ := os.ReadFile(path)
	if st, err := ReadRun(dir); err != nil || st.Step != 3 || st.Finished() {
		t.Fatalf("the run's own checkpoint: %v", err)
	}
	// An unfinished run cannot end at its checkpoint: nothing would write
	// its summary. It can be lengthened, or shortened to a later step.
	if err := ExtendRun(dir, 3); err == nil || !strings.Contains(err.Error(), "cannot be shortened to 3") {
		t.Errorf("a run shortened to its checkpoint: %v", err)
	}
	for _, n := range []int{8, 4, 6} {
		if err := ExtendRun(dir, n); err != nil {
			t.Fatal(err)
		}
		if st, err := ReadRun(dir); err != nil || st.Config.Train.Steps != n {
			t.Fatalf("after ExtendRun(%d): %v, %v", n, st, err)
		}
	}
	for _, tc := range []struct {
		name string
		mut  func(ck *checkpointState)
		want string
	}{
		{"another fingerprint", func(ck *checkpointState) { ck.Fingerprint = "00" }, "written for another configuration"},
		{"another version", func(ck *checkpointState) { ck.Version = 1 }, "format 1"},
		{"step beyond the run", func(ck *checkpointState) { ck.Step = 7 }, "step 7 is outside"},
		{"negative step", func(ck *checkpointState) { ck.Step = -1 }, "outside"},
		{"short θ", func(ck *checkpointState) { ck.Theta = ck.Theta[:10] }, "theta has 10 values"},
		{"NaN in θ", func(ck *checkpointState) { ck.Theta[5] = math.NaN() }, "theta[5] = NaN"},
		{"short weights", func(ck *checkpointState) { ck.Lambda = ck.Lambda[:2] }, "2 weights for 5 blocks"},
		{"negative weight", func(ck *checkpointState) { ck.Lambda[1] = -1 }, "weight 1 is -1"},
		{"short Adam moments", func(ck *checkpointState) { ck.Optimizer.V = ck.Optimizer.V[:3] }, "Adam moments"},
		{"negative second moment", func(ck *checkpointState) { ck.Optimizer.V[0] = -1 }, "negative Adam"},
		{"no moving average", func(ck *checkpointState) { ck.Avg = nil }, "moving average present: false"},
		{"short traces", func(ck *checkpointState) { ck.Avg.T = ck.Avg.T[:1] }, "moving average of 1 traces"},
		{"short covariance", func(ck *checkpointState) { ck.Avg.V = ck.Avg.V[:4] }, "moving average of 5 traces, 4 and 25"},
		{"another α", func(ck *checkpointState) { ck.Avg.Alpha = 0.5 }, "moving-average rate 0.5"},
		{"update count", func(ck *checkpointState) { ck.Avg.Steps = 9 }, "9 updates at step 3"},
		{"short kernel", func(ck *checkpointState) { ck.Avg.Kernel = ck.Avg.Kernel[:7] }, "kernel of 7 values"},
		{"infinite kernel", func(ck *checkpointState) { ck.Avg.Kernel[3] = math.Inf(1) }, "kernel is not finite"},
		{"no spaced rule", func(ck *checkpointState) { ck.Spaced = nil }, "spaced-update state present: false"},
		{"another γ", func(ck *checkpointState) { ck.Spaced.Gamma = 0.9 }, "spaced rule"},
		{"no checksum of train.csv", func(ck *checkpointState) { ck.CSVSum = nil }, "checksum of 0 bytes"},
		{"another train.csv", func(ck *checkpointState) { ck.CSVSum[0] ^= 1 }, "train.csv: its first"},
		{"a longer train.csv", func(ck *checkpointState) { ck.CSVBytes += 1 << 20 }, "train.csv: its first"},
		{"elapsed time", func(ck *checkpointState) { ck.Seconds = math.Inf(1) }, "elapsed time"},
		{"damping state for adam", func(ck *checkpointState) { ck.Optimizer.Mu, ck.Optimizer.Nu = 1, 2 }, "damping state for Adam"},
	} {
		os.WriteFile(path, good, 0o644)
		ck := stateOf(t, path)
		tc.mut(ck)
		writeState(t, path, ck)
		_, err := ReadRun(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line with %q", tc.name, err, tc.want)
		}
		if _, err := ResumeRun(dir, nil, RunOptions{}); err == nil {
			t.Errorf("%s: resumed", tc.name)
		}
	}
	os.WriteFile(path, good, 0o644)
}

// FuzzCheckpoint: no checkpoint file makes reading, restoring or running
// from it panic.
func FuzzCheckpoint(f *testing.F) {
	dir, cfg := checkpointRun(f)
	good, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/3])
	setup, _ := model.NewSetup(cfg.Model)
	fdir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer's bytes are the state under a valid header and
		// checksum, so that they reach the decoder and the checks.
		if body, ok := bytes.CutPrefix(data, good[:bytes.IndexByte(good, '\n')+1]); ok {
			data = body
		}
		sum := sha256.Sum256(data)
		data = append([]byte(fmt.Sprintf("%s %d sha256 %x\n", checkpointMagic, checkpointVersion, sum)), data...)
		path := filepath.Join(fdir, "ck.gob")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c := cfg
		ck, err := readCheckpoint(path, &c, setup)
		if err != nil {
			return
		}
		c.Train.Fused = true
		tr, err := NewTrainer(setup, ck.Theta, c.Train, nil, model.Options{})
		if err != nil {
			return
		}
		if err := tr.restore(ck); err != nil {
			return
		}
		if tr.t < c.Train.Steps {
			tr.Step(context.Background())
		}
	})
}

// Bounds a config or a file cannot get around: more eigenvalues than K
// has, and a CSV whose line count would size an n² matrix it does not hold.
func TestRunInputBounds(t *testing.T) {
	s, err := model.NewSetup(model.Config{Problem: "poisson1d"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := RunConfig{ErrorEvery: 1, Train: TrainConfig{Steps: 1, Mode: ExactWeights, ExactEvery: 1, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3}, PointSeed: 1, Eigenvalues: 1 << 40}}
	if err := cfg.Validate(s); err == nil || !strings.Contains(err.Error(), "eigenvalues of K") {
		t.Errorf("2⁴⁰ eigenvalues: %v", err)
	}
	cfg.Train.Eigenvalues = 2
	if err := cfg.Validate(s); err != nil {
		t.Errorf("2 eigenvalues: %v", err)
	}
	path := filepath.Join(t.TempDir(), "k.csv")
	if err := os.WriteFile(path, []byte(strings.Repeat("0\n", 200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadMatrixCSV(path); err == nil || !strings.Contains(err.Error(), "not a square matrix") {
		t.Errorf("a column of 200,000 zeros: %v", err)
	}
	if err := WriteMatrixCSV(path, []float64{1, 2, 3, 4}, 2); err != nil {
		t.Fatal(err)
	}
	if m, n, err := ReadMatrixCSV(path); err != nil || n != 2 || m[3] != 4 {
		t.Errorf("a 2×2 matrix: %v, %d, %v", m, n, err)
	}
}

// A checkpoint with one bit flipped (in the header and all over the state)
// is refused before any of it
// is used, with one line that names the file; a FIFO or a directory in its
// place is refused without blocking, and a file larger than any checkpoint
// of the run before it is read.
func TestCheckpointDetectsEveryFlippedBit(t *testing.T) {
	dir, _ := checkpointRun(t)
	path := filepath.Join(dir, checkpointFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header := bytes.IndexByte(good, '\n') + 1
	stride := max(1, (len(good)-header)/400)
	for i := 0; i < len(good); i++ {
		// One bit of every byte of the header and of about 400 bytes
		// spread over the state, the last included, cycling through the
		// eight positions.
		if i >= header && (i-header)%stride != 0 && i != len(good)-1 {
			continue
		}
		data := append([]byte(nil), good...)
		data[i] ^= 1 << (i % 8)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRun(dir)
		if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("bit %d of byte %d flipped: %v", i%8, i, err)
		}
	}
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRun(dir); err != nil {
		t.Fatal(err)
	}

	os.Remove(path)
	if err := syscallMkfifo(path); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadRun(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
			t.Errorf("a FIFO as the checkpoint: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO as the checkpoint blocks")
	}
	os.Remove(path)
	if err := os.WriteFile(path, make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRun(dir); err == nil || !strings.Contains(err.Error(), "the most this file may be") {
		t.Errorf("a 64 MiB checkpoint of a small run: %v", err)
	}
}

// The probe log of a run interrupted in step 0: a record cut short (a kill
// during a write) is dropped, and a changed bit anywhere is an error that
// names the file, found before the folder is changed.
func TestProbeLogIsChecked(t *testing.T) {
	s := smallWave(t)
	cfg := RunConfig{Model: s.Config, Seed: 2, Train: estimateConfig(2)}
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := NewRun(dir, cfg, localFor(t, s, cfg, 1), RunOptions{ProbeProgress: func(done, _, total int) {
		if done == 10 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx); err == nil {
		t.Fatal("the interrupted run reported success")
	}
	path := filepath.Join(dir, probesFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadRun(dir)
	if err != nil || st.Probes < 10 {
		t.Fatalf("the log of the interrupted run: %v probes, %v", st, err)
	}
	header := bytes.IndexByte(good, '\n') + 1
	record := (len(good) - header) / st.Probes
	if err := os.WriteFile(path, good[:len(good)-record/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if cut, err := ReadRun(dir); err != nil || cut.Probes != st.Probes-1 {
		t.Errorf("a last record cut short: %v probes (want %d), %v", cut, st.Probes-1, err)
	}
	for _, at := range []int{3, header - 2, header + 5, header + record + 100, len(good) - 1} {
		data := append([]byte(nil), good...)
		data[at] ^= 4
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRun(dir)
		if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
			t.Errorf("byte %d of %d changed: %v", at, len(good), err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
			t.Errorf("byte %d changed: reading the run changed the log", at)
		}
	}
	os.Remove(path)
	if err := syscallMkfifo(path); err == nil {
		if _, err := ReadRun(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO as the probe log: %v", err)
		}
	}
	// Without its log a run resumes, and computes the probes again.
	os.Remove(path)
	if st, err := ReadRun(dir); err != nil || st.Probes != 0 {
		t.Errorf("no log: %v, %v", st, err)
	}
}
