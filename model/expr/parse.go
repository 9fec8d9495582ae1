package expr

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on one expression's text, so that text from a file or a message
// cannot exhaust the stack or the memory of whoever parses it.
const (
	MaxLen   = 16 << 10 // bytes of text
	MaxDepth = 64       // nesting of parentheses, operators and calls
	MaxNodes = 1 << 16  // operations of a tree, definitions expanded
)

// MaxOrder is the highest derivative an expression may read.
const MaxOrder = 2

// Env says what the names in an expression mean.
type Env struct {
	Coords []string           // coordinate names, in index order
	Fields []string           // field (network output) names, in index order
	Consts map[string]float64 // named constants (parameters); pi is built in
	Defs   map[string]*Node   // named expressions, already parsed
	Normal []*Node            // outward normal components for dn(f), one per coordinate; nil: dn is refused
	NoDn   string             // why dn is refused where Normal is nil (a phrase)
}

// names lists every name of e and the built-in ones.
func (e *Env) names() []string {
	var all []string
	for _, s := range [][]string{e.Coords, e.Fields, sortedKeys(e.Consts), sortedKeys(e.Defs), reserved, funcNames[:]} {
		all = append(all, s...)
	}
	return all
}

// reserved names that no coordinate, field, constant or definition may take.
var reserved = []string{"pi", "D", "dn"}

// ValidName reports whether s can name a coordinate, field, constant or
// definition: a letter or '_' followed by letters, digits and '_'.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || unicode.IsLetter(r) || i > 0 && unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

