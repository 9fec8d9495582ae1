package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	for _, name := range []string{"quadratic", "poisson1d", "wave", "qtensor"} {
		cfg, _ := DefaultConfig(name)
		if name == "wave" || name == "qtensor" {
			cfg.Layers = []int{cfg.Layers[0], 7, 5, cfg.Layers[len(cfg.Layers)-1]}
		}
		s, err := NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		theta := s.InitTheta(3)
		theta[0] = 0.1 + 1e-17 // awkward decimals must survive
		c, _ := s.DrawPoints(3, 0, nil, nil)
		path := filepath.Join(t.TempDir(), name+".json")
		if err := NewSnapshot(s, theta, c).Write(path); err != nil {
			t.Fatal(err)
		}
		snap, err := ReadSnapshot(path)
		if err != nil {
			t.Fatal(err)
		}
		s2, c2, theta2, err := snap.Resolve()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s2.NumParams() != s.NumParams() {
			t.Fatalf("%s: p changed", name)
		}
		for i := range theta {
			if math.Float64bits(theta[i]) != math.Float64bits(theta2[i]) {
				t.Fatalf("%s: theta[%d] %v read back as %v", name, i, theta[i], theta2[i])
			}
		}
		for b := range c.Blocks {
			for i := range c.Blocks[b].X {
				if c.Blocks[b].X[i] != c2.Blocks[b].X[i] {
					t.Fatalf("%s: points changed", name)
				}
			}
			for i := range c.Blocks[b].Y {
				if c.Blocks[b].Y[i] != c2.Blocks[b].Y[i] {
					t.Fatalf("%s: targets changed", name)
				}
			}
		}
	}
}

func TestSnapshotErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ json, want string }{
		{`{"problem": "heat", "theta": [], "blocks": []}`, `unknown problem "heat"`},
		{`{"problem": "poisson1d", "layers": [1,2,1], "theta": [1,2,3], "blocks": []}`, "theta has 3 values, layers [1 2 1] need 7"},
		{`{"problem": "poisson1d", "layers": [1,1,1], "theta": [1,1,1,1], "blocks": [{"name":"pde","points":[[0.5]]},{"name":"left","points":[[0, 1]]},{"name":"right","points":[[1]]}]}`, "block left: point 0 has 2 coordinates"},
		{`{"problem": "poisson1d", "layers": [1,1,1], "theta": [1,1,1,1], "blocks": [{"name":"pde","points":[[0.5]]},{"name":"right","points":[[1]]},{"name":"left","points":[[0]]}]}`, `block 1 is "right", want "left"`},
		{`{"problem": "poisson1d", "layers": [1,1,1], "theta": [1,NaN,1,1], "blocks": []}`, "every number must be finite"},
		{`{"problem": "poisson1d", "thetas": []}`, `unknown field "thetas"`},
		{`{"problem": "quadratic", "theta": [1,1,1], "blocks": [{"name":"data","points":[[0],[1]],"targets":[1]}]}`, "1 targets for 2 points"},
		{`{"problem": "quadratic", "theta": [1,1,1], "blocks": [{"name":"data","points":[[0]]}]} x`, "trailing data"},
		{`{"problem": "wave",`, "not valid"},
	} {
		path := filepath.Join(dir, "s.json")
		os.WriteFile(path, []byte(tc.json), 0o644)
		snap, err := ReadSnapshot(path)
		if err == nil {
			_, _, _, err = snap.Resolve()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("snapshot %s: error %v, want it to contain %q", tc.json, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

// FuzzSnapshot: no snapshot file, however malformed, makes parsing,
// resolving or pricing it panic; what resolves is a consistent setup.
func FuzzSnapshot(f *testing.F) {
	for _, name := range []string{"quadratic", "poisson1d", "wave"} {
		cfg, _ := DefaultConfig(name)
		if name == "wave" {
			cfg.Layers = []int{2, 3, 1}
		}
		s, _ := NewSetup(cfg)
		c, _ := s.DrawPoints(1, 0, []int{2, 1, 1, 1, 1}[:len(s.Problem.Blocks)], nil)
		data, _ := json.Marshal(NewSnapshot(s, s.InitTheta(1), c))
		f.Add(data)
	}
	f.Add([]byte(`{"problem":"wave","layers":[2,4611686018427387904,1],"theta":[1],"blocks":[]}`))
	f.Add([]byte(`{"problem":"quadratic","theta":[1e200,1,1],"blocks":[{"name":"data","points":[[0.5]]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := ParseSnapshot(data)
		if err != nil {
			return
		}
		setup, c, theta, err := snap.Resolve()
		if err != nil {
			return
		}
		if len(theta) != setup.NumParams() || len(c.Blocks) != len(setup.Problem.Blocks) {
			t.Fatalf("resolved θ has %d values for p = %d, %d blocks for %d", len(theta), setup.NumParams(), len(c.Blocks), len(setup.Problem.Blocks))
		}
		if err := setup.CheckMemory(c.Counts(), Memory{Evaluators: 1, NTK: true}, 64<<20); err != nil {
			return
		}
		ev, err := setup.NewEvaluator(c, Options{MaxMemory: 64 << 20})
		if err != nil {
			return
		}
		r := make([]float64, ev.Layout().N)
		ev.Forward(theta, r)
	})
}
