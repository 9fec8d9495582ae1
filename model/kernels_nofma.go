//go:build goexperiment.simd && amd64 && !amd64.v3

package model

// Below GOAMD64=v3 math.Tanh's multiply-adds stay a multiply and an add.
const fusedTanh = false
