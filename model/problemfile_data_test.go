package model

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProblemFileData reads points from a CSV, measures errors against
// reference data, and carries both in the configuration, so that a
// snapshot resolves with neither file on disk.
func TestProblemFileData(t *testing.T) {
	text := strings.Replace(base, `points = 5`, `points_file = "init.csv"`, 1) + "[solution]\nreference = \"ref.csv\"\n"
	// A 3×2 grid of reference values u = x + 10 t.
	ref := "t,x,u,extra\n"
	for _, tt := range []float64{0, 1} {
		for _, x := range []float64{0, 0.5, 1} {
			ref += strings.Join([]string{ftoa(tt), ftoa(x), ftoa(x + 10*tt), "7"}, ",") + "\n"
		}
	}
	path := writeProblem(t, text, map[string]string{"init.csv": "# points at t = 0\nt, x\n0, 0.25\n0, 0.75\n0, 0.5\n", "ref.csv": ref})
	cfg, err := DefaultConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReferenceName != "ref.csv" || len(cfg.Files) != 1 || !strings.HasPrefix(cfg.Files["init.csv"], "# points") {
		t.Fatalf("configuration carries reference %q and files %v", cfg.ReferenceName, cfg.Files)
	}
	// Nothing on disk from here on.
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	s, err := NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Problem
	init := &p.Blocks[1]
	if init.Count != 3 || !init.Fixed {
		t.Errorf("init block: %d points, fixed %v", init.Count, init.Fixed)
	}
	c, err := s.DrawPoints(1, 9, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Blocks[1].X; !reflect2f(got, []float64{0.25, 0, 0.75, 0, 0.5, 0}) {
		t.Errorf("points from the file: %v", got)
	}
	if _, err := s.DrawPoints(1, 0, []int{10, 4}, nil); err == nil || !strings.Contains(err.Error(), "its 3 points are given (points_file), not 4") {
		t.Errorf("a count that differs from the file's: %v", err)
	}
	// Reference: errors at its 6 points; interpolation between them.
	if g := p.ErrorPoints(41); len(g) != 6*2 {
		t.Errorf("error points: %d coordinates, want the reference's 12", len(g))
	}
	u := make([]float64, 1)
	p.Exact([]float64{0.5, 1}, u)
	if u[0] != 10.5 {
		t.Errorf("reference at a point: %v", u[0])
	}
	p.Exact([]float64{0.25, 0.5}, u)
	if math.Abs(u[0]-5.25) > 1e-15 {
		t.Errorf("reference between points: %v, want 5.25", u[0])
	}
	p.Exact([]float64{0.25, 1.5}, u)
	if !math.IsNaN(u[0]) {
		t.Errorf("reference outside its grid: %v, want NaN", u[0])
	}
	if !strings.Contains(p.Truth, "ref.csv") {
		t.Errorf("truth %q", p.Truth)
	}
	// A snapshot holds the problem: it resolves from JSON alone.
	snapPath := filepath.Join(t.TempDir(), "snap.json")
	theta := s.InitTheta(3)
	if err := NewSnapshot(s, theta, c).Write(snapPath); err != nil {
		t.Fatal(err)
	}
	snap, err := ReadSnapshot(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	s2, c2, th2, err := snap.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if s2.Problem.Name != "heat" || c2.Counts()[1] != 3 || len(th2) != len(theta) || s2.Problem.Reference == nil {
		t.Errorf("snapshot resolves to %s with counts %v", s2.Problem.Name, c2.Counts())
	}
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// TestErrorPointsSkipHoles checks that errors are measured only where the
// domain is.
func TestErrorPointsSkipHoles(t *testing.T) {
	text := base + "[[hole]]\nname = \"h\"\nmin = [0.0, 0.0]\nmax = [0.5, 0.5]\n"
	cfg, err := DefaultConfig(writeProblem(t, text, nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := s.Problem.ErrorPoints(11)
	// 121 grid points, of which those with 0 < x, t < 0.5 (4×4) are in the hole.
	if len(g) != 2*(121-16) {
		t.Errorf("%d error points, want %d", len(g)/2, 121-16)
	}
	for i := 0; i < len(g); i += 2 {
		if g[i] > 0 && g[i] < 0.5 && g[i+1] > 0 && g[i+1] < 0.5 {
			t.Errorf("error point %v in the hole", g[i:i+2])
		}
	}
}

// FuzzProblemFile feeds arbitrary text to the problem reader: it must
// never panic, and every error must be one line.
func FuzzProblemFile(f *testing.F) {
	f.Add(base)
	f.Add(formsProblem)
	f.Add(strings.Replace(base, "u_t - k*u_xx", "u_t - k*D(u, x, x, x)", 1))
	f.Add("name = \"a\"\ncoordinates = [\"x\"]\noutputs = [\"u\"]\n[domain]\nx = [0, 1]\n[[block]]\nname = \"b\"\non = [\"x = 0\", \"boundary\"]\npoints = 3\nresidual = [\"dn(u)\", \"u^2\"]\n")
	f.Add("[[[[[[[[")
	f.Fuzz(func(t *testing.T, text string) {
		cfg := Config{Problem: "fuzz", Text: text}
		_, err := NewSetup(cfg)
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("a message of several lines: %q", err)
		}
	})
}
