package model

import (
	"fmt"
	"math"
)

// QTensorReference is a finite-difference solution of the Q-tensor flow
//
//	q_t = LΔq − a q − 2c(q1² + q2²) q,  q = 0 on ∂Ω,  Ω = (−2,2)²,
//
// the reference the PINNs of experiment 5.2.3 are compared with (the paper
// uses finite elements). Second-order central differences on a uniform grid
// of N intervals per side, explicit Euler in time with a step well inside
// the stability limit h²/(4L); frames are kept every Frame time units and
// read back with bilinear interpolation in space and linear interpolation
// in time, so points on the grid at frame times are read exactly.
type QTensorReference struct {
	N     int     // intervals per side
	H     float64 // grid spacing
	Dt    float64 // time step
	Frame float64 // time between stored frames
	T     float64 // final time

	frames [][]float64 // frames[k][2·(j·(N+1)+i) + c], component c at node (i, j)
}

// QTensorReferenceOptions sets the resolution of SolveQTensor; zero fields
// take the defaults.
type QTensorReferenceOptions struct {
	N     int     // intervals per side (default 80: h = 0.05)
	Frame float64 // time between frames (default 0.025)
	T     float64 // final time (default 2)
}

// SolveQTensor integrates the Q-tensor flow from q0 with constants L, a, c.
// The work grows as N⁴ (N² nodes, N² steps): the default takes about 0.2 s,
// and its largest error at t = 0.4 and 2 is about 5·10⁻⁵ (estimated from
// the solutions with 40, 80 and 160 intervals in the tests).
func SolveQTensor(L, a, c float64, q0 func(x, y float64) (q1, q2 float64), opt QTensorReferenceOptions) (*QTensorReference, error) {
	if opt.N == 0 {
		opt.N = 80
	}
	if opt.Frame == 0 {
		opt.Frame = 0.025
	}
	if opt.T == 0 {
		opt.T = 2
	}
	switch {
	case !(L > 0):
		return nil, fmt.Errorf("q-tensor reference: L = %v must be positive", L)
	case opt.N < 2:
		return nil, fmt.Errorf("q-tensor reference: %d intervals per side; use at least 2", opt.N)
	case !(opt.Frame > 0) || !(opt.T > 0):
		return nil, fmt.Errorf("q-tensor reference: frame %v and final time %v must be positive", opt.Frame, opt.T)
	}
	n := opt.N
	h := 4 / float64(n)
	// Steps per frame: the largest step below h²/(5L) (stability needs
	// h²/(4L) for the diffusion; the margin covers moderate bulk terms)
	// and below 0.1/(|a| + 2c), for strong bulk terms (|Q| of order one).
	maxDt := math.Min(h*h/(5*L), 0.1/(math.Abs(a)+2*math.Abs(c)))
	perFrame := int(math.Ceil(opt.Frame / maxDt))
	dt := opt.Frame / float64(perFrame)
	frames := int(math.Ceil(opt.T/opt.Frame - 1e-9))
	m := n + 1
	r := &QTensorReference{N: n, H: h, Dt: dt, Frame: opt.Frame, T: float64(frames) * opt.Frame}
	cur := make([]float64, 2*m*m)
	for j := 1; j < n; j++ {
		for i := 1; i < n; i++ {
			k := 2 * (j*m + i)
			cur[k], cur[k+1] = q0(-2+float64(i)*h, -2+float64(j)*h)
		}
	}
	r.frames = append(r.frames, append([]float64(nil), cur...))
	next := make([]float64, len(cur))
	d := L * dt / (h * h)
	for f := 0; f < frames; f++ {
		for s := 0; s < perFrame; s++ {
			for j := 1; j < n; j++ {
				for i := 1; i < n; i++ {
					k := 2 * (j*m + i)
					q1, q2 := cur[k], cur[k+1]
					bulk := 1 - dt*(a+2*c*(q1*q1+q2*q2))
					next[k] = q1*bulk + d*(cur[k-2]+cur[k+2]+cur[k-2*m]+cur[k+2*m]-4*q1)
					next[k+1] = q2*bulk + d*(cur[k-1]+cur[k+3]+cur[k+1-2*m]+cur[k+1+2*m]-4*q2)
				}
			}
			cur, next = next, cur
		}
		for _, v := range cur {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("q-tensor reference: the solution blew up before t = %g (L = %v, a = %v, c = %v)", float64(f+1)*opt.Frame, L, a, c)
			}
		}
		r.frames = append(r.frames, append([]float64(nil), cur...))
	}
	return r, nil
}

// At returns q(x, y, t), with (x, y) clamped to Ω and t to [0, T].
func (r *QTensorReference) At(x, y, t float64) (q1, q2 float64) {
	t = math.Max(0, math.Min(t, r.T))
	s := snap(t / r.Frame)
	k := int(s)
	if k >= len(r.frames)-1 {
		k = len(r.frames) - 2
	}
	w := s - float64(k)
	a1, a2 := r.spatial(r.frames[k], x, y)
	if w == 0 {
		return a1, a2
	}
	b1, b2 := r.spatial(r.frames[k+1], x, y)
	return (1-w)*a1 + w*b1, (1-w)*a2 + w*b2
}

// spatial interpolates one frame bilinearly at (x, y).
func (r *QTensorReference) spatial(f []float64, x, y float64) (q1, q2 float64) {
	m := r.N + 1
	cell := func(v float64) (int, float64) {
		s := snap((math.Max(-2, math.Min(v, 2)) + 2) / r.H)
		i := int(s)
		if i >= r.N {
			i = r.N - 1
		}
		return i, s - float64(i)
	}
	i, u := cell(x)
	j, v := cell(y)
	k := 2 * (j*m + i)
	w00, w10, w01, w11 := (1-u)*(1-v), u*(1-v), (1-u)*v, u*v
	q1 = w00*f[k] + w10*f[k+2] + w01*f[k+2*m] + w11*f[k+2*m+2]
	q2 = w00*f[k+1] + w10*f[k+3] + w01*f[k+2*m+1] + w11*f[k+2*m+3]
	return q1, q2
}

// snap rounds a grid coordinate that is an integer up to rounding, so
// that nodes and frame times are read without interpolation.
func snap(s float64) float64 {
	if n := math.Round(s); math.Abs(s-n) < 1e-9*math.Max(1, n) {
		return n
	}
	return s
}
