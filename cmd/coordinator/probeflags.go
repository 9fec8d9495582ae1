package main

import (
	"flag"
	"math"

	"ntkbus/coordinator"
	"ntkbus/sampler"
)

// probeFlags choose how probes are drawn and differenced, and (for the
// commands that register it) what estimator makes of them.
type probeFlags struct {
	kind, quotient, allocation string
	dt, epsilon                float64
	estimator                  string
}

func (p *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.kind, "kind", "gaussian", "probe vectors: gaussian, rademacher (Remark 5), block (one block per probe), param (Theorem 5, parameter space)")
	fs.StringVar(&p.quotient, "quotient", "", "difference quotient: forward (the paper's), central, or exact (J Jᵀg by forward mode, no Δt bias) (default: forward with the hutchinson estimator, exact with nystrom and xnystrace)")
	fs.StringVar(&p.allocation, "allocation", "equal", "block probes per block: equal, or size (in proportion to the block's residuals)")
	fs.Float64Var(&p.dt, "dt", 0, "predictor step Δt (0: chosen per probe from float64 rounding vs truncation)")
	fs.Float64Var(&p.epsilon, "epsilon", 0, "scale ε of param probes (0: automatic)")
}

// registerEstimator adds --estimator.
func (p *probeFlags) registerEstimator(fs *flag.FlagSet) {
	fs.StringVar(&p.estimator, "estimator", "hutchinson", "what to make of the probes: hutchinson (Algorithm 2, the mean of rank-one samples), nystrom (the probes' columns as a Nyström sketch of K), xnystrace (the exchangeable Nyström trace estimator on the same columns)")
}

// estimatorKind is the --estimator chosen (hutchinson where the command
// has none).
func (p *probeFlags) estimatorKind() (coordinator.Estimator, error) {
	if p.estimator == "" {
		return coordinator.Hutchinson, nil
	}
	e, err := coordinator.ParseEstimator(p.estimator)
	if err != nil {
		return e, inputError{err}
	}
	return e, nil
}

// settings are the probe settings; without --quotient, the estimator's
// default quotient.
func (p *probeFlags) settings(seed uint64) (sampler.Settings, error) {
	s := sampler.Settings{Seed: seed, Dt: p.dt, Epsilon: p.epsilon}
	est, err := p.estimatorKind()
	if err != nil {
		return s, err
	}
	if s.Kind, err = sampler.ParseKind(p.kind); err != nil {
		return s, inputError{err}
	}
	s.Quotient = est.DefaultQuotient()
	if p.quotient != "" {
		if s.Quotient, err = sampler.ParseQuotient(p.quotient); err != nil {
			return s, inputError{err}
		}
	}
	if s.Allocation, err = sampler.ParseAllocation(p.allocation); err != nil {
		return s, inputError{err}
	}
	if err := s.Validate(); err != nil {
		return s, inputError{err}
	}
	if err := est.Check(s); err != nil {
		return s, inputError{err}
	}
	return s, nil
}

// num is a float for JSON: null when not finite (a standard error from one
// probe), the shortest exact form otherwise.
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// checkStep refuses a --step beyond the 32-bit step numbers that key the
// probe vectors and the points (a larger one would wrap around silently).
func checkStep(step uint) error {
	if step > math.MaxUint32 {
		return badInput("--step %d: steps are 32-bit numbers, want at most %d", step, uint64(math.MaxUint32))
	}
	return nil
}
