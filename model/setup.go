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
	Problem string `json:"problem"`
	// Text is a problem file's TOML and Files the contents of the points
	// files it names, by the names it gives them (see ReadProblemFile);
	// empty for a built-in problem.
	Text  string            `json:"problem_text,omitempty"`
	Files map[string]string `json:"problem_files,omitempty"`
	// Reference is CSV text of solution data (a problem file's [solution]
	// reference, or --reference), and ReferenceName where it came from:
	// errors are measured against it, at its points.
	Reference     string `json:"reference,omitempty"`
	ReferenceName string `json:"reference_name,omitempty"`

	Layers     []int              `json:"layers,omitempty"`
	Activation string             `json:"activation,omitempty"`
	Shift      []float64          `json:"shift,omitempty"` // inputs enter the network as (x−shift)/scale
	Scale      []float64          `json:"scale,omitempty"`
	Params     map[string]float64 `json:"params,omitempty"`
}

// DefaultConfig returns the default configuration of a problem: a
// built-in's (the paper's), or a problem file's when problem is a path
// (see IsProblemFile and ReadProblemFile).
func DefaultConfig(problem string) (Config, error) {
	if IsProblemFile(problem) {
		return ReadProblemFile(problem)
	}
	p, err := Lookup(problem, nil)
	if err != nil {
		return Config{}, err
	}
	return defaultsOf(p, Config{}), nil
}

