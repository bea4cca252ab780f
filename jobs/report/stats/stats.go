// Package stats tells a real change of a model from noise by comparing
// two runs example by example: a paired bootstrap of the mean difference
// (a 95% confidence interval and a two-sided p-value), the exact McNemar
// test for fields that are all 0 or 1, and Holm's correction across a
// family of tests. It imports nothing of mlbot's.
//
// Every number it returns is a function of its inputs and the seed alone:
// the resamples are split into fixed chunks, each drawn from its own
// generator seeded from the seed and the chunk's index, so the result
// does not depend on how many goroutines drew them. Memory is linear in
// the number of examples plus the number of resamples; the n × B matrix
// of resampled indices is never built.
package stats

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Defaults of a comparison.
const (
	// DefaultResamples is the number of bootstrap resamples.
	DefaultResamples = 10_000
	// DefaultSeed seeds the bootstrap, so that the same two runs always
	// give the same interval and p-value.
	DefaultSeed uint64 = 20260601
	// Level is the confidence level of the interval.
	Level = 0.95
)

// Tests a p-value comes from.
const (
	// BootstrapTest is the paired bootstrap test of a zero mean difference.
	BootstrapTest = "bootstrap"
	// McNemarTest is the exact McNemar test: a two-sided binomial test on
	// the discordant pairs.
	McNemarTest = "mcnemar"
)

// chunkSize is how many resamples one generator draws; chunks, not
// goroutines, own the random streams.
const chunkSize = 128

// maxResamples bounds the resamples a caller may ask for (memory is one
// float64 each).
const maxResamples = 1_000_000

// Result is the paired comparison of head with base over the same
// examples.
type Result struct {
	// N is the number of paired examples.
	N int `json:"n"`
	// Delta is mean(head) − mean(base), the mean of the differences.
	Delta float64 `json:"delta"`
	// Low and High bound the 95% percentile bootstrap interval of Delta.
	Low  float64 `json:"low"`
	High float64 `json:"high"`
	// P is the two-sided p-value of "no difference".
	P float64 `json:"p"`
	// Test names where P comes from: BootstrapTest or McNemarTest.
	Test string `json:"test"`
	// B and C are the discordant pairs of a McNemar test: examples that
	// are 1 in base and 0 in head, and 0 in base and 1 in head.
	B int `json:"b,omitempty"`
	C int `json:"c,omitempty"`
}

// Options set the bootstrap. Zero values take the defaults.
type Options struct {
	// Resamples is the number of bootstrap resamples (DefaultResamples).
	Resamples int
	// Seed seeds the resamples (DefaultSeed when zero).
	Seed uint64
	// Workers is how many goroutines draw them (GOMAXPROCS when zero);
	// it changes how fast, never what.
	Workers int
}

