package bot_test

// BenchmarkIngress measures the webhook endpoint against a bare handler that
// does only the unavoidable work (read the body, check the HMAC, decode the
// JSON, enqueue one asynq task whose id is the delivery id), side by side in
// one run, over real HTTP on loopback with keep-alive clients, against the
// Redis of MLBOT_TEST_REDIS_URL (database 10) or an in-process one.
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench Ingress -benchtime 3s ./bot/
//
// Each sub-benchmark reports req/s, p50-ms and p99-ms, and fails unless the
// number of tasks in Redis equals the number of 2xx answers (nothing lost,
// nothing doubled). The parent logs mlbot's throughput as a share of bare's.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs"
)

// ingressBenchDB is the Redis database of the bot package's benchmarks.
const ingressBenchDB = 10

// ingressParallelism × GOMAXPROCS keep-alive clients send at once.
const ingressParallelism = 8

// ingressResult is one sub-benchmark's last (largest-N) measurement.
type ingressResult struct {
	n        int
	reqPerS  float64
	p50, p99 time.Duration
	// cpuPerReq is the CPU time (user+system) of the whole test process,
	// clients included, per request.
	cpuPerReq time.Duration
}

// ingressRounds interleaves bare and mlbot this many times, so that load
// from other processes on the machine hits both alike; the parent logs the
// median ratio. go test -bench Ingress ./bot/ -args -ingress.rounds=5
var ingressRounds = flag.Int("ingress.rounds", 1, "BenchmarkIngress: interleaved bare/mlbot rounds")

