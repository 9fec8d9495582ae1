package expr

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Pos is a position in an expression's text: line and column, both from 1;
// the column counts characters (runes), not bytes.
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is a mistake in an expression, at a position of its text.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func errorf(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// Var is a variable an expression reads: a coordinate (Field < 0, the
// coordinate K), or a field's value (Order 0), its first derivative along
// coordinate K (Order 1) or its second derivative along K and L, K ≤ L
// (Order 2). Unused indices are −1.
type Var struct {
	Field int
	Order int
	K, L  int
}

// Coord is the variable of coordinate k.
func Coord(k int) Var { return Var{Field: -1, K: k, L: -1} }

// Value is the value of field f.
func Value(f int) Var { return Var{Field: f, K: -1, L: -1} }

// First is the derivative of field f along coordinate k.
func First(f, k int) Var { return Var{Field: f, Order: 1, K: k, L: -1} }

// Second is the second derivative of field f along coordinates k and l.
func Second(f, k, l int) Var {
	if k > l {
		k, l = l, k
	}
	return Var{Field: f, Order: 2, K: k, L: l}
}

// IsCoord reports whether v is a coordinate.
func (v Var) IsCoord() bool { return v.Field < 0 }

func (v Var) less(w Var) bool {
	if v.Field != w.Field {
		return v.Field < w.Field
	}
	if v.Order != w.Order {
		return v.Order < w.Order
	}
	if v.K != w.K {
		return v.K < w.K
	}
	return v.L < w.L
}

// Name writes v in the shorthand of the given names: x, u, u_x, u_xt, or
// D(u, rho) where a coordinate's name is longer than one letter.
func (v Var) Name(coords, fields []string) string {
	name := func(s []string, i int) string {
		if i >= 0 && i < len(s) {
			return s[i]
		}
		return "?" + strconv.Itoa(i)
	}
	if v.IsCoord() {
		return name(coords, v.K)
	}
	f := name(fields, v.Field)
	ks := []int{v.K, v.L}[:v.Order]
	if len(ks) == 0 {
		return f
	}
	short := true
	for _, k := range ks {
		short = short && len([]rune(name(coords, k))) == 1
	}
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = name(coords, k)
	}
	if short {
		return f + "_" + strings.Join(parts, "")
	}
	return "D(" + f + ", " + strings.Join(parts, ", ") + ")"
}

// Kind is what a Node does.
type Kind uint8

// The kinds of node.
const (
	Num  Kind = iota // the number Node.Num
	Load             // the variable Node.Var
	Neg              // −A
	Add              // A + B
	Sub              // A − B
	Mul              // A · B
	Div              // A / B
	Pow              // A ^ B
	Call             // Node.Fn(A)
)

// Func is an elementary function.
type Func uint8

// The elementary functions. Sign (−1, 0 or 1) is the derivative of Abs.
const (
	Sin Func = iota
	Cos
	Tan
	Exp
	Log
	Sqrt
	Tanh
	Sinh
	Cosh
	Abs
	Sign
	numFuncs
)