// problem builds cfg's problem with its parameters: from its text when it
// has one, else the built-in of its name; with its reference data.
func (cfg *Config) problem() (*Problem, error) {
	if cfg.Text != "" {
		p, err := parseProblem("problem "+cfg.Problem, *cfg, cfg.Params)
		if err != nil {
			return nil, err
		}
		if p.Name != cfg.Problem {
			return nil, fmt.Errorf("the problem's text names it %q, the configuration %q", p.Name, cfg.Problem)
		}
		return p, nil
	}
	if len(cfg.Files) > 0 {
		return nil, fmt.Errorf("problem %s: problem files without a problem text", cfg.Problem)
	}
	p, err := Lookup(cfg.Problem, cfg.Params)
	if err != nil {
		return nil, err
	}
	if cfg.Reference != "" {
		name := cfg.ReferenceName
		if name == "" {
			name = "reference"
		}
		r, err := ParseReference(name, cfg.Reference, p)
		if err != nil {
			return nil, fmt.Errorf("problem %s: %w", p.Name, err)
		}
		p.SetReference(r)
	}
	return p, nil
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
	p, err := cfg.problem()
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

// MaxWidth is the widest layer of the network, 0 for a problem that is not
// a network.
func (s *Setup) MaxWidth() int {
	if s.net == nil {
		return 0
	}
	w := 0
	for _, l := range s.net.layers {
		w = max(w, l)
	}
	return w
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

// maxParams bounds a network's parameter count (2^36, 512 GiB of float64)
// so that every size derived from it fits an int with room to spare.
const maxParams = 1 << 36

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
	// Count in floating point first: widths from a file can make the
	// integer count wrap around (2·2^62 + 2^62 + … wraps to 1).
	var count float64
	for l := 1; l < len(layers); l++ {
		count += float64(layers[l-1])*float64(layers[l]) + float64(layers[l])
	}
	if count > maxParams {
		return nil, fmt.Errorf("layers %v: %.3g parameters, more than any memory holds (at most %d)", layers, count, int64(maxParams))
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

// Memory lists what a command holds at once, so that Setup.CheckMemory can
// price the whole work before anything is allocated.
type Memory struct {
	Evaluators int  // evaluators, each with its own work buffers and prober
	Cotangents int  // cotangents of the widest Backward pass (0 means 1; a fused step: 1 + its probes)
	NTK        bool // one exact structured NTK: its work memory and the n×n result
	Kernels    int  // further n×n matrices (K̂ sums, moving averages, references)
	Columns    int  // further vectors of length n (probe results, sketch columns)
	Params     int  // further vectors of length p (θ, gradients, optimizer moments)
}

// MemoryNeed returns the bytes that the work m needs with counts points per
// block (nil: the problem's defaults): the evaluators' buffers (every layer's
// rows of every stream, the backward, forward-mode and diagonal buffers),
// the exact NTK's work memory, and the kernels and vectors listed. It is
// computed in floating point, so sizes from a file cannot overflow it.
func (s *Setup) MemoryNeed(counts []int, m Memory) (float64, error) {
	p := s.Problem
	if counts == nil {
		counts = p.DefaultCounts()
	}
	if len(counts) != len(p.Blocks) {
		return 0, fmt.Errorf("problem %s: %d point counts for %d blocks %v", p.Name, len(counts), len(p.Blocks), p.BlockNames())
	}
	var npts, n, rows, qrows, dfs, maxN, comps float64
	for b, c := range counts {
		if c < 0 {
			return 0, fmt.Errorf("problem %s block %s: negative point count %d", p.Name, p.Blocks[b].Name, c)
		}
		def := &p.Blocks[b]
		nb := float64(c)
		ns := float64(def.Streams.Count())
		npts += nb
		n += nb * float64(def.Components)
		rows += nb * ns
		qrows += nb * float64(len(def.Streams.Ops))
		dfs += nb * float64(def.Components) * ns * float64(p.Outputs)
		maxN = math.Max(maxN, nb)
		comps = math.Max(comps, float64(def.Components))
	}
	P := float64(s.NumParams())
	d := float64(p.Dim)
	cots := float64(max(1, m.Cotangents))
	points := npts*d + n // one copy of the points and targets
	var eval, ntk float64
	if s.net == nil {
		eval = 2*n + 3
		ntk = n * n
	} else {
		ly := s.net.layers
		var sumW, hidW, maxW, maxS float64
		for _, def := range p.Blocks {
			maxS = math.Max(maxS, float64(def.Streams.Count()))
		}
		for l := 1; l < len(ly); l++ {
			w := float64(ly[l])
			sumW += w
			if l < len(ly)-1 {
				hidW += w
			}
			maxW = math.Max(maxW, w)
		}
		eval = rows*d + rows*sumW + rows*hidW + // input streams, pre-activations, layer inputs
			3*npts*hidW + qrows*hidW + dfs + n + // σ', σ'', σ''', operator forms, ∂F/∂u, R
			(3+2*cots+3+2)*rows*maxW + // residual scratch, backward, forward mode, diagonal
			maxParts*(4+2*maxS)*maxW + // each part's per-point scratch (SetPoints)
			P + points
		ntk = comps*rows*sumW + 2*maxN*maxN + n*n
	}
	// A prober beside each evaluator: θ, θ̂, Jᵀg and six n-vectors, and
	// one pair per fused probe. The small buffers not listed (slice
	// headers, BLAS temporaries) add under 15%.
	eval += 3*P + 6*n + (cots-1)*(P+n)
	eval *= 1.15
	ntk *= 1.15
	total := float64(m.Evaluators)*eval + float64(m.Kernels)*n*n + float64(m.Columns)*n + float64(m.Params)*P + points
	if m.NTK {
		total += ntk
	}
	return 8 * total, nil
}

// CheckMemory reports, before anything is allocated, work that needs more
// than limit bytes (0: DefaultMaxMemory), with what it needs and what to do.
func (s *Setup) CheckMemory(counts []int, m Memory, limit int64) error {
	if limit <= 0 {
		limit = DefaultMaxMemory
	}
	need, err := s.MemoryNeed(counts, m)
	if err != nil {
		return err
	}
	if need > float64(limit) {
		return fmt.Errorf("the work needs %s of memory, over the limit of %s: use fewer collocation points or a narrower network, or raise the limit (--max-memory)", formatSize(need), formatBytes(limit))
	}
	return nil
}

// formatSize is formatBytes for sizes that may exceed an int64.
func formatSize(b float64) string {
	if b >= 1<<50 {
		return fmt.Sprintf("%.3g PiB", b/(1<<50))
	}
	return formatBytes(int64(b))
}
