package model

import (
	"math"
	"testing"
)

// kernelAt returns the NTK of the operator problem (dim, op) at the given
// points (count×dim) for θ drawn from seed 3: the same network for every op.
func kernelAt(t *testing.T, dim int, op string, layers []int, x []float64) []float64 {
	t.Helper()
	s, err := OperatorSetup(dim, op, layers, "tanh")
	if err != nil {
		t.Fatal(err)
	}
	c := &Collocation{Blocks: []BlockPoints{{Name: "T", Dim: dim, X: x, Y: make([]float64, len(x)/dim)}}}
	ev, err := s.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := ev.Layout().N
	ev.Forward(s.InitTheta(3), make([]float64, n))
	K := make([]float64, n*n)
	if err := ev.NTK(K); err != nil {
		t.Fatal(err)
	}
	return K
}

// K_T(x, x') = T_x T_x' K(x, x') (Gan et al.): the kernel of the operator
// problem equals finite differences of the plain kernel in both arguments,
// for u_x, u_xx and, in 2-D, u_x and the Laplacian.
func TestOperatorKernelsAreDerivativesOfK(t *testing.T) {
	type stencil struct {
		off []float64 // offsets along each coordinate, per node
		w   []float64
	}
	h := 1e-3
	for _, tc := range []struct {
		dim int
		op  string
		st  stencil
		tol float64
	}{
		{1, "u_x", stencil{[]float64{h, -h}, []float64{1 / (2 * h), -1 / (2 * h)}}, 1e-5},
		{1, "u_xx", stencil{[]float64{h, 0, -h}, []float64{1 / (h * h), -2 / (h * h), 1 / (h * h)}}, 1e-3},
		{2, "u_x", stencil{[]float64{h, 0, -h, 0}, []float64{1 / (2 * h), -1 / (2 * h)}}, 1e-5},
		{2, "laplacian", stencil{[]float64{0, 0, h, 0, -h, 0, 0, h, 0, -h}, []float64{-4 / (h * h), 1 / (h * h), 1 / (h * h), 1 / (h * h), 1 / (h * h)}}, 1e-3},
	} {
		t.Run(tc.op+"-"+string(rune('0'+tc.dim)), func(t *testing.T) {
			layers := []int{tc.dim, 9, 7, 1}
			pts := [][]float64{{0.3, 0.6}, {0.75, 0.2}}
			m := len(tc.st.w)
			// Plain-kernel points: every stencil node of both base points.
			var x []float64
			for _, p := range pts {
				for k := 0; k < m; k++ {
					for j := 0; j < tc.dim; j++ {
						x = append(x, p[j]+tc.st.off[k*tc.dim+j])
					}
				}
			}
			K := kernelAt(t, tc.dim, "u", layers, x)
			nx := len(pts) * m
			var base []float64
			for _, p := range pts {
				base = append(base, p[:tc.dim]...)
			}
			KT := kernelAt(t, tc.dim, tc.op, layers, base)
			for a := range pts {
				for b := range pts {
					var fd float64
					for k := 0; k < m; k++ {
						for l := 0; l < m; l++ {
							fd += tc.st.w[k] * tc.st.w[l] * K[(a*m+k)*nx+b*m+l]
						}
					}
					got := KT[a*len(pts)+b]
					if math.Abs(got-fd) > tc.tol*math.Abs(got) {
						t.Errorf("K_T(%v, %v) = %v, finite differences of K give %v", pts[a][:tc.dim], pts[b][:tc.dim], got, fd)
					}
				}
			}
		})
	}
	if _, err := OperatorSetup(1, "laplacian", []int{1, 4, 1}, "tanh"); err == nil {
		t.Error("a 2-D operator in 1-D: no error")
	}
	if _, err := OperatorSetup(3, "u", []int{3, 4, 1}, "tanh"); err == nil {
		t.Error("3-D: no error")
	}
}

// The operators' problems draw the same points from the same seed.
func TestOperatorSetupsShareThePoints(t *testing.T) {
	var first []float64
	for _, op := range OperatorNames(2) {
		s, err := OperatorSetup(2, op, []int{2, 5, 1}, "tanh")
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.DrawPoints(7, 0, []int{30}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = c.Blocks[0].X
			continue
		}
		for i, v := range c.Blocks[0].X {
			if v != first[i] {
				t.Fatalf("%s: point coordinate %d is %v, the first operator's %v", op, i, v, first[i])
			}
		}
	}
}
