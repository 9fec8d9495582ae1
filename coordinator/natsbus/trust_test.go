package natsbus

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus/attack"
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
