//go:build goexperiment.simd && amd64 && amd64.v3

package model

// With GOAMD64=v3 the compiler fuses math.Tanh's multiply-adds.
const fusedTanh = true
