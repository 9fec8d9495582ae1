package expr

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// env2 is a problem in (x, t) with fields u, v and a parameter nu.
func env2() *Env {
	return &Env{Coords: []string{"x", "t"}, Fields: []string{"u", "v"}, Consts: map[string]float64{"nu": 0.25}}
}

// vals gives every variable a distinct value: coordinates x = 0.3, t = 0.7,
// and fields from their index and derivative.
func vals(v Var) float64 {
	if v.IsCoord() {
		return []float64{0.3, 0.7, -0.4}[v.K]
	}
	return 0.1*float64(v.Field+1) + 0.37*float64(v.Order) + 0.11*float64(v.K+1) + 0.05*float64(v.L+1)
}

func mustParse(t *testing.T, src string, env *Env) *Node {
	t.Helper()
	n, err := Parse(src, env)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return n
}

func TestPrecedenceAndValues(t *testing.T) {
	x, tt := 0.3, 0.7
	cases := []struct {
		src  string
		want float64
	}{
		{"1 + 2*3", 7},
		{"-2^2", -4},
		{"2^3^2", 512},
		{"2**3", 8},
		{"2^-1", 0.5},
		{"8/2/2", 2},
		{"8-2-2", 4},
		{"-(1+2)*3", -9},
		{"2*-3", -6},
		{"+3", 3},
		{"1.5e2 + .5 + 2.", 152.5},
		{"3 − 1", 2}, // a typeset minus sign
		{"pi", math.Pi},
		{"nu*x", 0.25 * x},
		{"sin(x)^2 + cos(x)^2", math.Sin(x)*math.Sin(x) + math.Cos(x)*math.Cos(x)},
		{"exp(log(t)) - sqrt(t^2)", math.Exp(math.Log(tt)) - math.Sqrt(tt*tt)},
		{"tanh(x) + sinh(x) + cosh(x) + tan(x) + abs(-x) + sign(-x)", math.Tanh(x) + math.Sinh(x) + math.Cosh(x) + math.Tan(x) + x - 1},
		{"x^0.5 + x^4 + x^-2 + x^1.5", math.Sqrt(x) + (x*x)*(x*x) + 1/(x*x) + math.Pow(x, 1.5)},
		{"\n  x\n  + t", x + tt},
	}
	for _, c := range cases {
		n := mustParse(t, c.src, env2())
		got := Eval(n, vals)
		if math.Abs(got-c.want) > 1e-15*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%q = %v, want %v", c.src, got, c.want)
		}
		f, err := Compile(n, bindAll)
		if err != nil {
			t.Fatalf("compile %q: %v", c.src, err)
		}
		if cv := f(slotValues()); math.Float64bits(cv) != math.Float64bits(got) {
			t.Errorf("%q compiled = %v, evaluated %v", c.src, cv, got)
		}
	}
}

// bindAll reads coordinates from input a (index K) and field variables from
// input b at the index slotOf gives.
func bindAll(v Var) (Slot, error) {
	if v.IsCoord() {
		return Slot{0, v.K}, nil
	}
	return Slot{1, slotOf(v)}, nil
}

// slotOf numbers the field variables of two fields in two coordinates.
func slotOf(v Var) int {
	per := 1 + 2 + 3 // value, 2 first, 3 second derivatives
	i := 0
	switch v.Order {
	case 1:
		i = 1 + v.K
	case 2:
		i = 3 + v.K + v.L
	}
	return v.Field*per + i
}

func slotValues() (a, b []float64) {
	a = []float64{vals(Coord(0)), vals(Coord(1))}
	b = make([]float64, 12)
	for f := 0; f < 2; f++ {
		b[slotOf(Value(f))] = vals(Value(f))
		for k := 0; k < 2; k++ {
			b[slotOf(First(f, k))] = vals(First(f, k))
			for l := k; l < 2; l++ {
				b[slotOf(Second(f, k, l))] = vals(Second(f, k, l))
			}
		}
	}
	return a, b
}

