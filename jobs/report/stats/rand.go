package stats

import "math/bits"

// generator is xoshiro256** (Blackman and Vigna), seeded through
// SplitMix64. It is written out here rather than taken from math/rand so
// that the stream, and with it every interval mlbot has reported, stays
// the same across Go releases.
type generator struct{ s0, s1, s2, s3 uint64 }

// newGenerator returns the generator of chunk k of a bootstrap seeded
// with seed.
func newGenerator(seed, k uint64) *generator {
	x := seed ^ (k+1)*0x9e3779b97f4a7c15
	var g generator
	g.s0, x = splitMix(x)
	g.s1, x = splitMix(x)
	g.s2, x = splitMix(x)
	g.s3, _ = splitMix(x)
	return &g
}

// splitMix returns the next output of SplitMix64 from state x, and the
// new state.
func splitMix(x uint64) (uint64, uint64) {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31), x
}

func (g *generator) next() uint64 {
	out := bits.RotateLeft64(g.s1*5, 7) * 9
	t := g.s1 << 17
	g.s2 ^= g.s0
	g.s3 ^= g.s1
	g.s1 ^= g.s2
	g.s0 ^= g.s3
	g.s2 ^= t
	g.s3 = bits.RotateLeft64(g.s3, 45)
	return out
}

// below32 returns a uniform integer in [0, n) from the 32 random bits r,
// by Lemire's multiply-and-shift; ok is false for the rare r that must
// be rejected to keep the draw exactly uniform.
func below32(r uint32, n uint32, threshold uint32) (uint32, bool) {
	m := uint64(r) * uint64(n)
	return uint32(m >> 32), uint32(m) >= threshold
}

// resampleMean draws len(d) values of d with replacement and returns
// their mean. Each 64-bit output gives two indices when len(d) fits in 32
// bits, which halves the generator's share of the work.
func (g *generator) resampleMean(d []float64) float64 {
	n := len(d)
	if n >= 1<<32 {
		var s float64
		for range n {
			s += d[g.below64(uint64(n))]
		}
		return s / float64(n)
	}
	n32 := uint32(n)
	threshold := -n32 % n32 // (2^32 − n) mod n: below it, a draw is biased
	// Two accumulators, one per half of each 64-bit output, so that the
	// additions do not wait on each other.
	var s0, s1 float64
	i := 0
	for i+1 < n {
		r := g.next()
		j0, ok0 := below32(uint32(r), n32, threshold)
		j1, ok1 := below32(uint32(r>>32), n32, threshold)
		if ok0 && ok1 {
			s0 += d[j0]
			s1 += d[j1]
			i += 2
			continue
		}
		// A rejected half (rare): keep the other, draw again.
		if ok0 {
			s0 += d[j0]
			i++
		}
		if ok1 {
			s1 += d[j1]
			i++
		}
	}
	for i < n {
		if j, ok := below32(uint32(g.next()), n32, threshold); ok {
			s0 += d[j]
			i++
		}
	}
	return (s0 + s1) / float64(n)
}

// below64 returns a uniform integer in [0, n) by Lemire's method.
func (g *generator) below64(n uint64) uint64 {
	hi, lo := bits.Mul64(g.next(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(g.next(), n)
		}
	}
	return hi
}
