package expr_test

import (
	"fmt"

	"ntkbus/model/expr"
)

// Burgers' residual: parse it, differentiate it along u_x and compile both.
func Example() {
	env := &expr.Env{Coords: []string{"x", "t"}, Fields: []string{"u"}, Consts: map[string]float64{"nu": 0.01}}
	r, err := expr.Parse("u_t + u*u_x - nu*u_xx", env)
	if err != nil {
		fmt.Println(err)
		return
	}
	d := expr.Diff(r, expr.First(0, 0))
	fmt.Println("∂R/∂u_x =", expr.Format(d, env.Coords, env.Fields))
	fmt.Println("∂R/∂u_xx =", expr.Format(expr.Diff(r, expr.Second(0, 0, 0)), env.Coords, env.Fields))

	// Streams of the output at a point: u, u_x, u_t, u_xx.
	slot := map[expr.Var]int{expr.Value(0): 0, expr.First(0, 0): 1, expr.First(0, 1): 2, expr.Second(0, 0, 0): 3}
	f, err := expr.Compile(r, func(v expr.Var) (expr.Slot, error) {
		if v.IsCoord() {
			return expr.Slot{In: 0, Index: v.K}, nil
		}
		return expr.Slot{In: 1, Index: slot[v]}, nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("R =", f([]float64{0.5, 0.1}, []float64{2, 3, 4, 100}))

	_, err = expr.Parse("u_t + u*u_xxx", env)
	fmt.Println(err)
	// Output:
	// ∂R/∂u_x = u
	// ∂R/∂u_xx = -0.01
	// R = 9
	// 1:9: u_xxx is a derivative of order 3: residuals read derivatives up to order 2 (the network carries its value, gradient and second-order operators); write the PDE as a system of first- or second-order equations in more outputs
}
