package bot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
)

// rateGauges reads mlbot_host_rate_limit_{remaining,limit} of forge from
// the default registry.
func rateGauges(t *testing.T, forge string) (remaining, limit float64) {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	remaining, limit = -1, -1
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != forge {
				continue
			}
			switch mf.GetName() {
			case "mlbot_host_rate_limit_remaining":
				remaining = m.GetGauge().GetValue()
			case "mlbot_host_rate_limit_limit":
				limit = m.GetGauge().GetValue()
			}
		}
	}
	return remaining, limit
}

// TestRateLimitFromHostSimulators wires each host's client to its
// simulator the way cmd/mlbot does (through bot.InstrumentTransport) and
// checks that the rate-limit gauges follow what the host answered.
func TestRateLimitFromHostSimulators(t *testing.T) {
	ctx := context.Background()
	sha := "c4c79227ed610f1151f05bbc5be33b4f340d39c8"
	status := bot.Status{Context: "mlbot/train-eval", State: bot.StatePending, Description: "queued"}

	t.Run("github", func(t *testing.T) {
		sim := github.NewSimulator()
		sim.AddToken("ghp_ratetest")
		srv := httptest.NewServer(sim)
		defer srv.Close()
		c, err := github.New(github.Options{BaseURL: srv.URL, Token: "ghp_ratetest",
			HTTPClient: &http.Client{Transport: bot.InstrumentTransport("github", nil)}})
		if err != nil {
			t.Fatal(err)
		}
		repo := bot.Repo{Forge: "github", FullName: "acme/model"}
		for i := 1; i <= 3; i++ {
			if err := c.CreateStatus(ctx, repo, sha, status); err != nil {
				t.Fatal(err)
			}
			rem, lim := rateGauges(t, "github")
			// The simulator's budget is 5000 calls an hour; each call spends one.
			if lim != 5000 || rem != float64(5000-i) {
				t.Fatalf("after %d calls: remaining, limit = %v, %v; want %d, 5000", i, rem, lim, 5000-i)
			}
		}
	})

	t.Run("gitlab", func(t *testing.T) {
		sim := gitlab.NewSimulator()
		sim.AddToken("glpat-ratetest")
		sim.AddProject(42, "group/model")
		srv := httptest.NewServer(sim)
		defer srv.Close()
		c, err := gitlab.New(gitlab.Options{BaseURL: srv.URL, Token: "glpat-ratetest",
			HTTPClient: &http.Client{Transport: bot.InstrumentTransport("gitlab", nil)}})
		if err != nil {
			t.Fatal(err)
		}
		repo := bot.Repo{Forge: "gitlab", ID: 42, FullName: "group/model"}
		var prev float64 = gitlab.DefaultRateLimit + 1
		for range 3 {
			if err := c.CreateStatus(ctx, repo, sha, status); err != nil {
				t.Fatal(err)
			}
			rem, lim := rateGauges(t, "gitlab")
			if lim != gitlab.DefaultRateLimit || rem < 0 || rem >= prev {
				t.Fatalf("remaining, limit = %v, %v; want the limit %d and fewer remaining than %v", rem, lim, gitlab.DefaultRateLimit, prev)
			}
			prev = rem
		}
	})
}
