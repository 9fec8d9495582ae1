//go:build openblas

package model

// Built with -tags openblas (and CGO_LDFLAGS=-lopenblas), gonum's BLAS calls
// go to OpenBLAS through cgo. This switches the process-wide implementation
// that gonum/blas/blas64 dispatches to, once, at start-up.

import (
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

const blasBackend = "openblas"

func init() { blas64.Use(netlib.Implementation{}) }
