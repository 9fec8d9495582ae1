package model

import (
	"math"
	"reflect"
	"testing"
)

// builtinAndFile returns the setups of a built-in problem and of its file
// in problems/, with the network given (nil: the defaults).
func builtinAndFile(t *testing.T, name string, layers []int) (builtin, file *Setup) {
	t.Helper()
	for i, src := range []string{name, "../problems/" + name + ".toml"} {
		cfg, err := DefaultConfig(src)
		if err != nil {
			t.Fatal(err)
		}
		if layers != nil {
			cfg.Layers = layers
		}
		s, err := NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			builtin = s
		} else {
			file = s
		}
	}
	return builtin, file
}

// closeTo reports whether got matches want to 1e−13 relative to want's
// largest entry, and whether it matches to the bit.
func closeTo(got, want []float64) (close, bits bool) {
	if len(got) != len(want) {
		return false, false
	}
	var scale, diff float64
	bits = true
	for i := range want {
		scale = math.Max(scale, math.Abs(want[i]))
		diff = math.Max(diff, math.Abs(got[i]-want[i]))
		bits = bits && math.Float64bits(got[i]) == math.Float64bits(want[i])
	}
	return diff <= 1e-13*scale, bits
}

func checkClose(t *testing.T, what string, got, want []float64) {
	t.Helper()
	ok, bits := closeTo(got, want)
	if !ok {
		t.Errorf("%s: the file's differ from the built-in's beyond 1e-13 relative", what)
		return
	}
	t.Logf("%s: agree %s", what, map[bool]string{true: "to the bit", false: "to 1e-13 relative"}[bits])
}

