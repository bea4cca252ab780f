package stats

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// exactMcNemar computes the two-sided exact McNemar p-value with
// arbitrary-precision integers: 2 · Σ_{k ≤ min(b,c)} C(b+c, k) / 2^(b+c).
func exactMcNemar(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	sum, term := new(big.Int), big.NewInt(1) // term is C(n, k)
	for k := 0; k <= min(b, c); k++ {
		sum.Add(sum, term)
		term.Mul(term, big.NewInt(int64(n-k)))
		term.Quo(term, big.NewInt(int64(k+1)))
	}
	r := new(big.Rat).SetFrac(new(big.Int).Mul(sum, big.NewInt(2)), new(big.Int).Lsh(big.NewInt(1), uint(n)))
	f, _ := r.Float64()
	return math.Min(1, f)
}

func TestMcNemar(t *testing.T) {
	cases := []struct {
		b, c int
		want float64 // from R's binom.test(min(b,c), b+c)$p.value, or 1
	}{
		{10, 2, 0.03857422},
		{2, 10, 0.03857422},
		{0, 0, 1},
		{5, 5, 1},
		{1, 0, 1},
		{6, 0, 0.03125},
	}
	for _, tc := range cases {
		if got := McNemar(tc.b, tc.c); math.Abs(got-tc.want) > 5e-8 {
			t.Errorf("McNemar(%d, %d) = %.8f, want %.8f", tc.b, tc.c, got, tc.want)
		}
	}
	// Large counts against exact rational arithmetic.
	for _, bc := range [][2]int{{600, 500}, {1000, 1000}, {3000, 2850}, {40, 1}} {
		want := exactMcNemar(bc[0], bc[1])
		got := McNemar(bc[0], bc[1])
		if math.Abs(got-want) > 1e-9*math.Max(want, 1e-300) && math.Abs(got-want) > 1e-12 {
			t.Errorf("McNemar(%d, %d) = %.12g, exact %.12g", bc[0], bc[1], got, want)
		}
	}
}

func TestHolm(t *testing.T) {
	// R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
	got := Holm([]float64{0.01, 0.04, 0.03, 0.005})
	want := []float64{0.03, 0.06, 0.06, 0.02}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("Holm = %v, want %v", got, want)
			break
		}
	}
	// Capped at 1, and one test is its own family.
	if got := Holm([]float64{0.6, 0.7}); got[0] != 1 || got[1] != 1 {
		t.Errorf("Holm(0.6, 0.7) = %v, want [1 1]", got)
	}
	if got := Holm([]float64{0.02}); got[0] != 0.02 {
		t.Errorf("Holm(0.02) = %v", got)
	}
}

// normals returns n draws of N(mu, 1) from a fixed stream.
func normals(n int, mu float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = mu + r.NormFloat64()
	}
	return out
}

// TestBootstrapAgainstNormal checks the percentile interval and the
// p-value against the normal approximation, which a large sample of
// normal differences makes all but exact.
func TestBootstrapAgainstNormal(t *testing.T) {
	const n = 5000
	for _, mu := range []float64{0.031, 0.0, -0.02} {
		d := normals(n, mu, 7)
		mean := Mean(d)
		var ss float64
		for _, v := range d {
			ss += (v - mean) * (v - mean)
		}
		se := math.Sqrt(ss/n) / math.Sqrt(n)
		half := 1.959963984540054 * se
		r := Bootstrap(d, Options{})
		if math.Abs(r.Delta-mean) > 1e-12 {
			t.Errorf("mu %v: delta %v, mean %v", mu, r.Delta, mean)
		}
		if math.Abs(r.Low-(mean-half)) > 0.05*half || math.Abs(r.High-(mean+half)) > 0.05*half {
			t.Errorf("mu %v: interval [%.5f, %.5f], normal approximation [%.5f, %.5f]", mu, r.Low, r.High, mean-half, mean+half)
		}
		wantP := math.Erfc(math.Abs(mean/se) / math.Sqrt2)
		if math.Abs(r.P-wantP) > 0.01 {
			t.Errorf("mu %v: p %.4f, normal approximation %.4f (z %.2f)", mu, r.P, wantP, mean/se)
		}
	}
}

