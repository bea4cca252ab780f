package bot

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	webhookRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "webhook_requests_total",
		Help: "Webhook deliveries received, by forge, event type and HTTP status code answered.",
	}, []string{"forge", "event", "code"})
	webhookDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mlbot", Name: "webhook_request_duration_seconds",
		Help:    "Time to answer a webhook delivery.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"forge"})
	hostRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "host_api_requests_total",
		Help: "Calls to a code host's API, by forge, method and HTTP status code (\"error\" when no answer came).",
	}, []string{"forge", "method", "code"})
	hostDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mlbot", Name: "host_api_request_duration_seconds",
		Help:    "Duration of calls to a code host's API.",
		Buckets: prometheus.DefBuckets,
	}, []string{"forge"})
	hostRateRemaining = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "mlbot", Name: "host_rate_limit_remaining",
		Help: "Calls left in the code host's REST rate-limit window, as its last answer said (X-RateLimit-Remaining, GitLab's RateLimit-Remaining).",
	}, []string{"forge"})
	hostRateLimit = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "mlbot", Name: "host_rate_limit_limit",
		Help: "Calls allowed per rate-limit window by the code host, as its last answer said (X-RateLimit-Limit, GitLab's RateLimit-Limit).",
	}, []string{"forge"})
)

// Collectors returns the package's metrics, which are registered with the
// default registry; it lets tests and tools list what mlbot exports.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{webhookRequests, webhookDuration, hostRequests, hostDuration, hostRateRemaining, hostRateLimit}
}

// InstrumentTransport counts and times every call a host client makes
// through next (http.DefaultTransport when nil).
func InstrumentTransport(forge string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(r)
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
			observeRateLimit(forge, resp.Header)
		}
		hostRequests.WithLabelValues(forge, r.Method, code).Inc()
		hostDuration.WithLabelValues(forge).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

// observeRateLimit records the rate-limit headers of a host's answer:
// GitHub's X-RateLimit-* (only for its "core" REST limit, the one mlbot
// spends; search and GraphQL have their own) and GitLab's RateLimit-*.
// An answer without them, or with a value that is not a number, leaves the
// gauges as they were.
func observeRateLimit(forge string, h http.Header) {
	prefix := "RateLimit-"
	if h.Get("X-RateLimit-Remaining") != "" {
		if r := h.Get("X-RateLimit-Resource"); r != "" && r != "core" {
			return
		}
		prefix = "X-RateLimit-"
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(h.Get(prefix+"Remaining")), 10, 64); err == nil {
		hostRateRemaining.WithLabelValues(forge).Set(float64(n))
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(h.Get(prefix+"Limit")), 10, 64); err == nil {
		hostRateLimit.WithLabelValues(forge).Set(float64(n))
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
