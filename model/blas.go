package model

// BLASBackend names the BLAS implementation this binary was built with:
// "gonum" (pure Go, the default) or "openblas" (build tag openblas).
func BLASBackend() string { return blasBackend }
