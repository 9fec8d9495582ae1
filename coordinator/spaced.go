package coordinator

import (
	"errors"
	"math"
)

// SpacedRule is Corollary 2's rule for accepting new loss weights: with
//
//	S(t) = Σ_{r<t} λmax(Λ_{r+1} − Λ_r) ‖R(θ_{r+1})‖²,
//
// a candidate Λ̃_{t+1} is accepted only while
//
//	S(t) + λmax(Λ̃_{t+1} − Λ_t) ‖R(θ_{t+1})‖² ≤ h(t),
//
// and otherwise Λ_{t+1} = Λ_t. With h = o(t) the average squared gradient
// still goes to zero whatever the weights do. Here h(t) = H0·(1+t)^Gamma,
// Gamma < 1. Λ is block-diagonal, so λmax(Λ̃ − Λ) = max_b (λ̃_b − λ_b).
type SpacedRule struct {
	H0, Gamma float64
	S         float64 // S(t), the budget used so far
	Accepted  int
	Rejected  int
}

// NewSpacedRule returns the rule with h(t) = h0·(1+t)^gamma.
func NewSpacedRule(h0, gamma float64) (*SpacedRule, error) {
	if !(h0 > 0) || math.IsInf(h0, 0) {
		return nil, errors.New("spaced-update scale h0 must be positive and finite")
	}
	if !(gamma >= 0 && gamma < 1) {
		return nil, errors.New("spaced-update exponent γ must be in [0, 1), so that h(t) = o(t)")
	}
	return &SpacedRule{H0: h0, Gamma: gamma}, nil
}

// H is h(t).
func (s *SpacedRule) H(t int) float64 { return s.H0 * math.Pow(1+float64(t), s.Gamma) }

// Decide decides at step t whether the candidate weights replace the current
// ones, given rr = ‖R(θ_{t+1})‖², and updates S on acceptance.
func (s *SpacedRule) Decide(t int, current, candidate []float64, rr float64) bool {
	lmax := math.Inf(-1)
	for b := range current {
		lmax = math.Max(lmax, candidate[b]-current[b])
	}
	inc := lmax * rr
	if s.S+inc <= s.H(t) {
		s.S += inc
		s.Accepted++
		return true
	}
	s.Rejected++
	return false
}