var funcNames = [numFuncs]string{"sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "abs", "sign"}

func (f Func) String() string {
	if f < numFuncs {
		return funcNames[f]
	}
	return "func" + strconv.Itoa(int(f))
}

// FuncNames lists the functions an expression may call.
func FuncNames() []string { return append([]string(nil), funcNames[:]...) }

func funcByName(s string) (Func, bool) {
	for i, n := range funcNames {
		if n == s {
			return Func(i), true
		}
	}
	return 0, false
}

func (f Func) apply(x float64) float64 {
	switch f {
	case Sin:
		return math.Sin(x)
	case Cos:
		return math.Cos(x)
	case Tan:
		return math.Tan(x)
	case Exp:
		return math.Exp(x)
	case Log:
		return math.Log(x)
	case Sqrt:
		return math.Sqrt(x)
	case Tanh:
		return math.Tanh(x)
	case Sinh:
		return math.Sinh(x)
	case Cosh:
		return math.Cosh(x)
	case Abs:
		return math.Abs(x)
	case Sign:
		return sign(x)
	}
	return math.NaN()
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return x // ±0 and NaN
}

// Node is one operation of an expression tree. Trees are immutable once
// built and may share subtrees (definitions used twice, derivatives).
type Node struct {
	Kind Kind
	Num  float64 // Kind Num
	Var  Var     // Kind Load
	Fn   Func    // Kind Call
	A, B *Node   // operands (A only for Neg and Call)
	Pos  Pos     // where the operation is written (for messages)
}

// Number returns the constant c.
func Number(c float64) *Node { return &Node{Kind: Num, Num: c} }

// Variable returns a node that reads v.
func Variable(v Var) *Node { return &Node{Kind: Load, Var: v} }

// IsConst reports whether n is a number, and which.
func (n *Node) IsConst() (float64, bool) {
	if n.Kind == Num {
		return n.Num, true
	}
	return 0, false
}

func (n *Node) is(c float64) bool { return n.Kind == Num && n.Num == c }

// The constructors below fold constants and drop neutral elements, so that
// derivatives stay small; they never reorder operations, so that a tree
// evaluates with the rounding its text implies.

// NegOf is −a.
func NegOf(a *Node) *Node {
	switch a.Kind {
	case Num:
		return &Node{Kind: Num, Num: -a.Num, Pos: a.Pos}
	case Neg:
		return a.A
	}
	return &Node{Kind: Neg, A: a, Pos: a.Pos}
}

// AddOf is a + b.
func AddOf(a, b *Node) *Node { return addAt(a, b, a.Pos) }

func addAt(a, b *Node, p Pos) *Node {
	switch {
	case a.Kind == Num && b.Kind == Num:
		return &Node{Kind: Num, Num: a.Num + b.Num, Pos: p}
	case a.is(0):
		return b
	case b.is(0):
		return a
	case b.Kind == Neg:
		return subAt(a, b.A, p)
	}
	return &Node{Kind: Add, A: a, B: b, Pos: p}
}

// SubOf is a − b.
func SubOf(a, b *Node) *Node { return subAt(a, b, a.Pos) }

func subAt(a, b *Node, p Pos) *Node {
	switch {
	case a.Kind == Num && b.Kind == Num:
		return &Node{Kind: Num, Num: a.Num - b.Num, Pos: p}
	case b.is(0):
		return a
	case a.is(0):
		return NegOf(b)
	case b.Kind == Neg:
		return addAt(a, b.A, p)
	}
	return &Node{Kind: Sub, A: a, B: b, Pos: p}
}

// MulOf is a · b.
func MulOf(a, b *Node) *Node { return mulAt(a, b, a.Pos) }

func mulAt(a, b *Node, p Pos) *Node {
	switch {
	case a.Kind == Num && b.Kind == Num:
		return &Node{Kind: Num, Num: a.Num * b.Num, Pos: p}
	case a.is(0) || b.is(0):
		return &Node{Kind: Num, Pos: p}
	case a.is(1):
		return b
	case b.is(1):
		return a
	case a.is(-1):
		return NegOf(b)
	case b.is(-1):
		return NegOf(a)
	}
	return &Node{Kind: Mul, A: a, B: b, Pos: p}
}

// DivOf is a / b.
func DivOf(a, b *Node) *Node { return divAt(a, b, a.Pos) }

func divAt(a, b *Node, p Pos) *Node {
	switch {
	case a.Kind == Num && b.Kind == Num:
		return &Node{Kind: Num, Num: a.Num / b.Num, Pos: p}
	case b.is(1):
		return a
	case b.is(-1):
		return NegOf(a)
	case a.is(0) && b.Kind == Num && b.Num != 0:
		return &Node{Kind: Num, Pos: p}
	}
	return &Node{Kind: Div, A: a, B: b, Pos: p}
}

// PowOf is a ^ b.
func PowOf(a, b *Node) *Node { return powAt(a, b, a.Pos) }

func powAt(a, b *Node, p Pos) *Node {
	switch {
	case a.Kind == Num && b.Kind == Num:
		return &Node{Kind: Num, Num: powConst(a.Num, b.Num), Pos: p}
	case b.is(0):
		return &Node{Kind: Num, Num: 1, Pos: p}
	case b.is(1):
		return a
	}
	return &Node{Kind: Pow, A: a, B: b, Pos: p}
}

// CallOf is f(a).
func CallOf(f Func, a *Node) *Node { return callAt(f, a, a.Pos) }

func callAt(f Func, a *Node, p Pos) *Node {
	if a.Kind == Num {
		return &Node{Kind: Num, Num: f.apply(a.Num), Pos: p}
	}
	return &Node{Kind: Call, Fn: f, A: a, Pos: p}
}

// powConst is x^y as compiled code computes it: small integer powers by
// multiplication, square roots by Sqrt.
func powConst(x, y float64) float64 {
	switch y {
	case 2:
		return x * x
	case 3:
		return x * x * x
	case 4:
		x2 := x * x
		return x2 * x2
	case -1:
		return 1 / x
	case -2:
		return 1 / (x * x)
	case 0.5:
		return math.Sqrt(x)
	}
	return math.Pow(x, y)
}

// Vars lists the variables n reads, sorted and without repeats.
func Vars(n *Node) []Var {
	seen := map[Var]bool{}
	walk(n, func(m *Node) {
		if m.Kind == Load {
			seen[m.Var] = true
		}
	})
	vs := make([]Var, 0, len(seen))
	for v := range seen {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].less(vs[j]) })
	return vs
}

