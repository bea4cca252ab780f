package main

// The live log's latency, from a training's print to the run page's
// Server-Sent Event, side by side with the same line reaching the
// worker's own log file (the baseline: what a page reading the local file
// could do at best):
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench LiveLog -benchtime 5x ./cmd/mlbot/

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// liveLogPipeline prints a line with its own clock every 50 ms.
const liveLogPipeline = `version: 1
pipeline:
  train: "for i in $(seq 1 40); do echo \"tick $(date +%s%N)\"; sleep 0.05; done"
  evaluate: "echo '{\"accuracy\": 0.9}' > metrics.json"
  metrics: [metrics.json]
  timeout: 1m
metrics:
  accuracy: {goal: maximize}
`

// BenchmarkLiveLogLatency reports the p50 and p99 of the time from a
// training printing a line to the run page's stream delivering it
// (sse-p99-ms; target under 1 s), and of the same line reaching the log
// file on the worker's disk (file-p99-ms).
func BenchmarkLiveLogLatency(b *testing.B) {
	lb := newLatencyBench(b, liveLogPipeline)
	var sse, file []time.Duration
	for b.Loop() {
		b.StopTimer()
		sha, err := lb.sb.commit(fmt.Sprintf("live %d", lb.pushes))
		if err != nil {
			b.Fatal(err)
		}
		if err := lb.sb.pushBranch("bench"); err != nil {
			b.Fatal(err)
		}
		lb.pushes++
		lb.deliver(lb.sb.pr(lb.hook, prEvent{Action: "updated", HeadRef: "bench", HeadSHA: sha, BaseSHA: lb.mainSHA, Author: "alice", Association: "MEMBER"}))
		page := lb.awaitRunPage(sha)
		var wg sync.WaitGroup
		var fileLat []time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			fileLat = tailTicks(filepath.Join(lb.dataDir, "logs", path.Base(page)+".log"), 40)
		}()
		b.StartTimer()
		sse = append(sse, streamTicks(b, page+"/log/stream", 40)...)
		b.StopTimer()
		wg.Wait()
		file = append(file, fileLat...)
		lb.awaitFinal(sha, true)
		b.StartTimer()
	}
	b.ReportMetric(benchMS(benchPct(sse, 0.50)), "sse-p50-ms")
	b.ReportMetric(benchMS(benchPct(sse, 0.99)), "sse-p99-ms")
	b.ReportMetric(benchMS(benchPct(file, 0.50)), "file-p50-ms")
	b.ReportMetric(benchMS(benchPct(file, 0.99)), "file-p99-ms")
}

// awaitRunPage waits for a status of sha that links its run page.
func (lb *latencyBench) awaitRunPage(sha string) string {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range lb.sb.statuses(sha) {
			if strings.Contains(s.TargetURL, "/runs/") {
				return s.TargetURL
			}
		}
		time.Sleep(time.Millisecond)
	}
	lb.b.Fatalf("no run page for %s", sha[:7])
	return ""
}

// tickLatency parses "tick <unix ns>" and returns how long ago it was printed.
func tickLatency(line string, now time.Time) (time.Duration, bool) {
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "tick ")
	if !ok {
		return 0, false
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false
	}
	return now.Sub(time.Unix(0, ns)), true
}

// streamTicks reads the run page's stream until n ticks arrived.
func streamTicks(b *testing.B, url string, n int) []time.Duration {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out []time.Duration
	var partial string
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(out) < n {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d)
			continue
		}
		if line != "" || data == nil {
			continue
		}
		now := time.Now()
		text := partial + strings.Join(data, "\n")
		data = nil
		lines := strings.Split(text, "\n")
		partial = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			if d, ok := tickLatency(l, now); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

// tailTicks polls the log file every millisecond until n ticks were in it.
func tailTicks(file string, n int) []time.Duration {
	var out []time.Duration
	var seen int64
	var partial string
	deadline := time.Now().Add(60 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		b, err := os.ReadFile(file)
		if err == nil && int64(len(b)) > seen {
			now := time.Now()
			text := partial + string(b[seen:])
			seen = int64(len(b))
			lines := strings.Split(text, "\n")
			partial = lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				if d, ok := tickLatency(l, now); ok {
					out = append(out, d)
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	return out
}
