// Package coordinator holds θ_t and turns probes into NTK loss weights: the
// ordered accumulator of K̂ and its traces, Algorithm 3's moving average,
// Corollary 2's spaced-update rule, the optimizers and the training loop,
// and the backends that compute probes (goroutines in this process, or
// samplers over NATS). The math here knows nothing of NATS; a backend only
// delivers (probe index, quotient) pairs.
package coordinator