func BenchmarkIngress(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", "github", "pull_request.opened.octokit.json"))
	if err != nil {
		b.Fatal(err)
	}
	secret := []byte("ingress-bench-secret")
	signer, err := jobs.NewTaskSigner([]byte("ingress-bench-task-key-0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	var ratios, cpuRatios []float64
	for round := 0; round < max(1, *ingressRounds); round++ {
		var bare, ml ingressResult
		b.Run("bare", func(b *testing.B) {
			bare = benchIngress(b, body, secret, func(c *asynq.Client) http.Handler {
				return bareWebhookHandler(secret, c)
			})
		})
		b.Run("mlbot", func(b *testing.B) {
			ml = benchIngress(b, body, secret, func(c *asynq.Client) http.Handler {
				return bot.NewWebhookHandler(bot.HandlerOptions{
					Webhook:  &github.Webhook{Secret: secret},
					Enqueuer: jobs.NewIngress(c, signer),
					// As `mlbot serve` logs by default: info and above.
					Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
				})
			})
		})
		if bare.reqPerS > 0 && ml.reqPerS > 0 {
			ratios = append(ratios, ml.reqPerS/bare.reqPerS)
			cpuRatios = append(cpuRatios, bare.cpuPerReq.Seconds()/ml.cpuPerReq.Seconds())
			b.Logf("round %d: mlbot %.0f req/s (p99 %.2f ms, %.0f µs CPU/req) vs bare %.0f req/s (p99 %.2f ms, %.0f µs CPU/req): %.1f%% of bare",
				round+1, ml.reqPerS, ms(ml.p99), us(ml.cpuPerReq), bare.reqPerS, ms(bare.p99), us(bare.cpuPerReq), 100*ml.reqPerS/bare.reqPerS)
		}
	}
	if len(ratios) > 0 {
		b.Logf("mlbot throughput = %.1f%% of bare (median of %d interleaved rounds; by CPU per request %.1f%%); target ≥ 80%%",
			100*median(ratios), len(ratios), 100*median(cpuRatios))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bareWebhookHandler is the floor the issue compares against: read the body,
// check the HMAC, decode the JSON, enqueue one task with the delivery id.
func bareWebhookHandler(secret []byte, c *asynq.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bot.DefaultMaxBodyBytes))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got, err := hex.DecodeString(strings.TrimPrefix(r.Header.Get(github.HeaderSignature256), "sha256="))
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			Action string `json:"action"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		id := r.Header.Get(github.HeaderDelivery)
		if _, err := c.EnqueueContext(r.Context(), asynq.NewTask(jobs.TypeWebhook, body),
			asynq.TaskID("github:"+id), asynq.Queue(jobs.QueueEvents)); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// benchIngress serves the handler made by mk on loopback, sends b.N signed
// deliveries with unique ids from parallel keep-alive clients, reports
// req/s and latency percentiles, and checks Redis holds one task per 2xx.
func benchIngress(b *testing.B, body, secret []byte, mk func(*asynq.Client) http.Handler) ingressResult {
	// Every invocation (each b.N) starts from an empty database, so the
	// task count below is this invocation's alone.
	rdb := redis.NewClient(redistest.Options(b, ingressBenchDB))
	b.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	mux := http.NewServeMux()
	mux.Handle("/webhooks/github", mk(client))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	url := srv.URL + "/webhooks/github"

	conns := 2 * ingressParallelism * runtime.GOMAXPROCS(0)
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	sig := github.Sign(secret, body)
	prefix := randomHex(6)
	var (
		seq            atomic.Int64
		ok2xx, non2xx  atomic.Int64
		transportErrs  atomic.Int64
		mu             sync.Mutex
		lat            = make([]time.Duration, 0, b.N)
		firstBadStatus atomic.Value
	)
	b.SetParallelism(ingressParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, rcpu0 := processCPU(), redisCPU(rdb)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 256)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(github.HeaderEvent, "pull_request")
			req.Header.Set(github.HeaderDelivery, prefix+"-"+strconv.FormatInt(seq.Add(1), 10))
			req.Header.Set(github.HeaderSignature256, sig)
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				transportErrs.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				ok2xx.Add(1)
			} else {
				non2xx.Add(1)
				firstBadStatus.CompareAndSwap(nil, resp.Status)
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	cpu, rcpu := processCPU()-cpu0, redisCPU(rdb)-rcpu0
	b.StopTimer()

	insp := asynq.NewInspectorFromRedisClient(rdb)
	var tasks int
	if qi, err := insp.GetQueueInfo(jobs.QueueEvents); err == nil {
		tasks = qi.Size
	} else if ok2xx.Load() > 0 {
		b.Fatalf("inspect queue %s: %v", jobs.QueueEvents, err)
	}
	if int64(tasks) != ok2xx.Load() {
		b.Fatalf("%d 2xx answers but %d tasks in Redis: every accepted delivery must be exactly one task", ok2xx.Load(), tasks)
	}
	if n := transportErrs.Load(); n > 0 {
		b.Errorf("%d of %d requests failed in transport", n, b.N)
	}
	if n := non2xx.Load(); n > 0 {
		b.Errorf("%d of %d requests answered non-2xx (first: %v)", n, b.N, firstBadStatus.Load())
	}

	slices.Sort(lat)
	res := ingressResult{n: b.N, reqPerS: float64(b.N) / elapsed.Seconds(), p50: percentile(lat, 0.50), p99: percentile(lat, 0.99),
		cpuPerReq: cpu / time.Duration(b.N)}
	b.ReportMetric(res.reqPerS, "req/s")
	b.ReportMetric(us(res.cpuPerReq), "cpu-µs/req")
	if os.Getenv("MLBOT_TEST_REDIS_URL") != "" {
		// The Redis server's own CPU (server-wide: other clients count too).
		b.ReportMetric(us(rcpu/time.Duration(b.N)), "redis-cpu-µs/req")
	}
	b.ReportMetric(ms(res.p50), "p50-ms")
	b.ReportMetric(ms(res.p99), "p99-ms")
	return res
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// redisCPU is the CPU time the Redis server has used (INFO cpu), zero when
// it cannot be read.
func redisCPU(rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func randomHex(n int) string {
	p := make([]byte, n)
	rand.Read(p)
	return hex.EncodeToString(p)
}
