package bot

import (
	"net/http"
	"strconv"
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
)

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
		}
		hostRequests.WithLabelValues(forge, r.Method, code).Inc()
		hostDuration.WithLabelValues(forge).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
