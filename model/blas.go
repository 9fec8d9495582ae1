package model

// BLASBackend names the BLAS implementation this binary was built with:
// "gonum" (pure Go, the default) or "openblas" (build tag openblas).
func BLASBackend() string { return blasBackend }

// BLASKernels names the kernels OpenBLAS chose for this CPU (empty for
// gonum).
func BLASKernels() string { return blasKernels() }

// BLASWarning is a one-line warning when OpenBLAS chose kernels far below
// what this CPU runs, saying which OPENBLAS_CORETYPE to set; empty when
// there is nothing to say.
func BLASWarning() string { return blasWarning() }