// TestBuiltinsAsFiles checks that problems/*.toml give the built-in
// problems: the same defaults, streams, points and targets, and the same
// residuals, Jacobian products, exact NTK and NTK weights.
func TestBuiltinsAsFiles(t *testing.T) {
	small := map[string][]int{"wave": {2, 24, 24, 1}, "qtensor": {3, 16, 16, 2}}
	for _, name := range []string{"poisson1d", "poisson2d", "wave", "qtensor"} {
		t.Run(name, func(t *testing.T) {
			bi, fi := builtinAndFile(t, name, nil)
			// Defaults: the network, the input scaling, the parameters.
			bc, fc := bi.Config, fi.Config
			fc.Text, fc.Files = "", nil
			if !reflect.DeepEqual(bc, fc) {
				t.Errorf("configurations differ:\n built-in %+v\n file     %+v", bc, fc)
			}
			bp, fp := bi.Problem, fi.Problem
			if bp.Dim != fp.Dim || bp.Outputs != fp.Outputs || !reflect.DeepEqual(bp.Coords, fp.Coords) || !reflect.DeepEqual(bp.Box, fp.Box) ||
				!reflect.DeepEqual(bp.OutputNames, fp.OutputNames) || bp.Resample != fp.Resample {
				t.Errorf("shapes differ")
			}
			if len(bp.Blocks) != len(fp.Blocks) {
				t.Fatalf("%d blocks, built-in %d", len(fp.Blocks), len(bp.Blocks))
			}
			for b := range bp.Blocks {
				x, y := bp.Blocks[b], fp.Blocks[b]
				if x.Name != y.Name || x.Count != y.Count || x.Components != y.Components || x.Fixed != y.Fixed {
					t.Errorf("block %s: name, count, components or fixed differ: %+v, %+v", x.Name, x, y)
				}
				if !sameStreams(x.Streams, y.Streams) {
					t.Errorf("block %s: streams %+v, built-in %+v", x.Name, y.Streams, x.Streams)
				}
			}
			if (bp.Exact == nil) != (fp.Exact == nil) && name != "qtensor" {
				t.Errorf("exact solution: built-in %v, file %v", bp.Exact != nil, fp.Exact != nil)
			}
			if fp.Exact != nil {
				g := fp.ErrorPoints(11)
				var ub, uf []float64
				for i := 0; i < len(g); i += fp.Dim {
					u1, u2 := make([]float64, bp.Outputs), make([]float64, fp.Outputs)
					bp.Exact(g[i:i+fp.Dim], u1)
					fp.Exact(g[i:i+fp.Dim], u2)
					ub, uf = append(ub, u1...), append(uf, u2...)
				}
				checkClose(t, "exact solution", uf, ub)
			}
			// Points and targets from the same seeds, at two steps.
			for _, step := range []uint32{0, 7} {
				cb, err := bi.DrawPoints(5, step, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				cf, err := fi.DrawPoints(5, step, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				for b := range cb.Blocks {
					if _, bits := closeTo(cf.Blocks[b].X, cb.Blocks[b].X); !bits {
						t.Errorf("step %d block %s: the points differ", step, cb.Blocks[b].Name)
					}
					checkClose(t, "targets of "+cb.Blocks[b].Name, cf.Blocks[b].Y, cb.Blocks[b].Y)
				}
			}
			// Residuals and derivatives, on a small network where the exact
			// NTK of the default one would be slow.
			if l, ok := small[name]; ok {
				bi, fi = builtinAndFile(t, name, l)
			}
			compareEvaluators(t, bi, fi)
		})
	}
}

// sameStreams compares streams, operator names aside.
func sameStreams(a, b Streams) bool {
	if !reflect.DeepEqual(a.Grad, b.Grad) && !(len(a.Grad) == 0 && len(b.Grad) == 0) {
		return false
	}
	if len(a.Ops) != len(b.Ops) {
		return false
	}
	for i := range a.Ops {
		x, y := a.Ops[i], b.Ops[i]
		if !reflect.DeepEqual(x.B, y.B) || !reflect.DeepEqual(x.C, y.C) {
			return false
		}
	}
	return true
}

// compareEvaluators checks R, Jᵀv, Jw, diag K, K and the weights of two
// setups of the same residual at the same θ and points.
func compareEvaluators(t *testing.T, bi, fi *Setup) {
	t.Helper()
	c, err := bi.DrawPoints(11, 3, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	theta := bi.InitTheta(4)
	if !reflect.DeepEqual(theta, fi.InitTheta(4)) {
		t.Fatal("initial θ differ")
	}
	eb, err := bi.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := fi.DrawPoints(11, 3, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := fi.NewEvaluator(cf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, p := eb.Layout().N, eb.Layout().P
	if ef.Layout().N != n || ef.Layout().P != p {
		t.Fatalf("layouts differ: n %d, p %d; built-in n %d, p %d", ef.Layout().N, ef.Layout().P, n, p)
	}
	rb, rf := make([]float64, n), make([]float64, n)
	eb.Forward(theta, rb)
	ef.Forward(theta, rf)
	checkClose(t, "residuals", rf, rb)

	v := make([]float64, n)
	for i := range v {
		v[i] = math.Sin(float64(3*i + 1))
	}
	gb, gf := make([]float64, p), make([]float64, p)
	eb.Backward([]Cotangent{{V: v, Dst: gb}})
	ef.Backward([]Cotangent{{V: v, Dst: gf}})
	checkClose(t, "Jᵀv", gf, gb)

	w := make([]float64, p)
	for i := range w {
		w[i] = math.Cos(float64(i))
	}
	jb, jf := make([]float64, n), make([]float64, n)
	eb.JVP(w, jb)
	ef.JVP(w, jf)
	checkClose(t, "Jw", jf, jb)

	kb, kf := make([]float64, n*n), make([]float64, n*n)
	if err := eb.NTK(kb); err != nil {
		t.Fatal(err)
	}
	if err := ef.NTK(kf); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "exact K", kf, kb)

	db, df := make([]float64, n), make([]float64, n)
	eb.Diagonal(db)
	ef.Diagonal(df)
	B := len(eb.Layout().Blocks)
	tb, tf := make([]float64, B), make([]float64, B)
	BlockTraces(eb, db, tb)
	BlockTraces(ef, df, tf)
	lb, lf := make([]float64, B), make([]float64, B)
	Weights(tb, lb)
	Weights(tf, lf)
	checkClose(t, "NTK weights", lf, lb)
}
