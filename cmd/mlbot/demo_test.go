package main

import (
	"bytes"
	"context"
	"strings"
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
