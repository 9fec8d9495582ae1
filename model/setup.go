package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"ntkbus/model/rng"
)

// Config is everything besides θ and the points that fixes the residual: the
// problem, its constants and the network. Empty fields take the problem's
// defaults (see DefaultConfig); for inputs as they are, give shift 0 and
// scale 1.
type Config struct {
	Problem    string             `json:"problem"`
	Layers     []int              `json:"layers,omitempty"`
	Activation string             `json:"activation,omitempty"`
	Shift      []float64          `json:"shift,omitempty"` // inputs enter the network as (x−shift)/scale
	Scale      []float64          `json:"scale,omitempty"`
	Params     map[string]float64 `json:"params,omitempty"`
}

// DefaultConfig returns the paper's configuration of a problem.
func DefaultConfig(problem string) (Config, error) {
	p, err := Lookup(problem, nil)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Problem: problem, Params: p.ParamMap()}
	if p.IsNetwork() {
		cfg.Layers = append([]int(nil), p.Layers...)
		cfg.Activation = p.Activation.String()
		if p.Standardize {
			cfg.Shift, cfg.Scale = p.uniformStandardization()
		}
	}
	return cfg, nil
}

// Setup is a problem bound to a network: it knows p, the θ layout, and makes
// evaluators.
type Setup struct {
	Problem *Problem
	Config  Config // resolved: defaults filled in
	net     *network
}

// NewSetup validates cfg against its problem and fills in defaults.
func NewSetup(cfg Config) (*Setup, error) {
	p, err := Lookup(cfg.Problem, cfg.Params)
	if err != nil {
		return nil, err
	}
	return bind(p, cfg)
}

// bind ties a problem to the network that cfg describes.
func bind(p *Problem, cfg Config) (*Setup, error) {
	var err error
	s := &Setup{Problem: p, Config: cfg}
	s.Config.Params = p.ParamMap()
	if !p.IsNetwork() {
		if len(cfg.Layers) != 0 || cfg.Activation != "" || len(cfg.Shift) != 0 || len(cfg.Scale) != 0 {
			return nil, fmt.Errorf("problem %s is not a network: it takes no layers, activation or input scaling", p.Name)
		}
		return s, nil
	}
	if len(cfg.Layers) == 0 {
		s.Config.Layers = append([]int(nil), p.Layers...)
	}
	if cfg.Activation == "" {
		s.Config.Activation = p.Activation.String()
	}
	if len(cfg.Shift) == 0 && len(cfg.Scale) == 0 && p.Standardize {
		s.Config.Shift, s.Config.Scale = p.uniformStandardization()
	}
	act, err := ParseActivation(s.Config.Activation)
	if err != nil {
		return nil, err
	}
	s.net, err = newNetwork(s.Config.Layers, act, s.Config.Shift, s.Config.Scale, p.Dim, p.Outputs)
	if err != nil {
		return nil, fmt.Errorf("problem %s: %w", p.Name, err)
	}
	return s, nil
}

// NumParams is p, the length of θ.
func (s *Setup) NumParams() int {
	if s.net == nil {
		return s.Problem.NumParams
	}
	return s.net.p
}

// InitTheta draws θ from seed: Xavier-normal weights and zero biases for a
// network (std √(2/(fan_in+fan_out)), as PyTorch's xavier_normal_), standard
// normal parameters otherwise.
func (s *Setup) InitTheta(seed uint64) []float64 {
	theta := make([]float64, s.NumParams())
	if s.net == nil {
		st := rng.New(seed, rng.DomainInit, 0, 0)
		st.FillNormal(theta)
		return theta
	}
	n := s.net
	for l := 1; l < len(n.layers); l++ {
		in, out := n.layers[l-1], n.layers[l]
		std := math.Sqrt(2 / float64(in+out))
		st := rng.New(seed, rng.DomainInit, 0, uint32(l))
		w := theta[n.wOff[l] : n.wOff[l]+in*out]
		for i := range w {
			w[i] = std * st.Normal()
		}
	}
	return theta
}

// DrawPoints draws the problem's collocation points (see Problem.Draw).
func (s *Setup) DrawPoints(seed uint64, step uint32, counts []int, dst *Collocation) (*Collocation, error) {
	return s.Problem.Draw(seed, step, counts, dst)
}

// CheckTheta reports a θ of the wrong length or with non-finite entries.
func (s *Setup) CheckTheta(theta []float64) error {
	if len(theta) != s.NumParams() {
		if s.net != nil {
			return fmt.Errorf("theta has %d values, layers %v need %d", len(theta), s.net.layers, s.NumParams())
		}
		return fmt.Errorf("theta has %d values, problem %s needs %d", len(theta), s.Problem.Name, s.NumParams())
	}
	for i, v := range theta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("theta[%d] = %v is not finite", i, v)
		}
	}
	return nil
}

// network is an MLP's shape and θ layout: layer by layer, W (out×in,
// row-major, as PyTorch's nn.Linear.weight) then b.
type network struct {
	layers       []int // widths, input first, output last
	act          Activation
	shift, scale []float64 // input standardization, len layers[0]
	wOff, bOff   []int     // offsets of W_l and b_l in θ, l = 1..L (index 0 unused)
	p            int
}

