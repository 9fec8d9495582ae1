//go:build !openblas

package model

const blasBackend = "gonum"

// gonum's GEMM splits itself over GOMAXPROCS goroutines (with the same bits
// on any number), so the pieces of a cut product run one after the other.
const parallelGEMM = false

func blasKernels() string { return "" }

func blasWarning() string { return "" }
