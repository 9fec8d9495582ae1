package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base is a valid problem file; the cases below break one thing in it.
const base = `name = "heat"
coordinates = ["x", "t"]
outputs = ["u"]

[domain]
x = [0.0, 1.0]
t = [0.0, 1.0]

[parameters]
k = 0.5

[[block]]
name = "pde"
on = "interior"
points = 10
residual = "u_t - k*u_xx"

[[block]]
name = "init"
on = "t = 0"
points = 5
residual = "u - sin(pi*x)"
`

// writeProblem writes text to a problem file in a fresh folder, with extra
// files beside it.
func writeProblem(t *testing.T, text string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, s := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestProblemFileBase(t *testing.T) {
	cfg, err := DefaultConfig(writeProblem(t, base, nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Problem
	if p.Name != "heat" || p.Dim != 2 || len(p.Blocks) != 2 || !reflect2(p.Layers, []int{2, 32, 32, 32, 1}) {
		t.Fatalf("problem %+v", p)
	}
	// u_t − k u_xx is one operator stream ∂t − k∂xx; no gradient stream
	// but x, which the operator's quadratic form needs.
	st := p.Blocks[0].Streams
	if !reflect2(st.Grad, []int{0}) || len(st.Ops) != 1 || !reflect2f(st.Ops[0].B, []float64{0, 1}) || !reflect2f(st.Ops[0].C, []float64{-0.5, 0, 0, 0}) {
		t.Errorf("pde streams %+v", st)
	}
	// --params overrides.
	cfg.Params = map[string]float64{"k": 2}
	s, err = NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Problem.Blocks[0].Streams.Ops[0].C[0]; c != -2 {
		t.Errorf("with k = 2 the operator has C_xx = %v", c)
	}
}

func reflect2(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func reflect2f(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestProblemFileErrors checks the one-line message of every mistake the
// issue lists, and more: each names the file, the block and the position.
func TestProblemFileErrors(t *testing.T) {
	rep := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("base has no %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	cases := []struct {
		name, text string
		params     map[string]float64
		want       []string
	}{
		{"unknown symbol", rep(`"u_t - k*u_xx"`, `"u_t - kk*u_xx"`), nil,
			[]string{"p.toml: block pde: residual at 1:7: unknown symbol \"kk\"; did you mean k?", "parameters k"}},
		{"derivative along a coordinate that does not exist", rep(`"u_t - k*u_xx"`, `"u_t - k*u_yy"`), nil,
			[]string{"block pde: residual at 1:9: u_yy: \"y\" is not a coordinate (coordinates: x, t)"}},
		{"third derivative", rep(`"u_t - k*u_xx"`, `"u_t - k*D(u, x, x, x)"`), nil,
			[]string{"block pde: residual at 1:9: D of order 3: residuals read derivatives up to order 2"}},
		{"face outside the domain", rep(`on = "t = 0"`, `on = "t = 2"`), nil,
			[]string{"block init: on \"t = 2\": t = 2 lies outside the domain, where t is in [0, 1]"}},
		{"residual reading no output", rep(`"u - sin(pi*x)"`, `"x - sin(pi*x)"`), nil,
			[]string{"block init: residual \"x - sin(pi*x)\" reads no output"}},
		{"zero volume", rep(`x = [0.0, 1.0]`, `x = [1.0, 1.0]`), nil,
			[]string{"[domain] x = [1 1]: the domain has zero volume"}},
		{"missing field", rep(`points = 5`, ``), nil,
			[]string{"block init: missing points"}},
		{"missing name", rep(`name = "heat"`, ``), nil, []string{"p.toml: missing name"}},
		{"missing domain coordinate", rep("t = [0.0, 1.0]\n", ""), nil, []string{"[domain]: missing t"}},
		{"NaN parameter", rep(`k = 0.5`, `k = nan`), nil, []string{"[parameters] k = NaN: not finite"}},
		{"NaN override", base, map[string]float64{"k": nan()}, []string{"parameter k = NaN is not finite"}},
		{"unknown override", base, map[string]float64{"q": 1}, []string{`no parameter "q" (it has k)`}},
		{"misspelled key", rep(`points = 5`, `point = 5`), nil,
			[]string{`unknown key "block.point" ([block] takes name, on, points, points_file, residual)`}},
		{"misspelled top key", "cordinates = 1\n" + base, nil, []string{`unknown key "cordinates"`}},
		{"bad TOML", base + "\n[[block]\n", nil, []string{"p.toml: line 25, column 8: expected end of table array name"}},
		{"an equals sign", rep(`"u - sin(pi*x)"`, `"u = sin(pi*x)"`), nil,
			[]string{"block init: residual at 1:3: an expression has no '='"}},
		{"dn in the interior", rep(`"u_t - k*u_xx"`, `"dn(u)"`), nil,
			[]string{"block pde: residual at 1:1: dn(u), the outward normal derivative, needs points on a face of the box or on a hole's boundary: the block's points lie in the interior"}},
		{"unknown place", rep(`on = "interior"`, `on = "inside"`), nil, []string{`block pde: on "inside": want "interior"`}},
		{"unknown hole", rep(`on = "interior"`, `on = "hole h"`), nil, []string{`no hole named "h" (holes: none)`}},
		{"two blocks of a name", rep(`name = "init"`, `name = "pde"`), nil, []string{"block pde: two blocks have this name"}},
		{"layers that do not fit", base + "[network]\nlayers = [3, 10, 1]\n", nil, []string{"[network] layers = [3 10 1]: want the input width 2"}},
		{"activation", base + "[network]\nactivation = \"relu\"\n", nil, []string{"[network] activation"}},
		{"exact reads an output", base + "[solution]\nexact = \"u\"\n", nil, []string{"[solution] exact u: reads the output u"}},
		{"exact count", base + "[solution]\nexact = [\"x\", \"t\"]\n", nil, []string{"[solution] exact: 2 expressions for the 1 outputs"}},
		{"definition order", base + "[definitions]\na = \"b + 1\"\nb = \"x\"\n", nil, []string{"[definitions] a at 1:1: b is defined after a"}},
		{"hole covering the box", base + "[[hole]]\nname = \"h\"\nmin = [-1.0, -1.0]\nmax = [2.0, 2.0]\n", nil, []string{"the holes cover 100% of the box"}},
		{"hole shape", base + "[[hole]]\nname = \"h\"\nradius = 1.0\n", nil, []string{"hole h: center []: want 2 finite coordinates"}},
		{"name shadowing a derivative", rep(`k = 0.5`, `u_x = 0.5`), nil, []string{`parameter "u_x" reads like the derivative u_x`}},
		{"points file missing", rep(`points = 5`, `points_file = "none.csv"`), nil, []string{"block init: points_file: open"}},
		{"identically zero", rep(`"u_t - k*u_xx"`, `"u_xx - u_xx"`), nil, []string{"block pde: residual 1 \"u_xx - u_xx\" does not depend on the outputs once simplified"}},
		{"text too long", base + "#" + strings.Repeat("x", MaxProblemText), nil, []string{"p.toml: larger than 262144 bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeProblem(t, c.text, nil)
			cfg, err := DefaultConfig(path)
			if err == nil && c.params != nil {
				cfg.Params = c.params
				_, err = NewSetup(cfg)
			}
			if err == nil {
				t.Fatalf("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("the message has several lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q\n lacks %q", msg, w)
				}
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

// TestProblemFileCSVErrors checks points and reference files that lack what
// the problem needs.
func TestProblemFileCSVErrors(t *testing.T) {
	pts := strings.Replace(base, `points = 5`, `points_file = "pts.csv"`, 1)
	ref := base + "[solution]\nreference = \"ref.csv\"\n"
	cases := []struct {
		name, text string
		files      map[string]string
		want       string
	}{
		{"points without a column", pts, map[string]string{"pts.csv": "x,s\n0.5,0\n"}, "points_file pts.csv: no column t (the points of block init needs columns x, t; the header has x, s)"},
		{"points not on the face", pts, map[string]string{"pts.csv": "x,t\n0.5,0\n0.5,0.5\n"}, "row 2, point [0.5 0.5], is not on t = 0"},
		{"points outside the box", pts, map[string]string{"pts.csv": "x,t\n1.5,0\n"}, "row 1, point [1.5 0], lies outside the box"},
		{"points not numbers", pts, map[string]string{"pts.csv": "x,t\n0.5,zero\n"}, `line 2, column t: "zero" is not a finite number`},
		{"points count", strings.Replace(pts, `residual = "u - sin`, "points = 3\nresidual = \"u - sin", 1), map[string]string{"pts.csv": "x,t\n0.5,0\n"}, "points = 3, but points_file pts.csv has 1 rows"},
		{"reference without an output", ref, map[string]string{"ref.csv": "x,t,v\n0.5,0.5,1\n"}, "reference ref.csv: no column u"},
		{"reference outside", ref, map[string]string{"ref.csv": "x,t,u\n0.5,3,1\n"}, "row 1 has t = 3, outside the domain"},
		{"reference empty", ref, map[string]string{"ref.csv": "x,t,u\n"}, "no data rows after the header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DefaultConfig(writeProblem(t, c.text, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v\n want %q", err, c.want)
			}
		})
	}
}
