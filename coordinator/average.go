package coordinator

import (
	"errors"
	"math"
)

// MovingAverage is Algorithm 3's estimate of the NTK along training:
//
//	K̂_0 = mean of N probes at θ_0,
//	K̂_t = (1−α) K̂_{t−1} + α·(mean of m new probes at θ_t).
//
// The weights need only the block traces, so it keeps those (O(B) memory)
// and the full K̂ only when asked.
//
// It also carries an approximate covariance of its block traces, for the
// weights' intervals: with per-probe covariance S and m probes per step,
// V_t = (1−α)² V_{t−1} + α² S/m, where S is itself a moving average (rate α)
// of m·(x_t − T̂_{t−1})(x_t − T̂_{t−1})ᵀ over the step means x_t, started from
// the initial probes' sample covariance. Block probes update each block only
// on steps that sampled it.
type MovingAverage struct {
	Alpha float64

	T      []float64 // block traces
	V      []float64 // B×B covariance of T
	S      []float64 // B×B per-probe covariance
	Kernel []float64 // n×n, when kept
	Steps  int       // updates since the initial estimate

	dx, grad []float64
}

// NewMovingAverage starts Algorithm 3 from the initial estimate e (and its
// kernel, or nil to keep none).
func NewMovingAverage(alpha float64, e Estimate, kernel []float64) (*MovingAverage, error) {
	if !(alpha > 0 && alpha <= 1) {
		return nil, errors.New("moving-average rate α must be in (0, 1]")
	}
	m := &MovingAverage{
		Alpha: alpha,
		T:     append([]float64(nil), e.BlockTraces...),
		V:     nanToZero(append([]float64(nil), e.Cov...)),
		S:     nanToZero(append([]float64(nil), e.PerProbeCov...)),
	}
	if kernel != nil {
		m.Kernel = append([]float64(nil), kernel...)
	}
	return m, nil
}

func nanToZero(v []float64) []float64 {
	for i, x := range v {
		if math.IsNaN(x) {
			v[i] = 0
		}
	}
	return v
}

// Update averages in the estimate e of m = e.Probes new probes at the
// current θ (and their kernel when the average keeps one). observed lists
// which blocks e sampled; nil means all.
func (m *MovingAverage) Update(e Estimate, kernel []float64, observed []bool) {
	a := m.Alpha
	B := len(m.T)
	probes := float64(e.Probes)
	if observed != nil {
		// Block probes: count the probes of each block separately; e.Cov is diagonal.
		for b := 0; b < B; b++ {
			if !observed[b] {
				continue
			}
			nb := probes
			if v := e.Cov[b*B+b]; v > 0 && e.PerProbeCov[b*B+b] > 0 {
				nb = e.PerProbeCov[b*B+b] / v
			}
			dx := e.BlockTraces[b] - m.T[b]
			m.S[b*B+b] = (1-a)*m.S[b*B+b] + a*nb*dx*dx
			m.T[b] += a * dx
			m.V[b*B+b] = (1-a)*(1-a)*m.V[b*B+b] + a*a*m.S[b*B+b]/nb
		}
	} else {
		if len(m.dx) != B {
			m.dx = make([]float64, B)
		}
		dx := m.dx
		for b := range dx {
			dx[b] = e.BlockTraces[b] - m.T[b]
		}
		for b := 0; b < B; b++ {
			for c := 0; c < B; c++ {
				i := b*B + c
				m.S[i] = (1-a)*m.S[i] + a*probes*dx[b]*dx[c]
				m.V[i] = (1-a)*(1-a)*m.V[i] + a*a*m.S[i]/probes
			}
		}
		for b := range m.T {
			m.T[b] += a * dx[b]
		}
	}
	if m.Kernel != nil && kernel != nil {
		for i, k := range kernel {
			m.Kernel[i] = (1-a)*m.Kernel[i] + a*k
		}
	}
	m.Steps++
}

// Weights returns the weights of the current estimate and their standard
// errors (delta method on V).
func (m *MovingAverage) Weights() (lambda, se []float64) {
	B := len(m.T)
	lambda, se = make([]float64, B), make([]float64, B)
	m.WeightsInto(lambda, se)
	return lambda, se
}

// WeightsInto is Weights into caller-owned slices.
func (m *MovingAverage) WeightsInto(lambda, se []float64) {
	if len(m.grad) != len(m.T) {
		m.grad = make([]float64, len(m.T))
	}
	weightsWithSE(m.T, m.V, lambda, se, m.grad)
}
