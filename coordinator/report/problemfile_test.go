package report

import (
	"os"
	"path/filepath"
	"testing"

	"ntkbus/model"
)

// The solution figure draws any problem file: several outputs (a row of
// maps each), three coordinates (slices of the third), holes (grey), and
// 1-D problems of several outputs (a line each).
func TestSolutionFiguresOfProblemFiles(t *testing.T) {
	dir := t.TempDir()
	oneD := filepath.Join(dir, "pair.toml")
	text := "name = \"pair\"\ncoordinates = [\"x\"]\noutputs = [\"u\", \"v\"]\n[domain]\nx = [0.0, 1.0]\n[network]\nlayers = [1, 8, 2]\n" +
		"[[block]]\nname = \"pde\"\non = \"interior\"\npoints = 5\nresidual = [\"u_xx + v\", \"v_x - u\"]\n[solution]\nexact = [\"sin(x)\", \"cos(x)\"]\n"
	if err := os.WriteFile(oneD, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"../../problems/heat2d.toml", "../../problems/ns_kovasznay.toml", "../../problems/poisson_holes.toml", "../../problems/burgers1d.toml", oneD} {
		cfg, err := model.DefaultConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Layers) > 2 {
			cfg.Layers = append([]int{cfg.Layers[0], 8}, cfg.Layers[len(cfg.Layers)-1])
		}
		s, err := model.NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.DrawPoints(1, 0, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, s.Problem.Name+".png")
		if err := Solution(path, s, s.InitTheta(1), c); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Errorf("%s: no figure", f)
		}
	}
}
