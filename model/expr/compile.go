package expr

import (
	"fmt"
	"math"
)

// Fn is a compiled expression: its value from two input vectors a and b,
// read where Compile's binding says. It does not allocate.
type Fn func(a, b []float64) float64

// Slot says where a variable is read: element Index of input In (0: a, 1: b).
type Slot struct {
	In, Index int
}

// Compile turns n into a closure tree. bind gives every variable n reads its
// slot, or an error (a variable the caller does not provide). Shared
// subtrees are compiled once each use; Parse bounds the tree's size.
func Compile(n *Node, bind func(Var) (Slot, error)) (Fn, error) {
	if s := Size(n, MaxNodes+1); s > MaxNodes {
		return nil, fmt.Errorf("expression of more than %d operations", MaxNodes)
	}
	c := compiler{bind: bind}
	f := c.compile(n)
	if c.err != nil {
		return nil, c.err
	}
	return f, nil
}

type compiler struct {
	bind func(Var) (Slot, error)
	err  error
}

func (c *compiler) compile(n *Node) Fn {
	switch n.Kind {
	case Num:
		v := n.Num
		return func(_, _ []float64) float64 { return v }
	case Load:
		s, err := c.bind(n.Var)
		if err != nil {
			if c.err == nil {
				c.err = &Error{Pos: n.Pos, Msg: err.Error()}
			}
			return nil
		}
		i := s.Index
		if s.In == 0 {
			return func(a, _ []float64) float64 { return a[i] }
		}
		return func(_, b []float64) float64 { return b[i] }
	case Neg:
		f := c.compile(n.A)
		return func(a, b []float64) float64 { return -f(a, b) }
	case Call:
		return c.call(n.Fn, c.compile(n.A))
	case Pow:
		if e, ok := n.B.IsConst(); ok {
			return c.powConst(c.compile(n.A), e)
		}
		f, g := c.compile(n.A), c.compile(n.B)
		return func(a, b []float64) float64 { return math.Pow(f(a, b), g(a, b)) }
	}
	return c.binary(n)
}

// binary compiles + − · /, with the common case of a constant operand
// specialized.
func (c *compiler) binary(n *Node) Fn {
	if k, ok := n.B.IsConst(); ok {
		f := c.compile(n.A)
		switch n.Kind {
		case Add:
			return func(a, b []float64) float64 { return f(a, b) + k }
		case Sub:
			return func(a, b []float64) float64 { return f(a, b) - k }
		case Mul:
			return func(a, b []float64) float64 { return f(a, b) * k }
		case Div:
			return func(a, b []float64) float64 { return f(a, b) / k }
		}
	}
	if k, ok := n.A.IsConst(); ok {
		g := c.compile(n.B)
		switch n.Kind {
		case Add:
			return func(a, b []float64) float64 { return k + g(a, b) }
		case Sub:
			return func(a, b []float64) float64 { return k - g(a, b) }
		case Mul:
			return func(a, b []float64) float64 { return k * g(a, b) }
		case Div:
			return func(a, b []float64) float64 { return k / g(a, b) }
		}
	}
	f, g := c.compile(n.A), c.compile(n.B)
	switch n.Kind {
	case Add:
		return func(a, b []float64) float64 { return f(a, b) + g(a, b) }
	case Sub:
		return func(a, b []float64) float64 { return f(a, b) - g(a, b) }
	case Mul:
		return func(a, b []float64) float64 { return f(a, b) * g(a, b) }
	case Div:
		return func(a, b []float64) float64 { return f(a, b) / g(a, b) }
	}
	if c.err == nil {
		c.err = &Error{Pos: n.Pos, Msg: fmt.Sprintf("unknown node kind %d", n.Kind)}
	}
	return nil
}

// powConst compiles f^e as powConst evaluates it.
func (c *compiler) powConst(f Fn, e float64) Fn {
	switch e {
	case 2:
		return func(a, b []float64) float64 { x := f(a, b); return x * x }
	case 3:
		return func(a, b []float64) float64 { x := f(a, b); return x * x * x }
	case 4:
		return func(a, b []float64) float64 { x := f(a, b); x2 := x * x; return x2 * x2 }
	case -1:
		return func(a, b []float64) float64 { return 1 / f(a, b) }
	case -2:
		return func(a, b []float64) float64 { x := f(a, b); return 1 / (x * x) }
	case 0.5:
		return func(a, b []float64) float64 { return math.Sqrt(f(a, b)) }
	}
	return func(a, b []float64) float64 { return math.Pow(f(a, b), e) }
}

func (c *compiler) call(fn Func, f Fn) Fn {
	switch fn {
	case Sin:
		return func(a, b []float64) float64 { return math.Sin(f(a, b)) }
	case Cos:
		return func(a, b []float64) float64 { return math.Cos(f(a, b)) }
	case Tan:
		return func(a, b []float64) float64 { return math.Tan(f(a, b)) }
	case Exp:
		return func(a, b []float64) float64 { return math.Exp(f(a, b)) }
	case Log:
		return func(a, b []float64) float64 { return math.Log(f(a, b)) }
	case Sqrt:
		return func(a, b []float64) float64 { return math.Sqrt(f(a, b)) }
	case Tanh:
		return func(a, b []float64) float64 { return math.Tanh(f(a, b)) }
	case Sinh:
		return func(a, b []float64) float64 { return math.Sinh(f(a, b)) }
	case Cosh:
		return func(a, b []float64) float64 { return math.Cosh(f(a, b)) }
	case Abs:
		return func(a, b []float64) float64 { return math.Abs(f(a, b)) }
	case Sign:
		return func(a, b []float64) float64 { return sign(f(a, b)) }
	}
	if c.err == nil {
		c.err = fmt.Errorf("unknown function %d", fn)
	}
	return nil
}

// Eval evaluates n by walking the tree, with the variables' values from
// val: the reference the compiled closures are tested against.
func Eval(n *Node, val func(Var) float64) float64 {
	switch n.Kind {
	case Num:
		return n.Num
	case Load:
		return val(n.Var)
	case Neg:
		return -Eval(n.A, val)
	case Call:
		return n.Fn.apply(Eval(n.A, val))
	}
	a, b := Eval(n.A, val), Eval(n.B, val)
	switch n.Kind {
	case Add:
		return a + b
	case Sub:
		return a - b
	case Mul:
		return a * b
	case Div:
		return a / b
	case Pow:
		if _, ok := n.B.IsConst(); ok {
			return powConst(a, b)
		}
		return math.Pow(a, b)
	}
	return math.NaN()
}
