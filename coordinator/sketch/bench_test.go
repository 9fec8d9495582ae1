package sketch

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The sketches' own cost at the wave network's n = 900 (a probe there costs
// 0.1–0.4 s): NewNystrom, and XNysBlockTraces with its error estimate.
func BenchmarkSketch(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	tk := newTestKernel(b, rng, geometric(900, 0.3))
	sizes := []int{300, 300, 100, 100, 100}
	for _, s := range []int{30, 200} {
		omega, y := tk.sketch(rng, s)
		b.Run(fmt.Sprintf("Nystrom/s=%d", s), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewNystrom(omega, y, tk.n, s); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("XNysBlockTraces/s=%d", s), func(b *testing.B) {
			for b.Loop() {
				if _, err := XNysBlockTraces(omega, y, tk.n, s, sizes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