func TestDerivativeNames(t *testing.T) {
	e := env2()
	cases := map[string]Var{
		"u":          Value(0),
		"v":          Value(1),
		"x":          Coord(0),
		"u_x":        First(0, 0),
		"v_t":        First(1, 1),
		"u_xx":       Second(0, 0, 0),
		"u_xt":       Second(0, 0, 1),
		"u_tx":       Second(0, 0, 1),
		"D(u, t)":    First(0, 1),
		"D(v, t, x)": Second(1, 0, 1),
	}
	for src, want := range cases {
		n := mustParse(t, src, e)
		if n.Kind != Load || n.Var != want {
			t.Errorf("%q = %+v, want %+v", src, n, want)
		}
	}
	// A field whose name has '_' and a coordinate of several letters.
	e = &Env{Coords: []string{"x", "rho"}, Fields: []string{"u_1"}}
	if n := mustParse(t, "u_1_x", e); n.Var != First(0, 0) {
		t.Errorf("u_1_x = %+v", n.Var)
	}
	if n := mustParse(t, "D(u_1, rho, x)", e); n.Var != Second(0, 0, 1) {
		t.Errorf("D(u_1, rho, x) = %+v", n.Var)
	}
	if got := Second(0, 0, 1).Name(e.Coords, e.Fields); got != "D(u_1, x, rho)" {
		t.Errorf("name %q", got)
	}
	if got := Second(0, 1, 1).Name([]string{"x", "t"}, []string{"u"}); got != "u_tt" {
		t.Errorf("name %q", got)
	}
}

func TestConstantsFold(t *testing.T) {
	n := mustParse(t, "2*pi^2 + nu/4", env2())
	if c, ok := n.IsConst(); !ok || c != 2*(math.Pi*math.Pi)+0.25/4 {
		t.Fatalf("2*pi^2 + nu/4 = %v (%v), want a folded number", c, ok)
	}
	// nu*u_xx: the coefficient is a number, the derivative along u_xx is it.
	n = mustParse(t, "u_t + u*u_x - nu*u_xx", env2())
	d := Diff(n, Second(0, 0, 0))
	if c, ok := d.IsConst(); !ok || c != -0.25 {
		t.Fatalf("∂/∂u_xx = %s, want -0.25", Format(d, env2().Coords, env2().Fields))
	}
	if d := Diff(n, First(0, 0)); Format(d, env2().Coords, env2().Fields) != "u" {
		t.Errorf("∂/∂u_x = %s, want u", Format(d, env2().Coords, env2().Fields))
	}
	if d := Diff(n, Second(0, 1, 1)); !d.is(0) {
		t.Errorf("∂/∂u_tt = %s, want 0", Format(d, env2().Coords, env2().Fields))
	}
}

// TestDiffAnalytic checks derivatives against ones worked by hand.
func TestDiffAnalytic(t *testing.T) {
	x, tt := 0.3, 0.7
	u := vals(Value(0))
	cases := []struct {
		src  string
		v    Var
		want float64
	}{
		{"sin(x^2)", Coord(0), 2 * x * math.Cos(x*x)},
		{"exp(-t)*cos(pi*x)", Coord(0), -math.Pi * math.Exp(-tt) * math.Sin(math.Pi*x)},
		{"exp(-t)*cos(pi*x)", Coord(1), -math.Exp(-tt) * math.Cos(math.Pi*x)},
		{"u^3 - u", Value(0), 3*u*u - 1},
		{"log(1 + u^2)", Value(0), 2 * u / (1 + u*u)},
		{"sqrt(u)", Value(0), 0.5 / math.Sqrt(u)},
		{"tanh(u)", Value(0), 1 - math.Tanh(u)*math.Tanh(u)},
		{"tan(u)", Value(0), 1 / (math.Cos(u) * math.Cos(u))},
		{"1/u", Value(0), -1 / (u * u)},
		{"x/(1+u)", Value(0), -x / ((1 + u) * (1 + u))},
		{"u^x", Value(0), x * math.Pow(u, x-1)},
		{"x^u", Value(0), math.Pow(x, u) * math.Log(x)},
		{"u^u", Value(0), math.Pow(u, u) * (math.Log(u) + 1)},
		{"abs(u - 1)", Value(0), -1},
		{"sinh(2*u) + cosh(u)", Value(0), 2*math.Cosh(2*u) + math.Sinh(u)},
		{"u*u_x", First(0, 0), u},
		{"u*u_x", Value(0), vals(First(0, 0))},
	}
	for _, c := range cases {
		n := mustParse(t, c.src, env2())
		got := Eval(Diff(n, c.v), vals)
		if math.Abs(got-c.want) > 1e-14*math.Max(1, math.Abs(c.want)) {
			t.Errorf("d(%s)/d%s = %v, want %v", c.src, c.v.Name(env2().Coords, env2().Fields), got, c.want)
		}
	}
}

