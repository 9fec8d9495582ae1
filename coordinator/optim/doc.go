// Package optim holds the optimizers of a training step — gradient
// descent, Adam, and the natural gradients ngd (the exact K) and sngd (its
// Nyström sketch), with the conjugate-gradient solver — behind one small
// interface. The trainer hands a Method a Problem: θ_t, the residual, the
// loss weights, the evaluator at θ_t (Jᵀv, Jv, K's diagonal, the dense K,
// R anywhere) and, when the method's Needs ask for them, the gradient and
// the step's probe columns; the method moves θ and records what it did. A
// method knows nothing of probes' transport, and the trainer nothing of
// any method.
package optim
