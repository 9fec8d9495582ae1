// Package rng is the counter-based random number generator behind every
// random draw in ntkbus: initial weights, collocation points, data noise and
// probe vectors.
//
// A stream is addressed by a key (the run seed) and a counter prefix
// (domain, step, index), so probe j of step t is the same sequence of bits on
// any machine, in any order, without generating probes 0..j-1 first. The
// generator is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011).
//
// Normal variates use the polar method with a logarithm written here with
// explicit float64 conversions, so no fused multiply-add and no
// platform-specific math routine can change a bit: the same key gives the
// same vector on amd64, arm64 or anything else Go compiles to.
package rng

import "math"

// Domain separates the streams used for different purposes under one seed.
type Domain uint32

// The domains used by ntkbus. A new use of randomness gets a new domain.
const (
	DomainInit   Domain = 1 // initial network parameters
	DomainPoints Domain = 2 // collocation points (index = block)
	DomainNoise  Domain = 3 // observation noise of data problems
	DomainProbe  Domain = 4 // residual-space probe vectors g (index = probe)
	DomainParam  Domain = 5 // parameter-space probes of Theorem 5 (index = probe)
)

const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85
)

// Philox4x32 returns the Philox4x32-10 block for counter c and key k.
func Philox4x32(c [4]uint32, k [2]uint32) [4]uint32 {
	for r := 0; r < 10; r++ {
		if r > 0 {
			k[0] += philoxW0
			k[1] += philoxW1
		}
		p0 := uint64(philoxM0) * uint64(c[0])
		p1 := uint64(philoxM1) * uint64(c[2])
		c = [4]uint32{
			uint32(p1>>32) ^ c[1] ^ k[0],
			uint32(p1),
			uint32(p0>>32) ^ c[3] ^ k[1],
			uint32(p0),
		}
	}
	return c
}

// Stream is a sequential reader of one counter-addressed Philox stream.
// The zero value is not useful; use New.
type Stream struct {
	key    [2]uint32
	ctr    [4]uint32 // ctr[0] is the block counter within the stream
	buf    [4]uint32
	nbuf   int // unread 32-bit words in buf, taken from the end
	spare  float64
	hasSpr bool
}

// New returns the stream for (seed, domain, step, index). Steps and indices
// are 32-bit: 4 billion steps, 4 billion probes per step.
func New(seed uint64, d Domain, step, index uint32) Stream {
	return Stream{
		key: [2]uint32{uint32(seed), uint32(seed >> 32)},
		ctr: [4]uint32{0, index, step, uint32(d)},
	}
}

func (s *Stream) word() uint32 {
	if s.nbuf == 0 {
		s.buf = Philox4x32(s.ctr, s.key)
		s.ctr[0]++
		s.nbuf = 4
	}
	s.nbuf--
	return s.buf[3-s.nbuf]
}

// Uint64 returns 64 uniformly random bits.
func (s *Stream) Uint64() uint64 {
	lo := uint64(s.word())
	return lo | uint64(s.word())<<32
}

// Float64 returns a uniform value in [0, 1) with 53 random bits.
func (s *Stream) Float64() float64 {
	return float64(s.Uint64()>>11) * 0x1p-53
}

// Uniform returns a uniform value in [lo, hi).
func (s *Stream) Uniform(lo, hi float64) float64 {
	return lo + float64((hi-lo)*s.Float64())
}

// Rademacher returns -1 or +1 with equal probability.
func (s *Stream) Rademacher() float64 {
	if s.word()&1 == 0 {
		return -1
	}
	return 1
}

// Normal returns a standard normal variate (Marsaglia's polar method).
func (s *Stream) Normal() float64 {
	if s.hasSpr {
		s.hasSpr = false
		return s.spare
	}
	for {
		u := float64(2*s.Float64()) - 1
		v := float64(2*s.Float64()) - 1
		q := float64(u*u) + float64(v*v)
		if q >= 1 || q == 0 {
			continue
		}
		f := math.Sqrt(float64(-2*Log(q)) / q)
		s.spare = float64(v * f)
		s.hasSpr = true
		return float64(u * f)
	}
}

// FillNormal fills dst with standard normal variates.
func (s *Stream) FillNormal(dst []float64) {
	for i := range dst {
		dst[i] = s.Normal()
	}
}

// FillRademacher fills dst with ±1.
func (s *Stream) FillRademacher(dst []float64) {
	for i := range dst {
		dst[i] = s.Rademacher()
	}
}

const (
	ln2Hi = 6.93147180369123816490e-01 // 0x3fe62e42fee00000
	ln2Lo = 1.90821492927058770002e-10 // 0x3dea39ef35793c76
)

// Log is the natural logarithm for finite x > 0, accurate to about one ulp,
// and bit-identical on every platform: each product is rounded explicitly,
// so the compiler cannot fuse it into an FMA. It returns NaN for x <= 0.
//
// With x = m·2^e and m in [√½, √2), log m = 2 atanh(s), s = (m-1)/(m+1),
// |s| < 0.1716, summed as an odd series in s up to s^23 (truncation below
// 2^-60 relative).
func Log(x float64) float64 {
	if !(x > 0) || math.IsInf(x, 1) {
		if x == 0 {
			return math.Inf(-1)
		}
		if math.IsInf(x, 1) {
			return x
		}
		return math.NaN()
	}
	m, e := math.Frexp(x) // m in [0.5, 1)
	if m < math.Sqrt2/2 {
		m *= 2
		e--
	}
	f := m - 1 // exact (Sterbenz)
	s := f / (2 + f)
	z := float64(s * s)
	// 2 atanh(s) = 2s (1 + z/3 + z²/5 + ... + z^11/23)
	p := 1.0 / 23
	for k := 21; k >= 1; k -= 2 {
		p = float64(p*z) + 1/float64(k)
	}
	r := float64(float64(2*s) * p)
	fe := float64(e)
	return float64(fe*ln2Hi) + (float64(fe*ln2Lo) + r)
}