// randomSmooth builds a random expression that is smooth near the test
// point: divisions and logarithms only of positive quantities.
func randomSmooth(r *rand.Rand, depth int) string {
	leaves := []string{"x", "t", "u", "v", "u_x", "u_t", "u_xx", "u_xt", "v_tt", "nu", "1.5", "pi"}
	if depth == 0 || r.IntN(4) == 0 {
		return leaves[r.IntN(len(leaves))]
	}
	a := randomSmooth(r, depth-1)
	b := randomSmooth(r, depth-1)
	switch r.IntN(12) {
	case 0:
		return "(" + a + " + " + b + ")"
	case 1:
		return "(" + a + " - " + b + ")"
	case 2, 3:
		return a + "*" + b
	case 4:
		return "(" + a + ")/(2 + cos(" + b + "))"
	case 5:
		return "sin(" + a + ")"
	case 6:
		return "exp(sin(" + a + "))"
	case 7:
		return "tanh(" + a + ")"
	case 8:
		return "log(1 + (" + a + ")^2)"
	case 9:
		return "sqrt(2 + sin(" + a + "))"
	case 10:
		return "(" + a + ")^3"
	default:
		return "-" + "cosh(" + a + "/4)"
	}
}

// TestDiffFiniteDifferences checks the derivative of random expressions
// along every variable against a central difference: with step h = 1e-5
// the truncation error is O(h²) ≈ 1e-10 times the third derivative and
// the rounding error ≈ 1e-16/h ≈ 1e-11 of the values, so the agreement
// asked, 1e-6 relative, leaves a wide margin.
func TestDiffFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	e := env2()
	for trial := 0; trial < 300; trial++ {
		src := randomSmooth(r, 4)
		n := mustParse(t, src, e)
		for _, v := range Vars(n) {
			d := Eval(Diff(n, v), vals)
			const h = 1e-5
			at := func(dx float64) float64 {
				return Eval(n, func(w Var) float64 {
					if w == v {
						return vals(w) + dx
					}
					return vals(w)
				})
			}
			fd := (at(h) - at(-h)) / (2 * h)
			if math.Abs(fd-d) > 1e-6*math.Max(1, math.Abs(d)) {
				t.Errorf("d(%s)/d%s = %v, central difference %v", src, v.Name(e.Coords, e.Fields), d, fd)
			}
		}
	}
}

// TestCompileMatchesEval checks compiled closures against the tree walk, to
// the bit, on random expressions and their derivatives.
func TestCompileMatchesEval(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	e := env2()
	a, b := slotValues()
	for trial := 0; trial < 300; trial++ {
		src := randomSmooth(r, 5)
		n := mustParse(t, src, e)
		for _, m := range append([]*Node{n}, Diff(n, Value(0)), Diff(n, Coord(0))) {
			f, err := Compile(m, bindAll)
			if err != nil {
				t.Fatal(err)
			}
			got, want := f(a, b), Eval(m, vals)
			if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Errorf("%s: compiled %v, evaluated %v", Format(m, e.Coords, e.Fields), got, want)
			}
		}
	}
}

func TestCompileAllocatesNothing(t *testing.T) {
	n := mustParse(t, "u_t + u*u_x - nu*u_xx + sin(pi*x)*exp(-t)^2", env2())
	f, err := Compile(n, bindAll)
	if err != nil {
		t.Fatal(err)
	}
	a, b := slotValues()
	if allocs := testing.AllocsPerRun(100, func() { f(a, b) }); allocs != 0 {
		t.Errorf("%v allocations per evaluation", allocs)
	}
}