// Check reports names that are invalid, taken twice, reserved, or that
// read like a derivative of a field (u_x when u is a field and x a
// coordinate).
func (e *Env) Check() error {
	owner := map[string]string{}
	for _, r := range reserved {
		owner[r] = "a built-in name"
	}
	for _, f := range funcNames {
		owner[f] = "a function"
	}
	add := func(kind, name string) error {
		if !ValidName(name) {
			return fmt.Errorf("%s name %q: want a letter or '_' followed by letters, digits or '_'", kind, name)
		}
		if o, ok := owner[name]; ok {
			return fmt.Errorf("%s name %q is already %s: choose another name", kind, name, o)
		}
		owner[name] = "the name of a " + kind
		return nil
	}
	for _, c := range e.Coords {
		if err := add("coordinate", c); err != nil {
			return err
		}
	}
	for _, f := range e.Fields {
		if err := add("output", f); err != nil {
			return err
		}
	}
	for _, c := range sortedKeys(e.Consts) {
		if err := add("parameter", c); err != nil {
			return err
		}
	}
	for _, d := range sortedKeys(e.Defs) {
		if err := add("definition", d); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(owner) {
		kind := strings.TrimPrefix(owner[name], "the name of a ")
		if kind == "coordinate" || kind == owner[name] {
			continue
		}
		if v, err := e.shorthand(name); err == nil {
			return fmt.Errorf("%s %q reads like the derivative %s: choose another name", kind, name, v.Name(e.Coords, e.Fields))
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// token kinds
type tokKind uint8

const (
	tEOF tokKind = iota
	tNum
	tIdent
	tOp // + - * / ^ ( ) ,
)

type token struct {
	kind tokKind
	text string // identifier, operator ("**" reads as "^") or number text
	num  float64
	pos  Pos
}

// lexer splits an expression into tokens with their positions.
type lexer struct {
	src       string
	off       int
	line, col int
}

func (l *lexer) next() (token, error) {
	for l.off < len(l.src) {
		r, w := utf8.DecodeRuneInString(l.src[l.off:])
		if !unicode.IsSpace(r) {
			break
		}
		l.advance(r, w)
	}
	p := Pos{l.line, l.col}
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	r, w := utf8.DecodeRuneInString(l.src[l.off:])
	switch {
	case r == utf8.RuneError && w == 1:
		return token{}, errorf(p, "the text is not valid UTF-8")
	case r == '*' && strings.HasPrefix(l.src[l.off:], "**"):
		l.advance('*', 1)
		l.advance('*', 1)
		return token{kind: tOp, text: "^", pos: p}, nil
	case strings.ContainsRune("+-*/^(),", r):
		l.advance(r, w)
		return token{kind: tOp, text: string(r), pos: p}, nil
	case r == '−': // the minus sign of typeset formulas
		l.advance(r, w)
		return token{kind: tOp, text: "-", pos: p}, nil
	case r == '.' || unicode.IsDigit(r):
		return l.number(p)
	case r == '_' || unicode.IsLetter(r):
		start := l.off
		for l.off < len(l.src) {
			r, w := utf8.DecodeRuneInString(l.src[l.off:])
			if !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
				break
			}
			l.advance(r, w)
		}
		return token{kind: tIdent, text: l.src[start:l.off], pos: p}, nil
	case r == '=':
		return token{}, errorf(p, "an expression has no '=': write the residual as left side - (right side), which the training drives to zero")
	}
	return token{}, errorf(p, "unexpected character %q: expressions use numbers, names, + - * / ^, parentheses and commas", r)
}

func (l *lexer) advance(r rune, w int) {
	l.off += w
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
}

// number reads a decimal number: digits, an optional fraction and an
// optional exponent.
func (l *lexer) number(p Pos) (token, error) {
	start := l.off
	digits := func() int {
		n := 0
		for l.off < len(l.src) && l.src[l.off] >= '0' && l.src[l.off] <= '9' {
			l.advance(rune(l.src[l.off]), 1)
			n++
		}
		return n
	}
	n := digits()
	if l.off < len(l.src) && l.src[l.off] == '.' {
		l.advance('.', 1)
		n += digits()
	}
	if n == 0 {
		return token{}, errorf(p, "a '.' without digits is not a number")
	}
	if l.off < len(l.src) && (l.src[l.off] == 'e' || l.src[l.off] == 'E') {
		save, sl, sc := l.off, l.line, l.col
		l.advance('e', 1)
		if l.off < len(l.src) && (l.src[l.off] == '+' || l.src[l.off] == '-') {
			l.advance(rune(l.src[l.off]), 1)
		}
		if digits() == 0 {
			// "2e" or "2exp": not an exponent; let the parser say what is missing.
			l.off, l.line, l.col = save, sl, sc
		}
	}
	text := l.src[start:l.off]
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(v, 0) {
		return token{}, errorf(p, "number %s is out of the range of float64", text)
	}
	return token{kind: tNum, text: text, num: v, pos: p}, nil
}

// parser is a precedence parser over the lexer's tokens:
//
//	sum     = product { ("+" | "-") product }
//	product = unary { ("*" | "/") unary }
//	unary   = ("-" | "+") unary | power
//	power   = primary [ "^" unary ]          (right-associative)
//	primary = number | name | name "(" args ")" | "(" sum ")"
type parser struct {
	lex   lexer
	tok   token
	env   *Env
	depth int
}

// Parse parses src and resolves its names in env. Constants are folded in;
// the result reads only coordinates and fields.
func Parse(src string, env *Env) (*Node, error) {
	if len(src) > MaxLen {
		return nil, errorf(Pos{1, 1}, "expression of %d bytes, more than the %d an expression may have", len(src), MaxLen)
	}
	p := &parser{lex: lexer{src: src, line: 1, col: 1}, env: env}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, errorf(p.tok.pos, "the expression is empty")
	}
	n, err := p.sum()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.unexpected("the end of the expression or an operator")
	}
	if s := Size(n, MaxNodes+1); s > MaxNodes {
		return nil, errorf(Pos{1, 1}, "the expression has more than %d operations with its definitions expanded: simplify it", MaxNodes)
	}
	if err := CheckFinite(n); err != nil {
		return nil, err
	}
	return n, nil
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) isOp(s string) bool { return p.tok.kind == tOp && p.tok.text == s }

func (p *parser) unexpected(want string) error {
	switch p.tok.kind {
	case tEOF:
		return errorf(p.tok.pos, "the expression ends where %s should follow", want)
	case tNum, tIdent:
		return errorf(p.tok.pos, "missing an operator before %q (write 2*x, not 2x)", p.tok.text)
	}
	if p.tok.text == ")" {
		return errorf(p.tok.pos, "unmatched ')'")
	}
	return errorf(p.tok.pos, "unexpected %q where %s should follow", p.tok.text, want)
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return errorf(p.tok.pos, "the expression nests deeper than %d levels", MaxDepth)
	}
	return nil
}