func newNetwork(layers []int, act Activation, shift, scale []float64, dim, outputs int) (*network, error) {
	if len(layers) < 2 {
		return nil, fmt.Errorf("layers %v: need at least an input and an output width", layers)
	}
	if layers[0] != dim {
		return nil, fmt.Errorf("layers %v: input width %d, but points have %d coordinates", layers, layers[0], dim)
	}
	if layers[len(layers)-1] != outputs {
		return nil, fmt.Errorf("layers %v: output width %d, but the problem has %d outputs", layers, layers[len(layers)-1], outputs)
	}
	for _, w := range layers {
		if w <= 0 {
			return nil, fmt.Errorf("layers %v: widths must be positive", layers)
		}
	}
	if (shift == nil) != (scale == nil) {
		return nil, fmt.Errorf("input standardization needs both shift and scale")
	}
	if shift == nil {
		shift = make([]float64, dim)
		scale = make([]float64, dim)
		for k := range scale {
			scale[k] = 1
		}
	}
	if len(shift) != dim || len(scale) != dim {
		return nil, fmt.Errorf("input shift/scale have %d/%d values for %d coordinates", len(shift), len(scale), dim)
	}
	for k := range scale {
		if !(scale[k] > 0) || math.IsInf(scale[k], 0) || math.IsNaN(shift[k]) || math.IsInf(shift[k], 0) {
			return nil, fmt.Errorf("input standardization of coordinate %d: shift %v, scale %v (scale must be positive and finite)", k, shift[k], scale[k])
		}
	}
	n := &network{layers: layers, act: act, shift: shift, scale: scale}
	L := len(layers) - 1
	n.wOff = make([]int, L+1)
	n.bOff = make([]int, L+1)
	for l := 1; l <= L; l++ {
		n.wOff[l] = n.p
		n.p += layers[l-1] * layers[l]
		n.bOff[l] = n.p
		n.p += layers[l]
		if n.p > math.MaxInt32*8 {
			return nil, fmt.Errorf("layers %v: too many parameters", layers)
		}
	}
	return n, nil
}

// Predict sets u (count×Outputs) to the model's solution at the points x
// (count×Dim, row-major): the network output, or for a non-network problem
// its fitted function.
func (s *Setup) Predict(theta, x, u []float64) {
	p := s.Problem
	count := len(x) / p.Dim
	if s.net == nil { // quadratic: (θ⊙θ)·(1, x, x²)
		for i := 0; i < count; i++ {
			f := features(x[i])
			u[i] = theta[0]*theta[0]*f[0] + theta[1]*theta[1]*f[1] + theta[2]*theta[2]*f[2]
		}
		return
	}
	n := s.net
	h := make([]float64, count*p.Dim)
	for i := 0; i < count; i++ {
		for k := 0; k < p.Dim; k++ {
			h[i*p.Dim+k] = (x[i*p.Dim+k] - n.shift[k]) / n.scale[k]
		}
	}
	L := len(n.layers) - 1
	for l := 1; l <= L; l++ {
		in, out := n.layers[l-1], n.layers[l]
		w, b := theta[n.wOff[l]:n.wOff[l]+in*out], theta[n.bOff[l]:n.bOff[l]+out]
		a := make([]float64, count*out)
		blas64.Implementation().Dgemm(blas.NoTrans, blas.Trans, count, out, in, 1, h, in, w, in, 0, a, out)
		for i := 0; i < count; i++ {
			row := a[i*out : (i+1)*out]
			for j := range row {
				row[j] += b[j]
			}
			if l < L {
				n.act.value(row, row)
			}
		}
		h = a
	}
	copy(u, h)
}

// ErrorNorms are the distances of a model's solution from the problem's
// exact solution (or reference) at a set of points.
type ErrorNorms struct {
	Max float64 // max |u − u*|
	RMS float64 // √(mean (u − u*)²) over points and outputs
	// L2 is the relative L² error ‖u − u*‖ / ‖u*‖ over points and outputs
	// (on a regular grid the grid's weight cancels); the absolute ‖u − u*‖
	// where u* vanishes at every point.
	L2 float64
}

// SolutionErrors measures the model's solution against the problem's exact
// solution at the points x; ok is false when the problem has none.
func (s *Setup) SolutionErrors(theta, x []float64) (e ErrorNorms, ok bool) {
	p := s.Problem
	if p.Exact == nil {
		return e, false
	}
	count := len(x) / p.Dim
	u := make([]float64, count*p.Outputs)
	s.Predict(theta, x, u)
	want := make([]float64, p.Outputs)
	var sum, norm float64
	for i := 0; i < count; i++ {
		p.Exact(x[i*p.Dim:(i+1)*p.Dim], want)
		for o, w := range want {
			d := math.Abs(u[i*p.Outputs+o] - w)
			e.Max = math.Max(e.Max, d)
			sum += d * d
			norm += w * w
		}
	}
	if count > 0 {
		e.RMS = math.Sqrt(sum / float64(count*p.Outputs))
	}
	e.L2 = math.Sqrt(sum)
	if norm > 0 {
		e.L2 = math.Sqrt(sum / norm)
	}
	return e, true
}

// SolutionError returns the largest and the root-mean-square error of the
// model's solution against the problem's exact solution at the points x;
// ok is false when the problem has no exact solution.
func (s *Setup) SolutionError(theta, x []float64) (maxAbs, rms float64, ok bool) {
	e, ok := s.SolutionErrors(theta, x)
	return e.Max, e.RMS, ok
}
