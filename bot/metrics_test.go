package bot

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns the value of the sample of family name whose labels
// include want, read from the default registry as /metrics serves it; false
// when there is none.
func gathered(t *testing.T, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
			t.Fatalf("%s: neither a gauge nor a counter", name)
		}
	}
	return 0, false
}

// TestRateLimitGauges sends calls through InstrumentTransport to a host
// answering with each forge's rate-limit headers and reads the gauges back
// from the registry /metrics serves.
func TestRateLimitGauges(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		// before is set on the gauges ahead of the call (-1: not set).
		before        float64
		remaining     float64
		limit         float64
		wantRemaining bool
	}{
		{name: "github", headers: map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4987", "X-RateLimit-Resource": "core"},
			before: -1, remaining: 4987, limit: 5000, wantRemaining: true},
		{name: "github enterprise without resource", headers: map[string]string{"X-RateLimit-Limit": "15000", "X-RateLimit-Remaining": "12"},
			before: -1, remaining: 12, limit: 15000, wantRemaining: true},
		{name: "github exhausted", headers: map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Resource": "core"},
			before: 100, remaining: 0, limit: 5000, wantRemaining: true},
		{name: "github search limit leaves core alone", headers: map[string]string{"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "29", "X-RateLimit-Resource": "search"},
			before: 4000, remaining: 4000, limit: 4000, wantRemaining: true},
		{name: "gitlab", headers: map[string]string{"RateLimit-Limit": "2000", "RateLimit-Remaining": "1999", "RateLimit-Observed": "1"},
			before: -1, remaining: 1999, limit: 2000, wantRemaining: true},
		{name: "no headers leave the gauges", headers: nil, before: 321, remaining: 321, limit: 321, wantRemaining: true},
		{name: "no headers create nothing", headers: nil, before: -1, wantRemaining: false},
		{name: "not a number", headers: map[string]string{"RateLimit-Limit": "lots", "RateLimit-Remaining": "-3"},
			before: 7, remaining: 7, limit: 7, wantRemaining: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forge := fmt.Sprintf("ratetest%d", i)
			if tc.before >= 0 {
				hostRateRemaining.WithLabelValues(forge).Set(tc.before)
				hostRateLimit.WithLabelValues(forge).Set(tc.before)
			}
			host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(http.StatusOK)
			}))
			defer host.Close()
			c := &http.Client{Transport: InstrumentTransport(forge, nil)}
			resp, err := c.Get(host.URL + "/repos/acme/model")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			rem, ok := gathered(t, "mlbot_host_rate_limit_remaining", map[string]string{"forge": forge})
			if ok != tc.wantRemaining {
				t.Fatalf("remaining exported = %v, want %v", ok, tc.wantRemaining)
			}
			if !ok {
				return
			}
			lim, _ := gathered(t, "mlbot_host_rate_limit_limit", map[string]string{"forge": forge})
			if rem != tc.remaining || lim != tc.limit {
				t.Errorf("remaining, limit = %v, %v; want %v, %v", rem, lim, tc.remaining, tc.limit)
			}
			calls, _ := gathered(t, "mlbot_host_api_requests_total", map[string]string{"forge": forge, "method": "GET", "code": "200"})
			if calls != 1 {
				t.Errorf("host calls counted = %v, want 1", calls)
			}
		})
	}
}

// TestRateLimitGaugesUnreachableHost checks that a call without an answer
// is counted as "error" and leaves the gauges as they were.
func TestRateLimitGaugesUnreachableHost(t *testing.T) {
	host := httptest.NewServer(http.NotFoundHandler())
	url := host.URL
	host.Close()
	const forge = "ratetest-unreachable"
	hostRateRemaining.WithLabelValues(forge).Set(42)
	c := &http.Client{Transport: InstrumentTransport(forge, nil)}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a closed host answered")
	}
	if v, _ := gathered(t, "mlbot_host_rate_limit_remaining", map[string]string{"forge": forge}); v != 42 {
		t.Errorf("remaining = %v after a failed call, want 42", v)
	}
	if v, _ := gathered(t, "mlbot_host_api_requests_total", map[string]string{"forge": forge, "code": "error"}); v != 1 {
		t.Errorf("failed calls counted = %v, want 1", v)
	}
}