func (p *parser) sum() (*Node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	a, err := p.product()
	if err != nil {
		return nil, err
	}
	for p.isOp("+") || p.isOp("-") {
		op := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		b, err := p.product()
		if err != nil {
			return nil, err
		}
		if op.text == "+" {
			a = addAt(a, b, op.pos)
		} else {
			a = subAt(a, b, op.pos)
		}
	}
	return a, nil
}

func (p *parser) product() (*Node, error) {
	a, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.isOp("*") || p.isOp("/") {
		op := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		b, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op.text == "*" {
			a = mulAt(a, b, op.pos)
		} else {
			a = divAt(a, b, op.pos)
		}
	}
	return a, nil
}

func (p *parser) unary() (*Node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.isOp("-") || p.isOp("+") {
		op := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op.text == "+" {
			return a, nil
		}
		n := NegOf(a)
		if n.Kind == Neg || n.Kind == Num {
			n = cloneAt(n, op.pos)
		}
		return n, nil
	}
	return p.power()
}

func cloneAt(n *Node, pos Pos) *Node {
	c := *n
	c.Pos = pos
	return &c
}

func (p *parser) power() (*Node, error) {
	a, err := p.primary()
	if err != nil {
		return nil, err
	}
	if !p.isOp("^") {
		return a, nil
	}
	op := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	b, err := p.unary()
	if err != nil {
		return nil, err
	}
	return powAt(a, b, op.pos), nil
}

func (p *parser) primary() (*Node, error) {
	t := p.tok
	switch {
	case t.kind == tNum:
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &Node{Kind: Num, Num: t.num, Pos: t.pos}, nil
	case p.isOp("("):
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.sum()
		if err != nil {
			return nil, err
		}
		if !p.isOp(")") {
			if p.tok.kind == tEOF {
				return nil, errorf(t.pos, "this '(' is never closed")
			}
			return nil, p.unexpected("')'")
		}
		return n, p.advance()
	case t.kind == tIdent:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isOp("(") {
			return p.call(t)
		}
		return p.name(t)
	}
	return nil, p.unexpected("a number, a name or '('")
}

// name resolves an identifier that is not called.
func (p *parser) name(t token) (*Node, error) {
	e := p.env
	if t.text == "pi" {
		return &Node{Kind: Num, Num: math.Pi, Pos: t.pos}, nil
	}
	for k, c := range e.Coords {
		if c == t.text {
			return &Node{Kind: Load, Var: Coord(k), Pos: t.pos}, nil
		}
	}
	for f, c := range e.Fields {
		if c == t.text {
			return &Node{Kind: Load, Var: Value(f), Pos: t.pos}, nil
		}
	}
	if v, ok := e.Consts[t.text]; ok {
		return &Node{Kind: Num, Num: v, Pos: t.pos}, nil
	}
	if d, ok := e.Defs[t.text]; ok {
		return d, nil
	}
	if _, ok := funcByName(t.text); ok || t.text == "D" || t.text == "dn" {
		return nil, errorf(t.pos, "%s is a function: write %s(...)", t.text, t.text)
	}
	v, err := e.shorthand(t.text)
	if err != nil {
		return nil, &Error{Pos: t.pos, Msg: err.Error()}
	}
	return &Node{Kind: Load, Var: v, Pos: t.pos}, nil
}

