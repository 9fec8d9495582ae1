package model

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func poisson2DJet(x []float64) jet {
	p := math.Pi
	sx, cx := math.Sin(p*x[0]), math.Cos(p*x[0])
	sy, cy := math.Sin(p*x[1]), math.Cos(p*x[1])
	return jet{
		u:    sx * sy,
		grad: []float64{p * cx * sy, p * sx * cy},
		hess: [][]float64{{-p * p * sx * sy, p * p * cx * cy}, {p * p * cx * cy, -p * p * sx * sy}},
	}
}

// The residual of both blocks vanishes on the exact solution, with its
// derivatives written out by hand; the points lie where their block says,
// a quarter of the boundary points on each side.
func TestPoisson2DResidualVanishesOnExactSolution(t *testing.T) {
	s := mustSetup(t, "poisson2d", nil)
	p := s.Problem
	if s.NumParams() != 2*32+32+32+1 {
		t.Errorf("p = %d, want 129 (2→32→1)", s.NumParams())
	}
	c, err := s.DrawPoints(3, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Counts(); got[0] != 900 || got[1] != 120 {
		t.Fatalf("default counts %v, want [900 120]", got)
	}
	sides := make([]int, 4)
	for b, def := range p.Blocks {
		bp := &c.Blocks[b]
		for i := 0; i < bp.Count(); i++ {
			x := bp.X[2*i : 2*i+2]
			switch def.Name {
			case "pde":
				if !(x[0] > 0 && x[0] < 1 && x[1] > 0 && x[1] < 1) {
					t.Fatalf("interior point %v outside (0,1)²", x)
				}
			case "boundary":
				switch {
				case x[1] == 0:
					sides[0]++
				case x[0] == 1:
					sides[1]++
				case x[1] == 1:
					sides[2]++
				case x[0] == 0:
					sides[3]++
				default:
					t.Fatalf("boundary point %v is not on the boundary", x)
				}
			}
			j := poisson2DJet(x)
			var exact [1]float64
			p.Exact(x, exact[:])
			if math.Abs(exact[0]-j.u) > 1e-15 {
				t.Fatalf("Exact and the hand-derived jet disagree at %v", x)
			}
			r := make([]float64, 1)
			def.F(x, streamsOf(def.Streams, j), r)
			// −Δu reaches 2π² ≈ 20; u vanishes to rounding on the boundary.
			if res := r[0] - bp.Y[i]; math.Abs(res) > 1e-13 {
				t.Errorf("block %s at %v: residual of the exact solution is %v", def.Name, x, res)
			}
		}
	}
	for k, n := range sides {
		if n != 30 {
			t.Errorf("side %d has %d boundary points, want 30", k, n)
		}
	}
}

// DF is the derivative of F, and the structured NTK equals J Jᵀ.
func TestPoisson2DJacobians(t *testing.T) {
	s := mustSetup(t, "poisson2d", []int{2, 6, 5, 1})
	for _, def := range s.Problem.Blocks {
		cols := def.Streams.Count()
		x := []float64{0.3, 0.7}
		u := randVec(uint64(cols), cols)
		jac := make([]float64, cols)
		def.DF(x, u, jac)
		const h = 1e-6
		r1, r2 := make([]float64, 1), make([]float64, 1)
		for k := 0; k < cols; k++ {
			up := append([]float64(nil), u...)
			um := append([]float64(nil), u...)
			up[k] += h
			um[k] -= h
			def.F(x, up, r1)
			def.F(x, um, r2)
			if fd := (r1[0] - r2[0]) / (2 * h); math.Abs(fd-jac[k]) > 1e-8 {
				t.Errorf("%s: ∂F/∂u_%d = %v, central differences %v", def.Name, k, jac[k], fd)
			}
		}
	}
	c, err := s.DrawPoints(4, 0, []int{7, 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lay := ev.Layout()
	n, p := lay.N, lay.P
	ev.Forward(s.InitTheta(4), make([]float64, n))
	J := make([]float64, n*p)
	if err := Jacobian(ev, J, 1<<30); err != nil {
		t.Fatal(err)
	}
	Jm := mat.NewDense(n, p, J)
	var want mat.Dense
	want.Mul(Jm, Jm.T())
	K := make([]float64, n*n)
	if err := ev.NTK(K); err != nil {
		t.Fatal(err)
	}
	scale := mat.Norm(&want, 2)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if d := math.Abs(K[i*n+j] - want.At(i, j)); d > 1e-12*scale {
				t.Fatalf("K[%d,%d] = %v, J Jᵀ = %v", i, j, K[i*n+j], want.At(i, j))
			}
		}
	}
}

// The relative L² error of a constant solution u ≡ c against the exact
// solution, computed here by hand on a grid: c = 0 gives exactly 1.
func TestSolutionErrorsRelativeL2(t *testing.T) {
	s := mustSetup(t, "poisson2d", nil)
	var x []float64
	for i := 0; i <= 10; i++ {
		for j := 0; j <= 10; j++ {
			x = append(x, float64(i)/10, float64(j)/10)
		}
	}
	theta := make([]float64, s.NumParams())
	for _, c := range []float64{0, 0.3} {
		theta[len(theta)-1] = c // the output bias: u ≡ c
		e, ok := s.SolutionErrors(theta, x)
		if !ok {
			t.Fatal("poisson2d has an exact solution")
		}
		var num, den, mx float64
		u := make([]float64, 1)
		for i := 0; i < len(x)/2; i++ {
			s.Problem.Exact(x[2*i:2*i+2], u)
			num += (c - u[0]) * (c - u[0])
			den += u[0] * u[0]
			mx = math.Max(mx, math.Abs(c-u[0]))
		}
		if want := math.Sqrt(num / den); math.Abs(e.L2-want) > 1e-15*want {
			t.Errorf("u ≡ %v: relative L² error %v, want %v", c, e.L2, want)
		}
		if math.Abs(e.Max-mx) > 1e-15 || math.Abs(e.RMS-math.Sqrt(num/float64(len(x)/2))) > 1e-15 {
			t.Errorf("u ≡ %v: max %v, RMS %v", c, e.Max, e.RMS)
		}
		if c == 0 && e.L2 != 1 {
			t.Errorf("u ≡ 0: relative L² error %v, want exactly 1", e.L2)
		}
	}
}
