package natsbus

import (
	"os"
	"path/filepath"
	"testing"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/sampler"
)

// A problem from a file reaches samplers that have no file: the snapshot
// carries its text and its points file. With points drawn on the samplers
// from the seed, and with explicit points, the estimate is the in-process
// one to the bit.
func TestFileProblemOverNATS(t *testing.T) {
	dir := t.TempDir()
	text := `name = "burgers-test"
coordinates = ["x", "t"]
outputs = ["u"]
[domain]
x = [-1.0, 1.0]
t = [0.0, 1.0]
[parameters]
nu = 0.0031830988618379067
[network]
layers = [2, 12, 12, 1]
[[block]]
name = "pde"
on = "interior"
points = 12
residual = "u_t + u*u_x - nu*u_xx"
[[block]]
name = "initial"
on = "t = 0"
points_file = "init.csv"
residual = "u + sin(pi*x)"
[[block]]
name = "walls"
on = ["x = -1", "x = 1"]
points = 6
residual = "u"
`
	for name, s := range map[string]string{"p.toml": text, "init.csv": "x,t\n-0.5,0\n0.25,0\n0.75,0\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := model.DefaultConfig(filepath.Join(dir, "p.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	setup, err := model.NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	counts := []int{12, 3, 6}
	pts, err := setup.DrawPoints(3, 2, counts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := setup.NewEvaluator(pts, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{setup: setup, points: pts, theta: setup.InitTheta(3)}
	f.r0 = make([]float64, ev.Layout().N)
	ev.Residual(f.theta, f.r0)
	if f.plan, err = sampler.NewPlan(sampler.Settings{Seed: 5}, ev.Layout()); err != nil {
		t.Fatal(err)
	}
	local, err := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 2, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const N = 23
	want := f.estimate(t, local, N, nil)
	c := newCluster(t)
	c.samplers(2)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 5})
	for _, drawn := range []bool{false, true} {
		w := f.work()
		if drawn {
			w.ID, w.PointSeed, w.Counts = 2, 3, counts
		}
		acc := coordinator.NewAccumulator(f.plan, 2, f.r0, true)
		if err := b.Probes(t.Context(), w, 0, N, func(j int, d []float64) error { return acc.Add(j, d) }); err != nil {
			t.Fatal(err)
		}
		sameBits(t, map[bool]string{false: "explicit points", true: "points drawn by the samplers"}[drawn], acc, want, f.plan.Layout().N)
	}
	if a := b.Audit(); a.Total() != 0 {
		t.Errorf("rejections: %+v", a)
	}
}
