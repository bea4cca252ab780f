package stats

import (
	"testing"
)

// BenchmarkBootstrap is the paired bootstrap at the size the README
// quotes: 100,000 examples × 10,000 resamples, on every core
// (GOMAXPROCS).
func BenchmarkBootstrap(b *testing.B) {
	d := normals(100_000, 0.01, 1)
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		Bootstrap(d, Options{})
	}
	reportCPU(b, start)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(100_000*10_000), "ns/draw")
}

// BenchmarkBootstrapOneWorker is the same bootstrap on one goroutine.
func BenchmarkBootstrapOneWorker(b *testing.B) {
	d := normals(100_000, 0.01, 1)
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		Bootstrap(d, Options{Workers: 1})
	}
	reportCPU(b, start)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(100_000*10_000), "ns/draw")
}

// BenchmarkMean is the floor: one pass computing the mean of 100,000
// values, which the bootstrap does 10,000 times over random indices.
func BenchmarkMean(b *testing.B) {
	d := normals(100_000, 0.01, 1)
	var sink float64
	for b.Loop() {
		sink += Mean(d)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/value")
	_ = sink
}

// BenchmarkNaiveMatrix is the textbook implementation this package
// avoids: draw the n × B index matrix first, then sum each row, on one
// goroutine. At 100,000 × 10,000 the matrix alone would be 8 GB, so it
// runs at 10,000 × 1,000 (80 MB).
func BenchmarkNaiveMatrix(b *testing.B) {
	const n, resamples = 10_000, 1_000
	d := normals(n, 0.01, 1)
	b.ReportAllocs()
	for b.Loop() {
		g := newGenerator(1, 0)
		idx := make([]int, n*resamples)
		for i := range idx {
			idx[i] = int(g.below64(n))
		}
		means := make([]float64, resamples)
		for r := range resamples {
			var s float64
			for _, j := range idx[r*n : (r+1)*n] {
				s += d[j]
			}
			means[r] = s / n
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(n*resamples), "ns/draw")
}
