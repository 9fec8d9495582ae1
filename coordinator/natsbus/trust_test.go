package natsbus

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus/attack"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
)

// estimateWith runs EstimateAt (rounds of 8 probes, batches of 2) of f's
// work at step through b.
func (f *fixture) estimateWith(t *testing.T, b coordinator.Backend, step uint32, N int, relErr float64) *coordinator.EstimateResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := f.work()
	w.ID, w.Step = uint64(100+step), step
	res, err := coordinator.EstimateAt(ctx, b, f.plan, w, f.r0, coordinator.EstimateOptions{Probes: N, Batch: 8, Kernel: true, RelError: relErr, MinProbes: 8})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameEstimate(t *testing.T, what string, got, want *coordinator.EstimateResult, n int) {
	t.Helper()
	if got.Stopped != want.Stopped || got.Acc.Applied() != want.Acc.Applied() {
		t.Fatalf("%s: stopped %v after %d probes, want %v after %d", what, got.Stopped, got.Acc.Applied(), want.Stopped, want.Acc.Applied())
	}
	sameBits(t, what, got.Acc, want.Acc, n)
}

// twoFaced answers its first batch honestly (so its identity is trusted),
// then forges with fill.
func twoFaced(t testing.TB, f *fixture, local *coordinator.Local, fill func(res *protocol.Result)) attack.Answer {
	var n atomic.Int64
	h := honest(t, f, local, nil)
	forge := forged(f.plan.Width(), fill)
	return func(r *rogue, wr *protocol.WorkRequest) {
		if n.Add(1) == 1 {
			h(r, wr)
			return
		}
		forge(r, wr)
	}
}

// Issue 21, row 2: a sampler answers honestly, then sends 1e150 under its
// now-trusted identity. At any --verify the values are refused before any
// accumulator (reason "implausible"), the forger is quarantined and loses
// everything it gave the estimate, and the estimate is the honest one to
// the bit.
func TestImplausibleResultsNeverReachTheEstimate(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 31})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	n := f.plan.Layout().N
	for _, verify := range []float64{0, 0.01} {
		c := newCluster(t)
		c.samplers(2)
		r := startRogue(t, c.connectAs(c.rogue(0), "rogue"), "rogue-0", twoFaced(t, f, local, func(res *protocol.Result) {
			for i := range res.D {
				res.D[i] = 1e150
			}
		}))
		b := f.backend(t, c.connect("coordinator"), Options{Batch: 2, Verify: verify, VerifyKey: []byte("k"),
			Check: coordinator.NewPlausibility(f.setup, f.plan.Settings, model.Options{})})
		for step := range uint32(6) {
			want := f.estimateWith(t, local, step, 48, 0)
			got := f.estimateWith(t, b, step, 48, 0)
			sameEstimate(t, fmt.Sprintf("verify %v, step %d", verify, step), got, want, n)
			if got.Audit.Quarantines["rogue-0"] != "" {
				break
			}
		}
		a := b.Audit()
		t.Logf("verify %v: the rogue took %d batches; audit %+v", verify, r.Taken.Load(), a)
		if a.Quarantines["rogue-0"] != "implausible" || a.Rejected["implausible"] == 0 || a.RefusedFrom["rogue-0"] == 0 {
			t.Errorf("verify %v: audit %+v", verify, a)
		}
	}
}

// Issue 21, row 3: a sampler answers honestly first, then forges
// plausible values (each off by ½). --verify 0.5 catches it within the
// estimate, and nothing it gave stays: the estimate, and where the
// relative-error target stops it, are the honest ones to the bit, though
// the estimate commits rounds of probes before the catch.
func TestCaughtForgerLosesEverythingItGave(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 32})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	n := f.plan.Layout().N
	c := newCluster(t)
	c.samplers(1)
	var forgedCount atomic.Int64
	r := startRogue(t, c.connectAs(c.rogue(0), "rogue"), "rogue-0", twoFaced(t, f, local, func(res *protocol.Result) {
		forgedCount.Add(1)
		for i := range res.D {
			res.D[i] = 0.5
		}
	}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 2, Verify: 0.5, VerifyKey: []byte("k"),
		Check: coordinator.NewPlausibility(f.setup, f.plan.Settings, model.Options{})})
	for step, relErr := range []float64{0, 0.3, 0, 0.3} {
		want := f.estimateWith(t, local, uint32(step), 96, relErr)
		got := f.estimateWith(t, b, uint32(step), 96, relErr)
		sameEstimate(t, fmt.Sprintf("step %d", step), got, want, n)
		if b.Audit().Quarantines["rogue-0"] != "" {
			break
		}
	}
	a := b.Audit()
	t.Logf("the rogue took %d batches, forged %d; audit %+v", r.Taken.Load(), forgedCount.Load(), a)
	if forgedCount.Load() == 0 {
		t.Fatal("the rogue never forged: the test proves nothing")
	}
	if a.Quarantines["rogue-0"] != "mismatch" {
		t.Errorf("the forger was not caught: %+v", a)
	}
	if st := b.Stats(); math.IsNaN(st.SamplerSeconds) {
		t.Error(st)
	}
}

