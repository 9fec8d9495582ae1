package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// A problem file with the forms the compiler must take apart: a nonlinear
// system with one operator stream per output (steady Navier–Stokes), second
// derivatives that enter nonlinearly or with varying coefficients (their
// own streams), a mixed derivative with a constant coefficient, and the
// normal derivative on faces, on a disk's circle and on a box hole's faces.
const formsProblem = `name = "forms"
coordinates = ["x", "y"]
outputs = ["u", "v", "p"]

[domain]
x = [0.0, 1.0]
y = [0.0, 2.0]

[[hole]]
name = "disk"
center = [0.3, 0.5]
radius = 0.15

[[hole]]
name = "slot"
min = [0.6, 1.2]
max = [0.8, 1.6]

[parameters]
Re = 20.0

[definitions]
lap_u = "u_xx + u_yy"

[network]
layers = [2, 12, 12, 3]

[[block]]
name = "ns"
on = "interior"
points = 7
residual = [
  "u*u_x + v*u_y + p_x - lap_u/Re",
  "u*v_x + v*v_y + p_y - (v_xx + v_yy)/Re",
  "u_x + v_y",
]

[[block]]
name = "nonlinear"
on = "interior"
points = 6
residual = ["u_xx*u_yy - u_xy^2 + exp(x)*p", "2*v_xy + x*v_yy + sin(v_x) - y"]

[[block]]
name = "faces"
on = ["x = 0", "x = 1", "y = 2"]
points = 9
residual = "dn(u) + 3*u - x*y"

[[block]]
name = "disk"
on = "hole disk"
points = 5
residual = "dn(v) + v*u"

[[block]]
name = "slot"
on = "hole slot"
points = 8
residual = "dn(p) - 1"
`

// derivs are the value, gradient and Hessian of every output at a point,
// by central differences of the network's predictions.
type derivs struct {
	u  []float64     // outputs
	d  [][]float64   // d[o][k]
	dd [][][]float64 // dd[o][k][l]
}

func fdDerivs(s *Setup, theta, x []float64, h float64) derivs {
	d, O := s.Problem.Dim, s.Problem.Outputs
	at := func(dx []float64) []float64 {
		y := append([]float64(nil), x...)
		for k := range y {
			y[k] += dx[k]
		}
		u := make([]float64, O)
		s.Predict(theta, y, u)
		return u
	}
	shift := func(pairs ...float64) []float64 { // k, amount, k, amount
		dx := make([]float64, d)
		for i := 0; i < len(pairs); i += 2 {
			dx[int(pairs[i])] += pairs[i+1]
		}
		return dx
	}
	r := derivs{u: at(shift())}
	r.d, r.dd = make([][]float64, O), make([][][]float64, O)
	for o := 0; o < O; o++ {
		r.d[o] = make([]float64, d)
		r.dd[o] = make([][]float64, d)
		for k := 0; k < d; k++ {
			r.dd[o][k] = make([]float64, d)
		}
	}
	for k := 0; k < d; k++ {
		p, m := at(shift(float64(k), h)), at(shift(float64(k), -h))
		for o := 0; o < O; o++ {
			r.d[o][k] = (p[o] - m[o]) / (2 * h)
			r.dd[o][k][k] = (p[o] - 2*r.u[o] + m[o]) / (h * h)
		}
		for l := k + 1; l < d; l++ {
			pp, pm := at(shift(float64(k), h, float64(l), h)), at(shift(float64(k), h, float64(l), -h))
			mp, mm := at(shift(float64(k), -h, float64(l), h)), at(shift(float64(k), -h, float64(l), -h))
			for o := 0; o < O; o++ {
				v := (pp[o] - pm[o] - mp[o] + mm[o]) / (4 * h * h)
				r.dd[o][k][l], r.dd[o][l][k] = v, v
			}
		}
	}
	return r
}

