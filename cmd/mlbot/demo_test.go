package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/redistest"
)

// TestDemo runs `mlbot demo` for both hosts against the test Redis.
func TestDemo(t *testing.T) {
	for _, args := range [][]string{
		{"demo"},
		{"demo", "--forge", "gitlab"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			rurl := redistest.URL(t, cliRedisDB)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var out, errb bytes.Buffer
			start := time.Now()
			code := run(ctx, append(args, "--redis-url", rurl), &out, &errb)
			t.Logf("mlbot %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
			if code != 0 || !strings.Contains(out.String(), "Demo passed") {
				t.Fatalf("exit %d, want 0 and \"Demo passed\"\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
			}
			for _, want := range []string{"1. pushed main", "2. opened pull request #1", "3. pushed", "success", "failure", "<!-- mlbot:"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("demo output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer that a command writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoServe runs `mlbot demo --serve` and, while it serves, opens the
// pages it prints the way a newcomer would: the run page sends them to the
// simulator's sign-in page and back, alice sees it, a stranger does not.
// Interrupting the demo ends it cleanly.
func TestDemoServe(t *testing.T) {
	rurl := redistest.URL(t, cliRedisDB)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"demo", "--serve", "--redis-url", rurl}, &out, &errb) }()

	deadline := time.After(9 * time.Minute)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
		select {
		case code := <-done:
			t.Fatalf("demo --serve exited %d before serving:\n%s\n%s", code, out.String(), errb.String())
		case <-deadline:
			t.Fatalf("demo --serve never said it serves:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	printed := func(label string) string {
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), label) {
				f := strings.Fields(line)
				return f[len(f)-1]
			}
		}
		t.Fatalf("the demo printed no %q:\n%s", label, out.String())
		return ""
	}
	overview, runPage := printed("the overview"), printed("the run of pull request #1, second push")
	if !strings.HasSuffix(overview, "/") || !strings.Contains(runPage, "/runs/") {
		t.Fatalf("printed %q and %q", overview, runPage)
	}
	status, body, hops := visitAs(t, "alice", runPage)
	if status != http.StatusOK || !strings.Contains(body, "Verdict: failed") || len(hops) != 5 {
		t.Errorf("alice opened the run page: %d after %v:\n%s", status, hops, body)
	}
	if status, _, hops := visitAs(t, "stranger", runPage); status != http.StatusNotFound {
		t.Errorf("a stranger opened the run page: %d after %v", status, hops)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "stopping") {
			t.Errorf("demo --serve exited %d after the interrupt:\n%s", code, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("demo --serve did not stop after the interrupt")
	}
}
