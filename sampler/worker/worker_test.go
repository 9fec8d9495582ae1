package worker

import (
	"math"
	"testing"
)

// Layer widths from a snapshot are checked against θ's length before the
// model sizes a network from them, without overflow.
func TestCheckLayers(t *testing.T) {
	for _, tc := range []struct {
		layers []int
		theta  int
		ok     bool
	}{
		{nil, 3, true}, // the problem's default network
		{[]int{2, 4, 1}, 2*4 + 4 + 4*1 + 1, true}, // exactly θ
		{[]int{2, 4, 1}, 20, true},                // fewer parameters than θ: the model's check says so
		{[]int{2, 4, 1}, 12, false},
		{[]int{2, math.MaxInt32, math.MaxInt32, 1}, 1000, false},
		{[]int{2, 4611686018427387904, 1}, 1, false},
		{[]int{2, 0, 1}, 100, false},
		{[]int{2, -3, 1}, 100, false},
	} {
		if err := checkLayers(tc.layers, tc.theta); (err == nil) != tc.ok {
			t.Errorf("layers %v, θ of %d: %v", tc.layers, tc.theta, err)
		}
	}
}
