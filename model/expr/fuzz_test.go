package expr

import (
	"math"
	"testing"
)

// FuzzParse feeds arbitrary text to the parser: it must never panic, and an
// expression it accepts must print and parse back to the same value, compile
// to the value the tree walk gives, and differentiate along every variable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"u_t + u*u_x - nu*u_xx", "-2^-x^2", "D(u, x, t) + dn(v)", "sin(cos(tan(x)))/(1+u^2)",
		"((x))", "2x", "u_xxx", "1e308*10", "x = 1", "abs(u)^0.5 + sign(v)", "− u", "u ** 3",
		"exp(log(sqrt(x)))", "D(", "dn(u", ")", "", "\xff\xfe", "1/(nu-nu)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e := env2()
		e.Normal = []*Node{Number(1), NegOf(Variable(Coord(0)))}
		n, err := Parse(src, e)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse(%q): error of type %T", src, err)
			}
			return
		}
		want := Eval(n, vals)
		text := Format(n, e.Coords, e.Fields)
		m, err := Parse(text, e)
		if err != nil {
			t.Fatalf("%q prints as %q, which does not parse: %v", src, text, err)
		}
		if got := Eval(m, vals); !same(got, want) {
			t.Fatalf("%q prints as %q: %v, want %v", src, text, got, want)
		}
		fn, err := Compile(n, bindAll)
		if err != nil {
			t.Fatalf("compile %q: %v", src, err)
		}
		if got := fn(slotValues()); !same(got, want) {
			t.Fatalf("%q compiled: %v, evaluated %v", src, got, want)
		}
		for _, v := range Vars(n) {
			d := Diff(n, v)
			if Size(d, MaxNodes+1) <= MaxNodes {
				if _, err := Compile(d, bindAll); err != nil {
					t.Fatalf("compile d(%q)/d%v: %v", src, v, err)
				}
			}
		}
	})
}

func same(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
}