// TestFileResidualsAgainstFiniteDifferences checks the residuals of the
// forms problem against the same equations written out in Go, on the
// network's derivatives by central differences (step 1e−3: truncation
// error ≈ 1e−6 times the network's fourth derivatives, rounding ≈ 1e−16/h²
// ≈ 1e−10; the agreement asked is 1e−5 relative to the residuals' scale).
func TestFileResidualsAgainstFiniteDifferences(t *testing.T) {
	cfg, err := DefaultConfig(writeProblem(t, formsProblem, nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Problem
	// The streams the compiler chose.
	ns := p.Blocks[0].Streams
	if len(ns.Grad) != 2 || len(ns.Ops) != 1 {
		t.Errorf("ns block: streams %+v, want the gradient and one operator −Δ/Re", ns)
	}
	// ∂xx, ∂xy and ∂yy alone for u_xx*u_yy − u_xy² (and x*v_yy), and
	// 2∂x∂y for 2*v_xy, whose coefficient is a constant.
	nl := p.Blocks[1].Streams
	var names []string
	for _, op := range nl.Ops {
		names = append(names, op.Name)
	}
	if got := strings.Join(names, ", "); got != "∂x∂x, ∂x∂y, ∂y∂y, 2∂x∂y" || len(nl.Grad) != 2 {
		t.Errorf("nonlinear block: gradient along %v and operators %s", nl.Grad, got)
	}
	c, err := s.DrawPoints(3, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	theta := s.InitTheta(8)
	for i := range theta { // a less flat network than at initialization
		theta[i] *= 1.5
	}
	ev, err := s.NewEvaluator(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := make([]float64, ev.Layout().N)
	ev.Forward(theta, r)
	const Re = 20.0
	want := func(block string, x []float64, g derivs) []float64 {
		u, v, pp := g.u[0], g.u[1], g.u[2]
		switch block {
		case "ns":
			return []float64{
				u*g.d[0][0] + v*g.d[0][1] + g.d[2][0] - (g.dd[0][0][0]+g.dd[0][1][1])/Re,
				u*g.d[1][0] + v*g.d[1][1] + g.d[2][1] - (g.dd[1][0][0]+g.dd[1][1][1])/Re,
				g.d[0][0] + g.d[1][1],
			}
		case "nonlinear":
			return []float64{
				g.dd[0][0][0]*g.dd[0][1][1] - g.dd[0][0][1]*g.dd[0][0][1] + math.Exp(x[0])*pp,
				2*g.dd[1][0][1] + x[0]*g.dd[1][1][1] + math.Sin(g.d[1][0]) - x[1],
			}
		case "faces":
			var dn float64
			switch {
			case x[0] == 0:
				dn = -g.d[0][0]
			case x[0] == 1:
				dn = g.d[0][0]
			default: // y = 2
				dn = g.d[0][1]
			}
			return []float64{dn + 3*u - x[0]*x[1]}
		case "disk":
			nx, ny := (0.3-x[0])/0.15, (0.5-x[1])/0.15
			return []float64{nx*g.d[1][0] + ny*g.d[1][1] + v*u}
		case "slot":
			// The face of the box hole nearest x; the normal points into the hole.
			faces := []struct {
				k    int
				v, n float64
			}{{0, 0.6, 1}, {0, 0.8, -1}, {1, 1.2, 1}, {1, 1.6, -1}}
			best := faces[0]
			for _, f := range faces {
				if math.Abs(x[f.k]-f.v) < math.Abs(x[best.k]-best.v) {
					best = f
				}
			}
			return []float64{best.n*g.d[2][best.k] - 1}
		}
		t.Fatalf("block %s", block)
		return nil
	}
	var scale, worst float64
	for b, sp := range ev.Layout().Blocks {
		bp := &c.Blocks[b]
		for i := 0; i < bp.Count(); i++ {
			x := bp.X[i*p.Dim : (i+1)*p.Dim]
			if !p.Inside(x) {
				t.Errorf("block %s point %v is not in the domain", sp.Name, x)
			}
			w := want(sp.Name, x, fdDerivs(s, theta, x, 1e-3))
			for comp, wv := range w {
				got := r[sp.Off+i*sp.Components+comp]
				scale = math.Max(scale, math.Abs(wv))
				worst = math.Max(worst, math.Abs(got-wv))
				if math.Abs(got-wv) > 1e-5*math.Max(1, math.Abs(wv)) {
					t.Errorf("block %s point %v component %d: residual %v, finite differences %v", sp.Name, x, comp, got, wv)
				}
			}
		}
	}
	t.Logf("largest difference %.2g at residuals up to %.2g", worst, scale)
}

// TestFileJacobianAgainstFiniteDifferences checks every block's ∂F/∂u
// against central differences of F along each stream (step 1e−6: error
// ≈ 1e−12 times F's third derivatives, rounding ≈ 1e−10; asked 1e−6).
func TestFileJacobianAgainstFiniteDifferences(t *testing.T) {
	cfg, err := DefaultConfig(writeProblem(t, formsProblem, nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Problem
	rnd := rand.New(rand.NewPCG(1, 1))
	c, err := s.DrawPoints(2, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for b, def := range p.Blocks {
		cols := def.Streams.Count() * p.Outputs
		for i := 0; i < c.Blocks[b].Count(); i++ {
			x := c.Blocks[b].X[i*p.Dim : (i+1)*p.Dim]
			u := make([]float64, cols)
			for j := range u {
				u[j] = rnd.NormFloat64()
			}
			jac := make([]float64, def.Components*cols)
			def.DF(x, u, jac)
			rp, rm := make([]float64, def.Components), make([]float64, def.Components)
			for j := 0; j < cols; j++ {
				const h = 1e-6
				up := append([]float64(nil), u...)
				um := append([]float64(nil), u...)
				up[j] += h
				um[j] -= h
				def.F(x, up, rp)
				def.F(x, um, rm)
				for comp := 0; comp < def.Components; comp++ {
					fd := (rp[comp] - rm[comp]) / (2 * h)
					if got := jac[comp*cols+j]; math.Abs(got-fd) > 1e-6*math.Max(1, math.Abs(fd)) {
						t.Errorf("block %s component %d column %d: ∂F/∂u = %v, central difference %v", def.Name, comp, j, got, fd)
					}
				}
			}
		}
	}
}