// walk visits every distinct node of n once.
func walk(n *Node, f func(*Node)) {
	seen := map[*Node]bool{}
	var rec func(*Node)
	rec = func(m *Node) {
		if m == nil || seen[m] {
			return
		}
		seen[m] = true
		f(m)
		rec(m.A)
		rec(m.B)
	}
	rec(n)
}

// Size is the number of operations n performs when evaluated as a tree
// (shared subtrees counted every time they are used), saturating at limit.
func Size(n *Node, limit int) int {
	memo := map[*Node]int{}
	var rec func(*Node) int
	rec = func(m *Node) int {
		if m == nil {
			return 0
		}
		if s, ok := memo[m]; ok {
			return s
		}
		s := 1 + rec(m.A)
		if s < limit {
			s += rec(m.B)
		}
		s = min(s, limit)
		memo[m] = s
		return s
	}
	return rec(n)
}

// Depends reports whether n reads a variable for which pred is true.
func Depends(n *Node, pred func(Var) bool) bool {
	found := false
	walk(n, func(m *Node) {
		if m.Kind == Load && pred(m.Var) {
			found = true
		}
	})
	return found
}

// Substitute returns n with every variable v for which with(v) is not nil
// replaced by with(v), simplified by the constructors.
func Substitute(n *Node, with func(Var) *Node) *Node {
	memo := map[*Node]*Node{}
	var rec func(*Node) *Node
	rec = func(m *Node) *Node {
		if r, ok := memo[m]; ok {
			return r
		}
		var r *Node
		switch m.Kind {
		case Num:
			r = m
		case Load:
			r = m
			if w := with(m.Var); w != nil {
				r = w
			}
		default:
			r = rebuild(m, rec(m.A), opB(m, rec))
		}
		memo[m] = r
		return r
	}
	return rec(n)
}

func opB(m *Node, rec func(*Node) *Node) *Node {
	if m.B == nil {
		return nil
	}
	return rec(m.B)
}

