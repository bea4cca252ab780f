package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/agentapi"
	"github.com/mlbot/mlbot/web/agentsrv"
)

// benchLogBytes is how much log BenchmarkAgentLog pushes per iteration:
// 256 MiB unless -agentlog.mib says otherwise (1024 for the 1 GiB).
var benchLogBytes = 256 << 20

func init() {
	flag.Func("agentlog.mib", "MiB of log BenchmarkAgentLog pushes per iteration (default 256)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number of MiB, not %q", s)
		}
		benchLogBytes = n << 20
		return nil
	})
}

// benchWrite is the size of each write, as a step's output pipe delivers.
const benchWrite = 32 << 10

// Environment of the server process BenchmarkAgentLog starts.
const (
	envBenchServer = "MLBOT_AGENT_BENCH_SERVER" // the Redis URL
)

func TestMain(m *testing.M) {
	if url := os.Getenv(envBenchServer); url != "" {
		if err := serveForBench(url); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// heapPeak samples the heap every few milliseconds and keeps the highest
// HeapAlloc seen since the last reset.
type heapPeak struct {
	mu         sync.Mutex
	base, peak uint64
	// rssBase and rssPeak are the process's resident set (VmRSS), which
	// also counts what the heap does not: stacks, the runtime, buffers.
	rssBase, rssPeak uint64
}

func (h *heapPeak) start() {
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			rss := residentBytes()
			h.mu.Lock()
			h.peak = max(h.peak, ms.HeapAlloc)
			h.rssPeak = max(h.rssPeak, rss)
			h.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

// reset starts a new measurement from the heap and the resident set as
// they are now.
func (h *heapPeak) reset() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := residentBytes()
	h.mu.Lock()
	h.base, h.peak = ms.HeapAlloc, ms.HeapAlloc
	h.rssBase, h.rssPeak = rss, rss
	h.mu.Unlock()
}

// growth is the peak's excess over the heap at the reset, in MiB.
func (h *heapPeak) growth() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return float64(h.peak-h.base) / (1 << 20)
}

// rssGrowth is the resident set's peak excess over the reset, in MiB (0
// where /proc/self/status cannot be read).
func (h *heapPeak) rssGrowth() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return float64(h.rssPeak-h.rssBase) / (1 << 20)
}

// residentBytes reads this process's VmRSS from /proc/self/status, 0
// where it cannot.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// serveForBench is the server process: a Hub on the Redis at url, its
// handler on a loopback port, plus /bench/open (opens a run, answers its
// token) and /bench/heap (?reset, or the growth since). It prints its
// address and serves until killed.
func serveForBench(url string) error {
	rdb, err := store.Dial(url)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mlbot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hub, err := agentsrv.New(store.New(rdb, "mlbot:"), dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return err
	}
	var heap heapPeak
	heap.start()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/agent/", hub.Handler())
	mux.HandleFunc("/bench/open", func(w http.ResponseWriter, r *http.Request) {
		sess, err := hub.Open(r.Context(), r.URL.Query().Get("id"), agentapi.Job{}, src, time.Hour)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, sess.Token)
	})
	mux.HandleFunc("/bench/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("reset") {
			heap.reset()
		}
		json.NewEncoder(w).Encode([2]float64{heap.growth(), heap.rssGrowth()})
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	return http.Serve(l, mux)
}

// BenchmarkAgentLog pushes benchLogBytes of log from a logPusher (the
// agent's side, this process) to a Hub in a process of its own (mlbot's
// side), in benchWrite writes, and reports the throughput and how far
// each side's heap grew above where it started (sampled every 5 ms). The
// file case writes the same bytes to a file, as the local runner's log
// does, for comparison. Run it with MLBOT_TEST_REDIS_URL set: without it
// the in-process Redis lives in this process and its memory counts on
// the agent's side.
func BenchmarkAgentLog(b *testing.B) {
	data := make([]byte, benchWrite)
	for i := range data {
		data[i] = "0123456789abcdef\n"[i%17]
	}
	var heap heapPeak
	heap.start()

	b.Run("file", func(b *testing.B) {
		b.SetBytes(int64(benchLogBytes))
		heap.reset()
		for b.Loop() {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			for n := 0; n < benchLogBytes; n += len(data) {
				if _, err := f.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
		}
		b.ReportMetric(heap.growth(), "heap-MiB")
	})

	b.Run("agentsrv", func(b *testing.B) {
		base := startBenchServer(b)
		b.SetBytes(int64(benchLogBytes))
		var serverGrowth, serverRSS float64
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			token := benchGet(b, base+"/bench/open?id=bench"+fmt.Sprint(i))
			c, err := agentapi.NewClient(base, token)
			if err != nil {
				b.Fatal(err)
			}
			benchGet(b, base+"/bench/heap?reset")
			heap.reset()
			b.StartTimer()
			p := newLogPusher(context.Background(), c, 0, pushOptions{})
			for n := 0; n < benchLogBytes; n += len(data) {
				p.Write(data)
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if p.Offset() != int64(benchLogBytes) {
				b.Fatalf("mlbot holds %d bytes of the log, want %d", p.Offset(), benchLogBytes)
			}
			b.StopTimer()
			var g [2]float64
			if err := json.Unmarshal([]byte(benchGet(b, base+"/bench/heap")), &g); err != nil {
				b.Fatal(err)
			}
			serverGrowth, serverRSS = max(serverGrowth, g[0]), max(serverRSS, g[1])
			b.StartTimer()
		}
		b.ReportMetric(heap.growth(), "agent-heap-MiB")
		b.ReportMetric(serverGrowth, "server-heap-MiB")
		b.ReportMetric(heap.rssGrowth(), "agent-rss-MiB")
		b.ReportMetric(serverRSS, "server-rss-MiB")
	})
}

// startBenchServer starts the server process and returns its base URL.
func startBenchServer(b *testing.B) string {
	url := redistest.URL(b, agentRedisDB)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBenchServer+"="+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("the server process: %v", err)
	}
	return "http://" + strings.TrimSpace(addr)
}

func benchGet(b *testing.B, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}
