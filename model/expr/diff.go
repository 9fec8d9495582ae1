package expr

// Diff returns the exact derivative of n along the variable v, built with
// the simplifying constructors (a constant derivative is a Num node).
// Variables are independent: the derivative of u_x along u is zero, as the
// chain rule through a network's streams needs.
func Diff(n *Node, v Var) *Node {
	memo := map[*Node]*Node{}
	var d func(*Node) *Node
	d = func(m *Node) *Node {
		if r, ok := memo[m]; ok {
			return r
		}
		r := diff(m, v, d)
		memo[m] = r
		return r
	}
	return d(n)
}

func diff(m *Node, v Var, d func(*Node) *Node) *Node {
	zero := &Node{Kind: Num, Pos: m.Pos}
	switch m.Kind {
	case Num:
		return zero
	case Load:
		if m.Var == v {
			return &Node{Kind: Num, Num: 1, Pos: m.Pos}
		}
		return zero
	case Neg:
		return NegOf(d(m.A))
	case Add:
		return addAt(d(m.A), d(m.B), m.Pos)
	case Sub:
		return subAt(d(m.A), d(m.B), m.Pos)
	case Mul:
		da, db := d(m.A), d(m.B)
		return addAt(mulAt(da, m.B, m.Pos), mulAt(m.A, db, m.Pos), m.Pos)
	case Div:
		da, db := d(m.A), d(m.B)
		if db.is(0) {
			return divAt(da, m.B, m.Pos)
		}
		// (a/b)' = a'/b − (a/b)·b'/b
		return subAt(divAt(da, m.B, m.Pos), divAt(mulAt(m, db, m.Pos), m.B, m.Pos), m.Pos)
	case Pow:
		da, db := d(m.A), d(m.B)
		if db.is(0) {
			if da.is(0) {
				return zero
			}
			// (a^c)' = c·a^(c−1)·a'
			if c, ok := m.B.IsConst(); ok {
				return mulAt(mulAt(m.B, powAt(m.A, &Node{Kind: Num, Num: c - 1, Pos: m.Pos}, m.Pos), m.Pos), da, m.Pos)
			}
			return mulAt(mulAt(m.B, powAt(m.A, subAt(m.B, &Node{Kind: Num, Num: 1, Pos: m.Pos}, m.Pos), m.Pos), m.Pos), da, m.Pos)
		}
		// (a^b)' = a^b·(b'·log a + b·a'/a)
		return mulAt(m, addAt(mulAt(db, callAt(Log, m.A, m.Pos), m.Pos), divAt(mulAt(m.B, da, m.Pos), m.A, m.Pos), m.Pos), m.Pos)
	case Call:
		da := d(m.A)
		if da.is(0) {
			return zero
		}
		return mulAt(derivativeOf(m), da, m.Pos)
	}
	return zero
}

// derivativeOf is f'(a) for the call m = f(a).
func derivativeOf(m *Node) *Node {
	a, p := m.A, m.Pos
	one := &Node{Kind: Num, Num: 1, Pos: p}
	switch m.Fn {
	case Sin:
		return callAt(Cos, a, p)
	case Cos:
		return NegOf(callAt(Sin, a, p))
	case Tan: // 1 + tan²
		return addAt(one, mulAt(m, m, p), p)
	case Exp:
		return m
	case Log:
		return divAt(one, a, p)
	case Sqrt: // 1/(2√a)
		return divAt(&Node{Kind: Num, Num: 0.5, Pos: p}, m, p)
	case Tanh: // 1 − tanh²
		return subAt(one, mulAt(m, m, p), p)
	case Sinh:
		return callAt(Cosh, a, p)
	case Cosh:
		return callAt(Sinh, a, p)
	case Abs:
		return callAt(Sign, a, p)
	}
	return &Node{Kind: Num, Pos: p} // Sign: zero almost everywhere
}