// shorthand reads a derivative written field_coords (u_x, u_xt), where
// every coordinate's name is one letter. An error says why the name is
// not one, and lists the names that exist.
func (e *Env) shorthand(s string) (Var, error) {
	var near error
	for i := len(s) - 1; i > 0; i-- {
		if s[i] != '_' {
			continue
		}
		f := indexOf(e.Fields, s[:i])
		if f < 0 {
			continue
		}
		suffix := []rune(s[i+1:])
		var ks []int
		bad := ""
		for _, r := range suffix {
			k := indexOf(e.Coords, string(r))
			if k < 0 {
				bad = string(r)
				break
			}
			ks = append(ks, k)
		}
		switch {
		case len(suffix) == 0:
			near = fmt.Errorf("%s names no coordinate after '_' (derivatives are written %s_%s or D(%s, %s))", s, s[:i], e.Coords[0], s[:i], e.Coords[0])
		case bad != "":
			near = fmt.Errorf("%s: %q is not a coordinate (coordinates: %s); derivatives along coordinates with longer names are written D(%s, name)", s, bad, strings.Join(e.Coords, ", "), s[:i])
		case len(ks) > MaxOrder:
			near = fmt.Errorf("%s is a derivative of order %d: residuals read derivatives up to order %d (the network carries its value, gradient and second-order operators); write the PDE as a system of first- or second-order equations in more outputs", s, len(ks), MaxOrder)
		case len(ks) == 1:
			return First(f, ks[0]), nil
		default:
			return Second(f, ks[0], ks[1]), nil
		}
	}
	if near != nil {
		return Var{}, near
	}
	return Var{}, fmt.Errorf("unknown symbol %q%s (%s)", s, e.suggest(s), e.known())
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// known lists the names an expression may use.
func (e *Env) known() string {
	var parts []string
	if len(e.Coords) > 0 {
		parts = append(parts, "coordinates "+strings.Join(e.Coords, ", "))
	}
	if len(e.Fields) > 0 {
		f, c := e.Fields[0], "x"
		if len(e.Coords) > 0 {
			c = e.Coords[0]
		}
		ex := fmt.Sprintf("D(%s, %s)", f, c)
		if len([]rune(c)) == 1 {
			ex = f + "_" + c + ", " + f + "_" + c + c + " or " + ex
		}
		parts = append(parts, "outputs "+strings.Join(e.Fields, ", ")+" and their derivatives ("+ex+")")
	}
	if len(e.Consts) > 0 {
		parts = append(parts, "parameters "+strings.Join(sortedKeys(e.Consts), ", "))
	}
	if len(e.Defs) > 0 {
		parts = append(parts, "definitions "+strings.Join(sortedKeys(e.Defs), ", "))
	}
	parts = append(parts, "the constant pi", "functions "+strings.Join(funcNames[:], ", "))
	if e.Normal != nil {
		parts = append(parts, "the normal derivative dn(output)")
	}
	return "known: " + strings.Join(parts, "; ")
}

// suggest names a known name within two edits of s.
func (e *Env) suggest(s string) string {
	best, bestD := "", 3
	for _, n := range e.names() {
		if d := editDistance(s, n, bestD); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := prev[j-1]
			if ra[i-1] != rb[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(rb)], limit)
}

// call parses name(args): a function, D(field, coords...) or dn(field).
func (p *parser) call(name token) (*Node, error) {
	open := p.tok
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if err := p.advance(); err != nil {
		return nil, err
	}
	switch name.text {
	case "D":
		return p.derivative(name, open)
	case "dn":
		return p.normal(name, open)
	}
	f, ok := funcByName(name.text)
	if !ok {
		what := "unknown function"
		if indexOf(p.env.names(), name.text) >= 0 {
			what = "not a function"
		}
		return nil, errorf(name.pos, "%s %s(...) (functions: %s, and D(output, coordinates...) and dn(output))", what, name.text, strings.Join(funcNames[:], ", "))
	}
	a, err := p.sum()
	if err != nil {
		return nil, err
	}
	if p.isOp(",") {
		return nil, errorf(p.tok.pos, "%s takes one argument", f)
	}
	if !p.isOp(")") {
		if p.tok.kind == tEOF {
			return nil, errorf(open.pos, "this '(' is never closed")
		}
		return nil, p.unexpected("')'")
	}
	return callAt(f, a, name.pos), p.advance()
}

// identList reads "name {, name} )" after an opening parenthesis.
func (p *parser) identList(open token) ([]token, error) {
	var ids []token
	for {
		if p.tok.kind != tIdent {
			if p.tok.kind == tEOF {
				return nil, errorf(open.pos, "this '(' is never closed")
			}
			return nil, errorf(p.tok.pos, "expected a name here, got %q", p.tok.text)
		}
		ids = append(ids, p.tok)
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isOp(")") {
			return ids, p.advance()
		}
		if !p.isOp(",") {
			if p.tok.kind == tEOF {
				return nil, errorf(open.pos, "this '(' is never closed")
			}
			return nil, errorf(p.tok.pos, "expected ',' or ')' here, got %q", p.tok.text)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

func (p *parser) field(t token, fn string) (int, error) {
	f := indexOf(p.env.Fields, t.text)
	if f < 0 {
		return 0, errorf(t.pos, "%s takes an output first, and %q is not one (outputs: %s)", fn, t.text, strings.Join(p.env.Fields, ", "))
	}
	return f, nil
}

// derivative parses the arguments of D(field, c1[, c2]).
func (p *parser) derivative(name, open token) (*Node, error) {
	ids, err := p.identList(open)
	if err != nil {
		return nil, err
	}
	f, err := p.field(ids[0], "D")
	if err != nil {
		return nil, err
	}
	var ks []int
	for _, t := range ids[1:] {
		k := indexOf(p.env.Coords, t.text)
		if k < 0 {
			return nil, errorf(t.pos, "%q is not a coordinate (coordinates: %s)", t.text, strings.Join(p.env.Coords, ", "))
		}
		ks = append(ks, k)
	}
	switch len(ks) {
	case 0:
		return nil, errorf(name.pos, "D(%s) names no coordinate: write D(%s, %s) for a derivative", ids[0].text, ids[0].text, p.env.Coords[0])
	case 1:
		return &Node{Kind: Load, Var: First(f, ks[0]), Pos: name.pos}, nil
	case 2:
		return &Node{Kind: Load, Var: Second(f, ks[0], ks[1]), Pos: name.pos}, nil
	}
	return nil, errorf(name.pos, "D of order %d: residuals read derivatives up to order %d (the network carries its value, gradient and second-order operators); write the PDE as a system of first- or second-order equations in more outputs", len(ks), MaxOrder)
}

// normal parses dn(f): the outward normal derivative Σ n_k ∂_k f of an
// output f, or of an expression of the coordinates (its exact derivative),
// such as a manufactured solution's Neumann data.
func (p *parser) normal(name, open token) (*Node, error) {
	arg, err := p.sum()
	if err != nil {
		return nil, err
	}
	if !p.isOp(")") {
		if p.tok.kind == tEOF {
			return nil, errorf(open.pos, "this '(' is never closed")
		}
		if p.isOp(",") {
			return nil, errorf(p.tok.pos, "dn takes one argument")
		}
		return nil, p.unexpected("')'")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	field := -1
	if arg.Kind == Load && arg.Var.Order == 0 && !arg.Var.IsCoord() {
		field = arg.Var.Field
	} else if Depends(arg, func(v Var) bool { return !v.IsCoord() }) {
		return nil, errorf(open.pos, "dn takes an output, dn(%s), or an expression of the coordinates only", p.env.Fields[0])
	}
	what := "the expression"
	if field >= 0 {
		what = p.env.Fields[field]
	}
	if p.env.Normal == nil {
		why := p.env.NoDn
		if why == "" {
			why = "this expression has no boundary"
		}
		return nil, errorf(name.pos, "dn(%s), the outward normal derivative, needs points on a face of the box or on a hole's boundary: %s", what, why)
	}
	var acc *Node
	for k, nk := range p.env.Normal {
		if nk == nil || nk.is(0) {
			continue
		}
		var d *Node
		if field >= 0 {
			d = &Node{Kind: Load, Var: First(field, k), Pos: name.pos}
		} else {
			d = Diff(arg, Coord(k))
		}
		t := mulAt(nk, d, name.pos)
		if acc == nil {
			acc = t
		} else {
			acc = addAt(acc, t, name.pos)
		}
	}
	if acc == nil {
		return &Node{Kind: Num, Pos: name.pos}, nil
	}
	return acc, nil
}
