package deploy

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// probeSet is a small wave problem and what estimates of it need.
type probeSet struct {
	setup  *model.Setup
	points *model.Collocation
	theta  []float64
	r0     []float64
	plan   *sampler.Plan
	local  *coordinator.Local
}

func newProbeSet(t testing.TB, seed uint64) *probeSet {
	t.Helper()
	setup, err := model.NewSetup(model.Config{Problem: "wave", Layers: []int{2, 16, 16, 1}})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := setup.DrawPoints(3, 0, []int{10, 10, 4, 4, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &probeSet{setup: setup, points: pts, theta: setup.InitTheta(3)}
	if p.local, err = coordinator.NewLocal(setup, pts, sampler.Settings{Seed: seed}, 1, model.Options{}); err != nil {
		t.Fatal(err)
	}
	p.plan = p.local.Plan()
	p.r0 = make([]float64, p.plan.Layout().N)
	ev, _ := setup.NewEvaluator(pts, model.Options{})
	ev.Residual(p.theta, p.r0)
	return p
}

func (p *probeSet) work(step uint32) *coordinator.Work {
	return &coordinator.Work{ID: uint64(step) + 1, PointsID: 1, Step: step, Theta: p.theta, Points: p.points}
}

// estimate runs EstimateAt of step through b: rounds of 8 probes.
func (p *probeSet) estimate(t testing.TB, b coordinator.Backend, step uint32, N int) *coordinator.EstimateResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := coordinator.EstimateAt(ctx, b, p.plan, p.work(step), p.r0, coordinator.EstimateOptions{Probes: N, Batch: 8, Kernel: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// same fails unless two estimates are equal to the bit.
func (p *probeSet) same(t testing.TB, what string, got, want *coordinator.EstimateResult) {
	t.Helper()
	n := p.plan.Layout().N
	ka, kb := make([]float64, n*n), make([]float64, n*n)
	got.Acc.Kernel(ka, false)
	want.Acc.Kernel(kb, false)
	if math.Float64bits(got.Estimate.Trace) != math.Float64bits(want.Estimate.Trace) {
		t.Fatalf("%s: trace %v, fault-free %v", what, got.Estimate.Trace, want.Estimate.Trace)
	}
	for i := range ka {
		if math.Float64bits(ka[i]) != math.Float64bits(kb[i]) {
			t.Fatalf("%s: K̂ differs at %d", what, i)
		}
	}
}

// backend is a NATS backend of p on nc, bounding results by K.
func (p *probeSet) backend(t testing.TB, nc *nats.Conn, opt natsbus.Options) *natsbus.Backend {
	t.Helper()
	opt.Setup, opt.Probe, opt.Width = p.setup, p.plan.Settings, p.plan.Width()
	if opt.Run == "" {
		opt.Run = "test"
	}
	opt.Check = coordinator.NewPlausibility(p.setup, p.plan.Settings, model.Options{})
	b, err := natsbus.New(nc, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// With the deploy configuration and generated keys, two samplers under
// their own identities deliver every result at the first assignment,
// without a permission violation, and the estimate is the in-process one.
func TestEstimateWithDeployConfiguration(t *testing.T) {
	port, rport := freePort(t), freePort(t)
	natsEnv(t, "bus", port, rport, []int{rport})
	dir, c := configDir(t, 2)
	url := startNode(t, filepath.Join(dir, "nats.conf"), nil).ClientURL()
	var v violations
	for i := 1; i <= 2; i++ {
		id := SamplerID(i)
		nc, err := nats.Connect(url, as(t, c.Samplers[id]), nats.ErrorHandler(v.handler))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		w, err := worker.Start(nc, worker.Options{ID: fmt.Sprintf("r%d", i), Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	nc, err := nats.Connect(url, as(t, c.Coordinator), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := newProbeSet(t, 9)
	b := p.backend(t, nc, natsbus.Options{Batch: 2, Subjects: protocol.Subjects{Prefix: protocol.DefaultPrefix}})
	p.same(t, "deploy configuration", p.estimate(t, b, 2, 40), p.estimate(t, p.local, 2, 40))
	if st := b.Stats(); st.Redispatched != 0 || st.Results != 20 || st.Batches != 20 || b.Audit().Total() != 0 {
		t.Errorf("stats %+v: every batch should arrive at the first assignment", st)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.errs) > 0 {
		t.Errorf("permission violations: %v", v.errs)
	}
}
