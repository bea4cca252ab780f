// Package promtest runs a real Prometheus server for tests, scraping small
// in-process exporters whose values the test sets.
//
// The prometheus binary must be on PATH: .ci/run installs Debian's
// prometheus package when it is missing. Without it a test skips, saying
// so, unless MLBOT_TEST_REQUIRE names prometheus (as .ci/run sets it), in
// which case it fails.
package promtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlbot/mlbot/internal/testreq"
)

// ScrapeInterval is how often the server scrapes its targets.
const ScrapeInterval = time.Second

// startTimeout bounds how long Start waits for the server to be ready.
const startTimeout = 60 * time.Second

// Server is a running Prometheus server.
type Server struct {
	url string
}

// Start runs a Prometheus server on a free loopback port that scrapes the
// given host:port targets every second (job "test", path /metrics), waits
// until it is ready, and stops it when the test ends.
func Start(t testing.TB, targets ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		testreq.Missing(t, "prometheus", "promtest: the prometheus binary is not on PATH (%v); "+
			"install it (apt-get install prometheus) to run this test, as .ci/run does", err)
		return nil
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config(targets)), 0o644); err != nil {
		t.Fatalf("promtest: %v", err)
	}
	// A free port found by listening may be taken again before Prometheus
	// binds it; a server that exits at once is retried on another port.
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ {
		addr := freeAddr(t)
		storage := filepath.Join(dir, "data"+strconv.Itoa(attempt))
		out := &syncBuffer{}
		cmd := exec.Command(bin,
			"--config.file="+cfg,
			"--storage.tsdb.path="+storage,
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
		cmd.Stdout, cmd.Stderr = out, out
		setProcAttr(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("promtest: starting %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		base := "http://" + addr
		switch waitReady(base, exited) {
		case nil:
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("promtest: prometheus output:\n%s", out.String())
				}
			})
			return &Server{url: base}
		case errExited:
			lastOut = out.String()
			continue
		default:
			stop()
			t.Fatalf("promtest: prometheus at %s was not ready within %s; output:\n%s", base, startTimeout, out.String())
		}
	}
	t.Fatalf("promtest: prometheus exited at start three times; last output:\n%s", lastOut)
	return nil
}

// URL is the server's base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// WaitForSeries polls the server until query returns data (a non-empty
// vector or matrix, or a scalar that is a number), failing the test after
// timeout.
func (s *Server) WaitForSeries(t testing.TB, query string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, err := s.hasData(client, query)
		switch {
		case err != nil:
			last = err.Error()
		case ok:
			return
		default:
			last = "no data"
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s: no series within %s (last: %s)", query, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) hasData(client *http.Client, query string) (bool, error) {
	resp, err := client.Get(s.url + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return false, fmt.Errorf("answer %d: %v", resp.StatusCode, err)
	}
	if r.Status != "success" {
		return false, fmt.Errorf("answer %d: %s", resp.StatusCode, r.Error)
	}
	if r.Data.ResultType == "scalar" {
		var sc [2]any // [time, "value"]
		if err := json.Unmarshal(r.Data.Result, &sc); err != nil {
			return false, err
		}
		return sc[1] != "NaN", nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(r.Data.Result, &list); err != nil {
		return false, err
	}
	return len(list) > 0, nil
}

// Exporter is a tiny HTTP server exposing /metrics with one gauge whose value
// the test sets.
type Exporter struct {
	srv   *httptest.Server
	gauge prometheus.Gauge
}

// NewExporter starts an exporter whose gauge is called name (initially 0),
// closed when the test ends.
func NewExporter(t testing.TB, name string) *Exporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "A value set by the test."})
	if err := reg.Register(g); err != nil {
		t.Fatalf("promtest: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &Exporter{srv: srv, gauge: g}
}

// SetValue sets the gauge; Prometheus sees it at its next scrape.
func (e *Exporter) SetValue(v float64) { e.gauge.Set(v) }

// Addr is the exporter's host:port, to pass to Start; Prometheus labels its
// series with instance="<Addr>".
func (e *Exporter) Addr() string { return e.srv.Listener.Addr().String() }

func config(targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", ScrapeInterval, ScrapeInterval)
	b.WriteString("scrape_configs:\n  - job_name: test\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: [")
	for i, tg := range targets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(tg))
	}
	b.WriteString("]\n")
	return b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("promtest: finding a free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

type startErr string

func (e startErr) Error() string { return string(e) }

const (
	errExited  = startErr("exited")
	errTimeout = startErr("timeout")
)

// waitReady polls /-/ready until it answers 200, the process exits, or
// startTimeout passes.
func waitReady(url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errExited
		default:
		}
		resp, err := client.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errTimeout
}

// syncBuffer collects a process's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