func TestCompileUnboundVariable(t *testing.T) {
	n := mustParse(t, "x + u_tt", env2())
	_, err := Compile(n, func(v Var) (Slot, error) {
		if v.IsCoord() {
			return Slot{0, v.K}, nil
		}
		return Slot{}, errFake
	})
	if err == nil || !strings.Contains(err.Error(), "1:5") {
		t.Fatalf("error %v, want one at 1:5", err)
	}
}

var errFake = &Error{Msg: "not provided"}

// TestFormatRoundTrip prints random expressions and parses them back to the
// same value.
func TestFormatRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	e := env2()
	for trial := 0; trial < 300; trial++ {
		src := randomSmooth(r, 4)
		n := mustParse(t, src, e)
		text := Format(n, e.Coords, e.Fields)
		m := mustParse(t, text, e)
		if a, b := Eval(n, vals), Eval(m, vals); math.Float64bits(a) != math.Float64bits(b) {
			t.Errorf("%s reads back as %s: %v, %v", src, text, a, b)
		}
	}
	if got := Format(mustParse(t, "-(x^2) + (t - x) - (x - t)*2 + 2^-x + (-2)^t", e), e.Coords, e.Fields); got != "-x^2 + (t - x) - (x - t)*2 + 2^-x + (-2)^t" {
		t.Errorf("format: %s", got)
	}
}

func TestTerms(t *testing.T) {
	e := env2()
	n := mustParse(t, "u - (sin(x) + 2*t) + -v", e)
	terms := Terms(n)
	var got []string
	for _, tm := range terms {
		s := "+"
		if tm.Sign < 0 {
			s = "-"
		}
		got = append(got, s+Format(tm.Node, e.Coords, e.Fields))
	}
	if strings.Join(got, " ") != "+u -sin(x) -2*t -v" {
		t.Errorf("terms %v", got)
	}
	if s := Sum(terms); Eval(s, vals) != Eval(n, vals) {
		t.Errorf("Sum(Terms) = %v, want %v", Eval(s, vals), Eval(n, vals))
	}
}

func TestSubstitute(t *testing.T) {
	e := env2()
	n := mustParse(t, "u_tt - 4*u_xx + u*u_x", e)
	zero := Substitute(n, func(v Var) *Node {
		if v.Order == 2 {
			return Number(0)
		}
		return nil
	})
	if got := Format(zero, e.Coords, e.Fields); got != "u*u_x" {
		t.Errorf("with second derivatives zero: %s", got)
	}
}

func TestNormalDerivative(t *testing.T) {
	e := env2()
	e.Normal = []*Node{Number(0), Number(-1)}
	n := mustParse(t, "dn(u) + 2*u", e)
	if got := Format(n, e.Coords, e.Fields); got != "-u_t + 2*u" {
		t.Errorf("dn on t = 0: %s", got)
	}
	x := Variable(Coord(0))
	e = env2()
	e.Normal = []*Node{NegOf(x), Number(0.5)}
	n = mustParse(t, "dn(v)", e)
	if got := Format(n, e.Coords, e.Fields); got != "-x*v_x + 0.5*v_t" {
		t.Errorf("dn with a varying normal: %s", got)
	}
	// dn of an expression of the coordinates is its exact derivative.
	n = mustParse(t, "dn(x^2*t + sin(t))", e)
	if got, want := Eval(n, vals), -0.3*(2*0.3*0.7)+0.5*(0.3*0.3+math.Cos(0.7)); math.Abs(got-want) > 1e-15 {
		t.Errorf("dn(x^2*t + sin(t)) = %v, want %v", got, want)
	}
	if _, err := Parse("dn(u*x)", e); err == nil || !strings.Contains(err.Error(), "1:3: dn takes an output, dn(u), or an expression of the coordinates only") {
		t.Errorf("dn(u*x): %v", err)
	}
	if _, err := Parse("dn(u, v)", e); err == nil || !strings.Contains(err.Error(), "1:5: dn takes one argument") {
		t.Errorf("dn(u, v): %v", err)
	}
}

