// Package model is the residual R(θ) of a physics-informed problem, its
// exact parameter derivatives and its exact neural tangent kernel: the
// reference every estimate in ntkbus is checked against.
//
// A Problem is a list of named residual blocks (interior PDE, boundary
// parts, initial value, initial time derivative) over collocation points; a
// Setup binds it to a network; an Evaluator computes, at fixed points,
//
//   - R(θ) (Forward, Residual),
//   - Jᵀv, one backward pass, for several cotangents at once (Backward),
//   - J w, forward mode (JVP),
//   - K_ii = ‖∇R_i‖² and hence the block traces Tr K_bb (Diagonal), and
//   - K = J Jᵀ (NTK),
//
// without numerical differentiation and without forming J. Four problems
// from Hirsch & Pichi (2025) are built in: quadratic (5.2.1), poisson1d
// (5.1), wave (5.2.2) and qtensor (5.2.3).
package model
