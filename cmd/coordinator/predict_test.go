package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ntkbus/model"
)

// predict writes the network's outputs and residuals at a CSV's points, as
// the model computes them, for a problem from a file with no file left.
func TestPredict(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "s.json")
	if code, out, e := runCmd(t, "snapshot", "--problem", "../../problems/qtensor.toml", "--layers", "3,8,2", "--seed", "2", "--out", snap); code != 0 {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, e)
	}
	pts := filepath.Join(dir, "pts.csv")
	if err := os.WriteFile(pts, []byte("t,x,y,note\n0,0.5,-1,1\n1.5,2,0.25,2\n0.3,-1.2,1.9,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "out.csv")
	if code, out, e := runCmd(t, "predict", "--snapshot", snap, "--points", pts, "--out", outPath, "--residuals", "--log-level", "error"); code != 0 {
		t.Fatalf("predict: exit %d\n%s%s", code, out, e)
	}
	table, err := model.ReadTable(outPath)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x", "y", "t", "q1", "q2", "residual_pde_1", "residual_pde_2", "residual_init_1", "residual_init_2",
		"residual_left_1", "residual_left_2", "residual_right_1", "residual_right_2", "residual_bottom_1", "residual_bottom_2", "residual_top_1", "residual_top_2"}
	if strings.Join(table.Header, ",") != strings.Join(want, ",") || table.Rows() != 3 {
		t.Fatalf("columns %v, %d rows", table.Header, table.Rows())
	}
	// The same from the model.
	s, err := model.ReadSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	setup, _, theta, err := s.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{0.5, -1, 0, 2, 0.25, 1.5, -1.2, 1.9, 0.3}
	u := make([]float64, 6)
	setup.Predict(theta, x, u)
	c := &model.Collocation{}
	for b, def := range setup.Problem.Blocks {
		c.Blocks = append(c.Blocks, model.BlockPoints{Name: def.Name, Dim: 3, X: x, Y: setup.Problem.Targets(b, x)})
	}
	ev, err := setup.NewEvaluator(c, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := make([]float64, ev.Layout().N)
	ev.Residual(theta, r)
	w := len(table.Header)
	for i := 0; i < 3; i++ {
		row := table.Data[i*w : (i+1)*w]
		if !reflect2f(row[:3], x[3*i:3*i+3]) || !reflect2f(row[3:5], u[2*i:2*i+2]) {
			t.Errorf("row %d: %v, want point %v and outputs %v", i, row[:5], x[3*i:3*i+3], u[2*i:2*i+2])
		}
		k := 5
		for _, sp := range ev.Layout().Blocks {
			for comp := 0; comp < 2; comp++ {
				if got, wv := row[k], r[sp.Off+2*i+comp]; math.Float64bits(got) != math.Float64bits(wv) {
					t.Errorf("row %d %s: %v, want %v", i, table.Header[k], got, wv)
				}
				k++
			}
		}
	}
	// To standard output, without residuals.
	code, out, e := runCmd(t, "predict", "--snapshot", snap, "--points", pts, "--log-level", "error")
	if code != 0 {
		t.Fatalf("predict to stdout: exit %d\n%s", code, e)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || lines[0] != "x,y,t,q1,q2" || !strings.HasPrefix(lines[1], "0.5,-1,0,"+strconv.FormatFloat(u[0], 'g', -1, 64)) {
		t.Errorf("stdout: %q", out)
	}
	// Bad input.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("x,y\n1,2\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"predict", "--snapshot", snap, "--points", bad}, "no column t (problem qtensor needs columns x, y, t; the header has x, y)"},
		{[]string{"predict", "--snapshot", snap}, "--snapshot and --points are required"},
		{[]string{"predict", "--snapshot", pts, "--points", pts}, "not valid JSON"},
	} {
		code, _, e := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(e, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", c.args, code, e, c.want)
		}
	}
}

func reflect2f(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}