func TestBootstrapDeterministic(t *testing.T) {
	d := normals(3000, 0.02, 3)
	a := Bootstrap(d, Options{Workers: 1})
	b := Bootstrap(d, Options{Workers: 5})
	c := Bootstrap(d, Options{})
	if a != b || a != c {
		t.Errorf("results differ with the number of workers:\n%+v\n%+v\n%+v", a, b, c)
	}
	other := Bootstrap(d, Options{Seed: 99})
	if other.Low == a.Low && other.High == a.High {
		t.Errorf("another seed gave the same interval %+v", other)
	}
	// A resample count that is not a multiple of the chunk size.
	x := Bootstrap(d, Options{Resamples: 1001, Workers: 1})
	y := Bootstrap(d, Options{Resamples: 1001, Workers: 3})
	if x != y {
		t.Errorf("1001 resamples: %+v vs %+v", x, y)
	}
}

func TestPaired(t *testing.T) {
	// 0/1 fields: McNemar with the discordant counts.
	base := make([]float64, 100)
	head := make([]float64, 100)
	for i := range base {
		base[i], head[i] = 1, 1
	}
	for i := range 10 {
		head[i] = 0 // 10 pairs 1 → 0
	}
	head[50], base[50] = 1, 0 // 2 pairs 0 → 1
	head[51], base[51] = 1, 0
	r, err := Paired(base, head, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Test != McNemarTest || r.B != 10 || r.C != 2 || math.Abs(r.P-0.03857422) > 1e-7 || math.Abs(r.Delta+0.08) > 1e-12 {
		t.Errorf("binary: %+v, want McNemar b=10 c=2 p=0.03857 delta −0.08", r)
	}
	if !(r.Low < r.Delta && r.Delta < r.High && r.High < 0) {
		t.Errorf("binary interval [%v, %v] around %v", r.Low, r.High, r.Delta)
	}
	// Continuous: the bootstrap.
	head[3] = 0.5
	r, err = Paired(base, head, Options{})
	if err != nil || r.Test != BootstrapTest || r.B != 0 {
		t.Errorf("continuous: %+v, %v; want the bootstrap", r, err)
	}
	// Identical runs: no difference at all.
	r, _ = Paired(base, base, Options{})
	if r.P != 1 || r.Low != 0 || r.High != 0 {
		t.Errorf("identical runs: %+v, want p 1 and [0, 0]", r)
	}
	for _, bad := range []struct {
		name       string
		base, head []float64
	}{
		{"lengths", []float64{1}, []float64{1, 2}},
		{"empty", nil, nil},
		{"NaN", []float64{math.NaN()}, []float64{1}},
		{"Inf", []float64{1}, []float64{math.Inf(1)}},
	} {
		if _, err := Paired(bad.base, bad.head, Options{}); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, tc := range []struct{ q, want float64 }{{0, 1}, {1, 5}, {0.5, 3}, {0.25, 2}, {0.1, 1.4}} {
		if got := Quantile(s, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

// TestUniformDraws checks the index draws are uniform: over many
// resamples of a one-hot vector, each index is drawn as often as any.
func TestUniformDraws(t *testing.T) {
	const n = 7
	counts := make([]float64, n)
	g := newGenerator(1, 0)
	for i := range n {
		d := make([]float64, n)
		d[i] = 1
		for range 20000 {
			counts[i] += g.resampleMean(d) * n
		}
	}
	for i, c := range counts {
		// Expected 20000 per index; the standard deviation is about 130.
		if math.Abs(c-20000) > 700 {
			t.Errorf("index %d drawn %v times of an expected 20000", i, c)
		}
	}
}
