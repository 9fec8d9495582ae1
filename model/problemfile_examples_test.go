package model

import (
	"math"
	"path/filepath"
	"testing"
)

// TestExampleSolutionsSolve checks the example problems whose solution is
// known: their exact solution makes every block's residual vanish. The
// streams are the exact solution's derivatives by central differences
// (step 1e−4: error ≈ 1e−8 times its fourth derivatives, and 1e−16/h² ≈
// 1e−8 of rounding), so a residual must be below 1e−4 of the terms' scale.
func TestExampleSolutionsSolve(t *testing.T) {
	files, err := filepath.Glob("../problems/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no problem files: %v", err)
	}
	for _, f := range files {
		cfg, err := DefaultConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := s.Problem
		if p.Exact == nil || p.Reference != nil || p.Name == "qtensor" {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			c, err := s.DrawPoints(1, 0, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			d, O := p.Dim, p.Outputs
			const h = 1e-4
			at := func(x []float64, dx ...float64) []float64 { // dx: k, amount, ...
				y := append([]float64(nil), x...)
				for i := 0; i < len(dx); i += 2 {
					y[int(dx[i])] += dx[i+1]
				}
				u := make([]float64, O)
				p.Exact(y, u)
				return u
			}
			for b, def := range p.Blocks {
				bp := &c.Blocks[b]
				var worst, scale float64
				for i := 0; i < min(bp.Count(), 60); i++ {
					x := bp.X[i*d : (i+1)*d]
					u0 := at(x)
					grad := make([][]float64, d)   // grad[k][o]
					hess := make([][][]float64, d) // hess[k][l][o]
					for k := 0; k < d; k++ {
						hess[k] = make([][]float64, d)
						p1, m1 := at(x, float64(k), h), at(x, float64(k), -h)
						grad[k] = make([]float64, O)
						hess[k][k] = make([]float64, O)
						for o := range O {
							grad[k][o] = (p1[o] - m1[o]) / (2 * h)
							hess[k][k][o] = (p1[o] - 2*u0[o] + m1[o]) / (h * h)
						}
					}
					for k := 0; k < d; k++ {
						for l := k + 1; l < d; l++ {
							pp, pm := at(x, float64(k), h, float64(l), h), at(x, float64(k), h, float64(l), -h)
							mp, mm := at(x, float64(k), -h, float64(l), h), at(x, float64(k), -h, float64(l), -h)
							hess[k][l] = make([]float64, O)
							for o := range O {
								hess[k][l][o] = (pp[o] - pm[o] - mp[o] + mm[o]) / (4 * h * h)
							}
							hess[l][k] = hess[k][l]
						}
					}
					st := def.Streams
					u := make([]float64, st.Count()*O)
					copy(u, u0)
					for gi, k := range st.Grad {
						copy(u[(1+gi)*O:], grad[k])
					}
					for j, op := range st.Ops {
						row := u[(1+len(st.Grad)+j)*O:]
						for o := range O {
							var v float64
							for k := 0; k < d; k++ {
								if op.B != nil {
									v += op.B[k] * grad[k][o]
								}
								for l := 0; l < d; l++ {
									if op.C != nil {
										v += op.C[k*d+l] * hess[k][l][o]
									}
								}
							}
							row[o] = v
						}
					}
					r := make([]float64, def.Components)
					def.F(x, u, r)
					for comp := range r {
						res := r[comp] - bp.Y[i*def.Components+comp]
						worst = math.Max(worst, math.Abs(res))
					}
					for _, v := range u {
						scale = math.Max(scale, math.Abs(v))
					}
				}
				if worst > 1e-4*math.Max(1, scale) {
					t.Errorf("block %s: the exact solution leaves residuals up to %.3g (streams up to %.3g)", def.Name, worst, scale)
				}
			}
		})
	}
}