// Issue 21 in training: a sampler answers honestly (computing each step's
// probes from the snapshot it fetches), then, in the initial probes or in
// a later step, forges values within the plausibility bound and, in some
// rows, then one beyond it. It works alone until it is caught, and forges
// first only batches --verify does not check (the test knows the key), so
// forged answers are handed on before the catch; honest samplers join
// then. The bound (at any --verify) or a check catches it, everything it
// gave the step is taken back and computed again, and the run ends at the
// fault-free θ, to the bit.
func TestTrainingKeepsNothingOfACaughtForger(t *testing.T) {
	setup, _ := model.NewSetup(model.Config{Problem: "wave", Layers: smallLayers})
	cfg := coordinator.TrainConfig{
		Steps: 4, Mode: coordinator.Estimated, Alpha: 0.2, InitProbes: 24, StepProbes: 12,
		Probe: sampler.Settings{Seed: 4}, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3},
		Resample: true, PointSeed: 9, Counts: smallCounts,
	}
	theta0 := setup.InitTheta(2)
	want := trainTheta(t, setup, cfg, theta0, nil, true)
	width := probeWidth(t, setup, cfg.Probe)
	// A key under which, at f = ½, the batches of steps 0 and 2 (after
	// the first of step 0) hold two unchecked ones before a checked one.
	var key []byte
	for k := 0; key == nil; k++ {
		v, _ := newVerifier(0.5, []byte{byte(k)}, width)
		ok := true
		for _, step := range []int{0, 2} {
			m, first := cfg.StepProbes, 0
			if step == 0 {
				m, first = cfg.InitProbes, 2
			}
			unsure, found := 0, false
			for lo := first; lo < m && !found; lo += 2 {
				if !v.chosen(uint32(step), lo, lo+2) {
					unsure++
				} else if unsure >= 2 {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			key = []byte{byte(k)}
		}
	}
	for _, row := range []struct {
		verify float64
		step   int64
		beyond bool // after two forged batches, one of 1e150
	}{
		{0, 0, true},
		{0, 2, true},
		{0.5, 0, false},
		{0.5, 2, false},
		{0.5, 2, true},
	} {
		name := fmt.Sprintf("verify %v, step %d, beyond the bound %v", row.verify, row.step, row.beyond)
		caught := protocol.ReasonMismatch
		if row.beyond {
			caught = protocol.ReasonImplausible
		}
		ver, _ := newVerifier(max(row.verify, 1e-9), key, width)
		cl := newCluster(t)
		var (
			bp      atomic.Pointer[Backend]
			forged  atomic.Int64
			mu      sync.Mutex
			unsure  int // forged batches --verify does not check
			started bool
		)
		rogue := startRogue(t, cl.connectAs(cl.rogue(0), "rogue"), "rogue-0", attack.Twisted(&attack.Computer{}, func(_ int, wr *protocol.WorkRequest, res *protocol.Result) {
			mu.Lock()
			defer mu.Unlock()
			if wr.Step != row.step {
				return
			}
			if !started && row.step == 0 {
				started = true // its first answer, checked: honest
				return
			}
			// Trusted first (its first answer checked), so that what it
			// forges next is handed on.
			for b := bp.Load(); row.verify > 0 && b != nil && b.Stats().Verified == 0; {
				time.Sleep(time.Millisecond)
			}
			chosen := row.verify > 0 && ver.chosen(uint32(wr.Step), wr.Lo, wr.Hi)
			if chosen && unsure < 2 {
				return
			}
			forged.Add(1)
			for i := range res.D {
				res.D[i] *= 1.01
				if row.beyond && unsure >= 2 {
					res.D[i] = 1e150
				}
			}
			if !chosen && !(row.beyond && unsure >= 2) {
				unsure++
			}
		}))
		b, err := New(cl.connect("coordinator"), Options{Run: "train", Setup: setup, Probe: cfg.Probe, Width: width, Batch: 2,
			Verify: row.verify, VerifyKey: key, Timeout: 5 * time.Second,
			Check: coordinator.NewPlausibility(setup, cfg.Probe, model.Options{})})
		if err != nil {
			t.Fatal(err)
		}
		bp.Store(b)
		// The honest samplers join once the forger is caught.
		joined := make(chan struct{})
		go func() {
			defer close(joined)
			for b.Audit().Quarantines["rogue-0"] == "" {
				select {
				case <-time.After(time.Millisecond):
				case <-rogue.Stopping():
					return
				}
			}
			cl.samplers(2)
		}()
		tr, err := coordinator.NewTrainer(setup, theta0, cfg, b, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range cfg.Steps {
			if _, err := tr.Step(context.Background()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		rogue.Stop()
		<-joined
		a, st := b.Audit(), b.Stats()
		t.Logf("%s: forged %d answers; audit %+v; retracted %d", name, forged.Load(), a, st.Retracted)
		if unsure < 2 || st.Retracted < 4 || a.Quarantines["rogue-0"] != string(caught) {
			t.Errorf("%s: forged %d unchecked batches, retracted %d probes, quarantined %v: not the attack the row is about", name, unsure, st.Retracted, a.Quarantines)
		}
		if b.Held() != 0 {
			t.Errorf("%s: %d probes still counted as held for checks after the run", name, b.Held())
		}
		for i, v := range tr.Theta() {
			if math.Float64bits(v) != math.Float64bits(want[i]) {
				t.Fatalf("%s: θ after %d steps differs from the fault-free run's at %d", name, cfg.Steps, i)
			}
		}
		b.Close()
		cl.close()
	}
}
