package coordinator

import (
	"errors"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// topEigenvalues returns the k largest eigenvalues of the symmetric n×n
// matrix K, largest first.
func topEigenvalues(K []float64, n, k int) ([]float64, error) {
	var es mat.EigenSym
	if !es.Factorize(mat.NewSymDense(n, append([]float64(nil), K...)), false) {
		return nil, errors.New("eigenvalues of K did not converge")
	}
	vals := es.Values(nil)
	sort.Sort(sort.Reverse(sort.Float64Slice(vals)))
	return vals[:min(k, len(vals))], nil
}