// TestErrors checks that every mistake is reported at its position with
// what to do.
func TestErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"u_t + u*u_x - nuu*u_xx", `1:15: unknown symbol "nuu"; did you mean nu? (known: coordinates x, t; outputs u, v and their derivatives (u_x, u_xx or D(u, x)); parameters nu; the constant pi; functions sin,`},
		{"u_xxx", "1:1: u_xxx is a derivative of order 3: residuals read derivatives up to order 2"},
		{"D(u, x, t, t)", "1:1: D of order 3: residuals read derivatives up to order 2"},
		{"u_y", `1:1: u_y: "y" is not a coordinate (coordinates: x, t)`},
		{"D(u, y)", `1:6: "y" is not a coordinate (coordinates: x, t)`},
		{"D(w, x)", `1:3: D takes an output first, and "w" is not one (outputs: u, v)`},
		{"D(u)", "1:1: D(u) names no coordinate: write D(u, x)"},
		{"u_", "1:1: u_ names no coordinate after '_'"},
		{"2x", `1:2: missing an operator before "x" (write 2*x, not 2x)`},
		{"u + (x", "1:5: this '(' is never closed"},
		{"u + x)", "1:6: unmatched ')'"},
		{"u + ", "1:5: the expression ends where a number, a name or '(' should follow"},
		{"u_xx = 0", "1:6: an expression has no '='"},
		{"  ", "1:3: the expression is empty"},
		{"sin", "1:1: sin is a function: write sin(...)"},
		{"foo(x)", "1:1: unknown function foo(...)"},
		{"nu(x)", "1:1: not a function nu(...)"},
		{"sin(x, t)", "1:6: sin takes one argument"},
		{"dn(u)", "1:1: dn(u), the outward normal derivative, needs points on a face of the box or on a hole's boundary: this expression has no boundary"},
		{"x + log(-1)", "1:5: the constants here evaluate to NaN"},
		{"x + 1/(nu - 0.25)", "1:6: the constants here evaluate to +Inf"},
		{"x\n + $", "2:4: unexpected character '$'"},
		{"1e999", "1:1: number 1e999 is out of the range of float64"},
		{". + x", "1:1: a '.' without digits is not a number"},
		{"x @ t", "1:3: unexpected character '@'"},
		{"\xff", "1:1: the text is not valid UTF-8"},
	}
	for _, c := range cases {
		_, err := Parse(c.src, env2())
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v\n want prefix %s", c.src, err, c.want)
		}
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("(", MaxDepth+1) + "x" + strings.Repeat(")", MaxDepth+1)
	if _, err := Parse(deep, env2()); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Errorf("deep: %v", err)
	}
	calls := strings.Repeat("sin(", MaxDepth) + "x" + strings.Repeat(")", MaxDepth)
	if _, err := Parse(calls, env2()); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Errorf("deep calls: %v", err)
	}
	neg := strings.Repeat("-", MaxDepth+1) + "x"
	if _, err := Parse(neg, env2()); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Errorf("deep negations: %v", err)
	}
	if _, err := Parse(strings.Repeat("x+", MaxLen), env2()); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("long: %v", err)
	}
	// Definitions that double at every level: 2^20 operations expanded.
	e := env2()
	e.Defs = map[string]*Node{}
	prev := "x"
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		name := "d" + string(rune('a'+i))
		e.Defs[name], err = Parse(prev+"*"+prev, e)
		prev = name
	}
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("exponential definitions: %v", err)
	}
}

func TestEnvCheck(t *testing.T) {
	cases := []struct {
		env  Env
		want string
	}{
		{Env{Coords: []string{"x", "x"}}, `coordinate name "x" is already the name of a coordinate`},
		{Env{Coords: []string{"x"}, Fields: []string{"pi"}}, `output name "pi" is already a built-in name`},
		{Env{Coords: []string{"x"}, Fields: []string{"sin"}}, `output name "sin" is already a function`},
		{Env{Coords: []string{"x"}, Fields: []string{"u"}, Consts: map[string]float64{"u_x": 1}}, `parameter "u_x" reads like the derivative u_x`},
		{Env{Coords: []string{"2x"}}, `coordinate name "2x": want a letter`},
		{Env{Coords: []string{"x", "t"}, Fields: []string{"u"}, Consts: map[string]float64{"nu": 1}}, ""},
	}
	for _, c := range cases {
		err := c.env.Check()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.env, err, c.want)
		}
	}
}