// rebuild makes the node of m's kind from new operands; it returns m
// itself when they did not change.
func rebuild(m, a, b *Node) *Node {
	if a == m.A && b == m.B {
		return m
	}
	switch m.Kind {
	case Neg:
		return NegOf(a)
	case Add:
		return addAt(a, b, m.Pos)
	case Sub:
		return subAt(a, b, m.Pos)
	case Mul:
		return mulAt(a, b, m.Pos)
	case Div:
		return divAt(a, b, m.Pos)
	case Pow:
		return powAt(a, b, m.Pos)
	case Call:
		return callAt(m.Fn, a, m.Pos)
	}
	return m
}

// Term is one summand of an expression: Sign·Node.
type Term struct {
	Sign float64 // +1 or −1
	Node *Node
}

// Terms splits n into its top-level summands, in order: a − (b + c) gives
// +a, −b, −c.
func Terms(n *Node) []Term {
	var out []Term
	var rec func(m *Node, s float64)
	rec = func(m *Node, s float64) {
		switch m.Kind {
		case Add:
			rec(m.A, s)
			rec(m.B, s)
		case Sub:
			rec(m.A, s)
			rec(m.B, -s)
		case Neg:
			rec(m.A, -s)
		default:
			out = append(out, Term{s, m})
		}
	}
	rec(n, 1)
	return out
}

// Sum is the expression of terms, added in order (nil terms: the number 0).
func Sum(terms []Term) *Node {
	var acc *Node
	for _, t := range terms {
		switch {
		case acc == nil && t.Sign < 0:
			acc = NegOf(t.Node)
		case acc == nil:
			acc = t.Node
		case t.Sign < 0:
			acc = SubOf(acc, t.Node)
		default:
			acc = AddOf(acc, t.Node)
		}
	}
	if acc == nil {
		return Number(0)
	}
	return acc
}

// CheckFinite reports the first number in n that is NaN or infinite, which
// constant folding leaves where constants divide by zero or leave a
// function's domain.
func CheckFinite(n *Node) error {
	var bad *Node
	walk(n, func(m *Node) {
		if bad == nil && m.Kind == Num && (math.IsNaN(m.Num) || math.IsInf(m.Num, 0)) {
			bad = m
		}
	})
	if bad != nil {
		return errorf(bad.Pos, "the constants here evaluate to %v (a division by zero, or a function outside its domain such as log or sqrt of a negative number)", bad.Num)
	}
	return nil
}

// Format writes n as text, with the given names of coordinates and fields,
// and parentheses only where precedence needs them.
func Format(n *Node, coords, fields []string) string {
	var b strings.Builder
	format(&b, n, 0, coords, fields)
	return b.String()
}

// precedence of a node's top operation: higher binds tighter.
func precedence(n *Node) int {
	switch n.Kind {
	case Add, Sub:
		return 1
	case Mul, Div:
		return 2
	case Neg:
		return 3
	case Pow:
		return 4
	}
	return 5
}

func format(b *strings.Builder, n *Node, outer int, coords, fields []string) {
	p := precedence(n)
	if n.Kind == Num && n.Num < 0 {
		p = 3 // a negative number reads like −x
	}
	if p < outer {
		b.WriteByte('(')
		defer b.WriteByte(')')
	}
	switch n.Kind {
	case Num:
		b.WriteString(strconv.FormatFloat(n.Num, 'g', -1, 64))
	case Load:
		b.WriteString(n.Var.Name(coords, fields))
	case Neg:
		b.WriteByte('-')
		format(b, n.A, 3, coords, fields)
	case Call:
		b.WriteString(n.Fn.String())
		b.WriteByte('(')
		format(b, n.A, 0, coords, fields)
		b.WriteByte(')')
	default:
		op := map[Kind]string{Add: " + ", Sub: " - ", Mul: "*", Div: "/", Pow: "^"}[n.Kind]
		left, right := p, p+1 // left-associative
		if n.Kind == Pow {
			left, right = p+1, 3 // right-associative; an exponent may be −x
		}
		format(b, n.A, left, coords, fields)
		b.WriteString(op)
		format(b, n.B, right, coords, fields)
	}
}