func (o Options) withDefaults() Options {
	if o.Resamples <= 0 {
		o.Resamples = DefaultResamples
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Paired compares head with base, example i of one paired with example i
// of the other. The interval is always the bootstrap's; the p-value is
// the exact McNemar test when every value of both is 0 or 1, and the
// bootstrap's otherwise. Values must be finite and the slices of one
// length of at least 1.
func Paired(base, head []float64, o Options) (Result, error) {
	if len(base) != len(head) {
		return Result{}, fmt.Errorf("stats: %d base values, %d head values", len(base), len(head))
	}
	if len(base) == 0 {
		return Result{}, errors.New("stats: no examples")
	}
	o = o.withDefaults()
	if o.Resamples > maxResamples {
		return Result{}, fmt.Errorf("stats: %d resamples; at most %d", o.Resamples, maxResamples)
	}
	d := make([]float64, len(base))
	binary := true
	var b, c int
	for i := range base {
		x, y := base[i], head[i]
		if !finite(x) || !finite(y) {
			return Result{}, fmt.Errorf("stats: example %d is not a finite number", i)
		}
		d[i] = y - x
		if (x != 0 && x != 1) || (y != 0 && y != 1) {
			binary = false
		}
		switch {
		case x == 1 && y == 0:
			b++
		case x == 0 && y == 1:
			c++
		}
	}
	r := Bootstrap(d, o)
	r.N = len(d)
	if binary {
		r.Test, r.P, r.B, r.C = McNemarTest, McNemar(b, c), b, c
	}
	return r, nil
}

// Bootstrap resamples the differences d (with replacement, len(d) at a
// time) o.Resamples times and returns their mean, the 95% percentile
// interval of the resampled means, and the two-sided bootstrap p-value of
// a zero mean: the share of resampled means at least as far from the
// mean as the mean is from zero, counted as (1 + k) / (1 + B) so that it
// is never zero. d must not be empty.
func Bootstrap(d []float64, o Options) Result {
	o = o.withDefaults()
	mean := Mean(d)
	means := resampleMeans(d, o)
	far := 0
	for _, m := range means {
		if math.Abs(m-mean) >= math.Abs(mean) {
			far++
		}
	}
	slices.Sort(means)
	alpha := (1 - Level) / 2
	return Result{
		N: len(d), Delta: mean,
		Low: Quantile(means, alpha), High: Quantile(means, 1-alpha),
		P:    float64(1+far) / float64(1+len(means)),
		Test: BootstrapTest,
	}
}

// resampleMeans returns the o.Resamples bootstrap means of d, in
// resample order. Resample b belongs to chunk b/chunkSize, whose generator
// is seeded from o.Seed and the chunk's index alone.
func resampleMeans(d []float64, o Options) []float64 {
	means := make([]float64, o.Resamples)
	chunks := (o.Resamples + chunkSize - 1) / chunkSize
	workers := min(o.Workers, chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= chunks {
					return
				}
				g := newGenerator(o.Seed, uint64(k))
				for b := k * chunkSize; b < min((k+1)*chunkSize, len(means)); b++ {
					means[b] = g.resampleMean(d)
				}
			}
		}()
	}
	wg.Wait()
	return means
}

// Mean is the arithmetic mean of x (NaN for none).
func Mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// Quantile returns the q-quantile of sorted by linear interpolation
// between order statistics (Hyndman and Fan's type 7, R's default).
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	h := q * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// McNemar returns the two-sided p-value of the exact McNemar test for b
// pairs that went from 1 to 0 and c that went from 0 to 1: twice the
// probability of a count at most min(b, c) in b + c fair coin tosses,
// at most 1.
func McNemar(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	return math.Min(1, 2*binomCDFHalf(min(b, c), n))
}

// binomCDFHalf is P(X ≤ k) for X ~ Binomial(n, 1/2), summed in log space
// so that n in the millions neither underflows nor loses precision.
func binomCDFHalf(k, n int) float64 {
	lgN, _ := math.Lgamma(float64(n) + 1)
	logHalfN := float64(n) * math.Ln2
	terms := make([]float64, 0, k+1)
	top := math.Inf(-1)
	for i := 0; i <= k; i++ {
		a, _ := math.Lgamma(float64(i) + 1)
		b, _ := math.Lgamma(float64(n-i) + 1)
		t := lgN - a - b - logHalfN
		terms = append(terms, t)
		top = math.Max(top, t)
	}
	var s float64
	for _, t := range terms {
		s += math.Exp(t - top)
	}
	return math.Exp(top + math.Log(s))
}

// Holm returns Holm's step-down adjusted p-values of ps, in the order of
// ps: sorted ascending, the i-th smallest (from 0) is multiplied by
// m − i, made no smaller than the one before it, and capped at 1. A test
// rejects at level α after correction when its adjusted p-value is below
// α.
func Holm(ps []float64) []float64 {
	m := len(ps)
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case ps[a] < ps[b]:
			return -1
		case ps[a] > ps[b]:
			return 1
		}
		return 0
	})
	out := make([]float64, m)
	running := 0.0
	for rank, i := range idx {
		running = math.Max(running, math.Min(1, float64(m-rank)*ps[i]))
		out[i] = running
	}
	return out
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
