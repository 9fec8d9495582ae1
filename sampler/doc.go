// Package sampler computes NTK probes: Algorithm 2 of Hirsch & Pichi (2025)
// as a deterministic function of (θ, the points, step, probe index,
// Settings), and the stateless NATS worker around it.
//
// A probe draws g from the counter-based stream (seed, step, j), takes the
// predictor step θ̂ = θ + Δt·Jᵀg and returns the difference quotient
// d = (R(θ̂) − R(θ))/Δt ≈ K g. The coordinator pairs d with the same g,
// regenerated from the same key, so a probe's contribution does not depend
// on where or when it was computed.
package sampler
