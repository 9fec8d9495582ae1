package model

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// The fused backward pass (backFusedGo, one loop per point) gives the bits
// of the kernels one by one, for every problem whose blocks it takes, with
// tanh and with the activations whose derivatives Forward keeps, for a
// plain cotangent and per-block ones, on one thread and on two.
func TestFusedBackwardIsTheKernels(t *testing.T) {
	if !fusedKernels {
		t.Skip("the SIMD build keeps its vector kernels: no fused pass to compare")
	}
	type ev struct {
		name string
		s    *Setup
	}
	var evs []ev
	for _, act := range []string{"tanh", "sin", "softplus"} {
		for _, name := range []string{"wave", "poisson1d", "poisson2d"} {
			cfg, err := DefaultConfig(name)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Layers = append([]int{cfg.Layers[0], 9, 7}, cfg.Layers[len(cfg.Layers)-1])
			cfg.Activation = act
			s, err := NewSetup(cfg)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev{name + "/" + act, s})
		}
		for _, op := range []string{"u_x", "u_xx"} {
			s, err := OperatorSetup(1, op, []int{1, 9, 7, 1}, act)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev{"1d " + op + "/" + act, s})
		}
	}
	fused := 0
	for _, c := range evs {
		for _, procs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d", c.name, procs), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				pts, err := c.s.DrawPoints(3, 0, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				run := func(kernelsOnly bool) [][]float64 {
					e, err := c.s.NewEvaluator(pts, Options{})
					if err != nil {
						t.Fatal(err)
					}
					p := e.(*pinn)
					p.kernelsOnly = kernelsOnly
					lay := e.Layout()
					theta := c.s.InitTheta(5)
					r := make([]float64, lay.N)
					e.Forward(theta, r)
					out := [][]float64{make([]float64, lay.P)}
					per := make([][]float64, len(lay.Blocks))
					for b := range per {
						per[b] = make([]float64, lay.P)
					}
					e.Backward([]Cotangent{{V: randVec(11, lay.N), Dst: out[0]}, {V: r, PerBlock: per}})
					if !kernelsOnly {
						for _, g := range p.groups {
							if g.fused.ok {
								fused++
							}
						}
					}
					return append(out, per...)
				}
				want, got := run(true), run(false)
				for k := range want {
					for i := range want[k] {
						if math.Float64bits(got[k][i]) != math.Float64bits(want[k][i]) {
							t.Fatalf("gradient %d, parameter %d: fused %v, kernels %v", k, i, got[k][i], want[k][i])
						}
					}
				}
			})
		}
	}
	if fused == 0 {
		t.Fatal("no block took the fused pass")
	}
}

// fusedShapeOf takes one or two derivative streams and at most one
// operator of squares, each once; anything else runs kernel by kernel.
func TestFusedShape(t *testing.T) {
	if !fusedKernels {
		t.Skip("the SIMD build keeps its vector kernels")
	}
	for _, c := range []struct {
		ngrad int
		ops   [][]qterm
		ok    bool
	}{
		{1, nil, true},
		{2, nil, true},
		{2, [][]qterm{{{1, 1, -4}, {2, 2, 1}}}, true},
		{1, [][]qterm{{{1, 1, 1}}}, true},
		{2, [][]qterm{{{2, 2, 1}}}, true},
		{0, nil, false},
		{3, nil, false},
		{2, [][]qterm{{{1, 2, 2}}}, false},              // a mixed term
		{2, [][]qterm{{{1, 1, 1}, {1, 1, 2}}}, false},   // a square twice
		{2, [][]qterm{{{1, 1, 1}}, {{2, 2, 1}}}, false}, // two operators
		{1, [][]qterm{{{2, 2, 1}}}, false},              // a stream it does not have
	} {
		g := group{ngrad: c.ngrad, ops: c.ops}
		if sh := fusedShapeOf(&g); sh.ok != c.ok {
			t.Errorf("%d derivative streams, operators %v: ok %v, want %v", c.ngrad, c.ops, sh.ok, c.ok)
		}
	}
}
