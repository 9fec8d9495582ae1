//go:build !openblas

package model

const blasBackend = "gonum"
