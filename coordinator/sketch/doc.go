// Package sketch is randomized linear algebra for the symmetric positive
// semidefinite n×n kernels of ntkbus, from s probe columns Y = KΩ: the
// stabilized Nyström approximation K̂ = U diag(Λ) Uᵀ (Tropp, Yurtsever,
// Udell & Cevher 2017) with its diagonal, products, shifted solves
// (Woodbury) and the Nyström preconditioner of Frangella, Tropp & Udell
// (2023); and the exchangeable trace estimator XNysTrace with its diagonal
// and block-trace counterparts (Epperly, Tropp & Webber 2024), which use
// every probe both for the low-rank part and for the Hutchinson correction
// and come with their own error estimate.
//
// Matrices are row-major []float64; everything is float64 on gonum. The
// package knows nothing of NATS or of the model: the coordinator feeds it
// the columns its probes returned.
//
// Rows where Ω is zero in every column are rows the probes never touch (a
// probe drops the rows where R_i = 0): the estimators here treat them as
// outside the kernel, that is they approximate D K D with D the diagonal
// 0/1 mask of the other rows, and ignore those rows of Y. This is what
// Algorithm 2's block traces estimate too.
//
// Quotient errors: when Y is K Ω plus an error E (a difference quotient),
// ΩᵀY is no longer symmetric. Its antisymmetric part measures the error's
// size in the core, and the Nyström shift is raised to it, so eigenvalues
// the error hides are not inverted.
package sketch
