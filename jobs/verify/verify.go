// Package verify checks a deploy against Prometheus: after a model is
// deployed, a deploy environment's verify block (configs.Verify) names a
// PromQL query and bounds for its result, and Run samples the query every
// Every for For. A sample outside the bounds is a breach, and the caller rolls
// the deploy back.
//
// What counts as a value:
//   - A scalar result, or a vector with one series, gives that value.
//   - A vector with several series is checked by its worst series: the
//     maximum against Max and the minimum against Min.
//   - An empty vector, or one whose series are all NaN, is "no sample": not a
//     breach by itself, but a window that ends without any sample at all is a
//     breach ("no data"), since a deploy that made its metric disappear has
//     not shown that it holds.
//   - A result that can never be a number (a range vector or a string), or a
//     query Prometheus rejects as invalid (bad_data, e.g. a PromQL syntax
//     error), is a configuration error: Run returns it at once, wrapping
//     ErrInvalidQuery.
//   - Other query errors (Prometheus down, timeouts, 5xx) are retried on the
//     next tick; only when every query of the window failed does Run return
//     an error, and the caller decides what that means for the deploy.
package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/api"
	"github.com/prometheus/common/model"

	"github.com/mlbot/mlbot/configs"
)

// Defaults for a configs.Verify whose For or Every is zero; they match the
// defaults the config parser applies.
const (
	DefaultFor   = 5 * time.Minute
	DefaultEvery = 30 * time.Second
)

// minQueryTimeout is the least time one query is given, however short Every.
const minQueryTimeout = time.Second

// Result is what a verification observed.
type Result struct {
	Breached bool
	// Observed holds every value read, in order, with its time. For a
	// multi-series result it holds the value that was checked: the maximum
	// when Max is set, else the minimum; when both are set and the minimum
	// breached, the minimum. Queries that gave no sample add nothing.
	Observed []Sample
	// Reason says in one sentence why it breached
	// ("sum(rate(model_errors_total[5m])) = 0.05 > max 0.01 at 12:03:04"),
	// or "" when it passed. A window without any sample gives a Reason that
	// starts with "no data".
	Reason string
	// Failed counts the queries that returned an error and were retried.
	Failed int
}

// Sample is one value read from Prometheus, at the time it was evaluated.
type Sample struct {
	At    time.Time
	Value float64
}

// Verifier runs verifications against one Prometheus server.
type Verifier struct {
	// Client reaches Prometheus's HTTP API.
	Client api.Client
	// Now gives the evaluation time of each query and so Sample.At; nil
	// means time.Now. The window itself is timed by the real clock.
	Now func() time.Time
}

// New returns a Verifier querying the Prometheus server at prometheusURL
// (MLBOT_PROMETHEUS_URL), e.g. "http://prometheus:9090".
func New(prometheusURL string) (*Verifier, error) {
	if prometheusURL == "" {
		return nil, errors.New("verify: no Prometheus URL (set MLBOT_PROMETHEUS_URL)")
	}
	c, err := api.NewClient(api.Config{Address: prometheusURL})
	if err != nil {
		return nil, fmt.Errorf("verify: Prometheus URL %q: %w", prometheusURL, err)
	}
	return &Verifier{Client: c, Now: time.Now}, nil
}

// Run evaluates v.Query every v.Every until v.For has passed, returning as
// soon as a value breaches (fail fast: a bad deploy rolls back at once). The
// first query runs at once and the last when For has passed, so a passing
// window of For=3s, Every=500ms reads 7 samples.
//
// A query returning no data counts as "no sample" (not a breach), but if the
// whole window passes without any sample that is a breach with a Reason
// starting "no data". Query errors are retried on the next tick; if every
// query failed, Run returns an error (with the Result so far). Invalid
// queries (see the package doc) return an error at once. Cancelling ctx
// stops Run, which returns what it observed and ctx's error.
func (vf *Verifier) Run(ctx context.Context, v configs.Verify) (Result, error) {
	var res Result
	if v.Query == "" {
		return res, errors.New("verify: empty query")
	}
	if v.Min == nil && v.Max == nil {
		return res, fmt.Errorf("verify: %s: neither min nor max is set", v.Query)
	}
	if v.Min != nil && v.Max != nil && *v.Min > *v.Max {
		return res, fmt.Errorf("verify: %s: min %s > max %s", v.Query, fmtFloat(*v.Min), fmtFloat(*v.Max))
	}
	if v.For <= 0 {
		v.For = DefaultFor
	}
	if v.Every <= 0 {
		v.Every = DefaultEvery
	}
	now := vf.Now
	if now == nil {
		now = time.Now
	}
	timeout := max(v.Every, minQueryTimeout)

	start := time.Now()
	ticker := time.NewTicker(v.Every)
	defer ticker.Stop()
	deadline := time.NewTimer(v.For)
	defer deadline.Stop()

	var (
		queries int
		lastErr error
	)
	// sample runs one query and reports whether Run is done, with its error.
	sample := func() (bool, error) {
		queries++
		at := now()
		qctx, cancel := context.WithTimeout(ctx, timeout)
		val, err := query(qctx, vf.Client, v.Query, at)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			if errors.Is(err, ErrInvalidQuery) {
				return true, fmt.Errorf("verify: %s: invalid query: %w", v.Query, err)
			}
			res.Failed++
			lastErr = err
			return false, nil
		}
		lo, hi, series, ok, err := extract(val)
		if err != nil {
			return true, fmt.Errorf("verify: %s: %w: %v", v.Query, ErrInvalidQuery, err)
		}
		if !ok {
			return false, nil
		}
		if v.Min != nil && lo < *v.Min && (v.Max == nil || !(hi > *v.Max)) {
			res.Observed = append(res.Observed, Sample{At: at, Value: lo})
			res.Breached = true
			res.Reason = reason(v.Query, lo, series, "<", "min", *v.Min, at)
			return true, nil
		}
		checked := hi
		if v.Max == nil {
			checked = lo
		}
		res.Observed = append(res.Observed, Sample{At: at, Value: checked})
		if v.Max != nil && hi > *v.Max {
			res.Breached = true
			res.Reason = reason(v.Query, hi, series, ">", "max", *v.Max, at)
			return true, nil
		}
		return false, nil
	}

	done, err := sample()
	for !done {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-ticker.C:
			if time.Since(start) >= v.For {
				// The last tick and the deadline coincide: one final sample.
				deadline.Stop()
				done = true
			}
			d, e := sample()
			done, err = done || d, e
		case <-deadline.C:
			_, err = sample()
			done = true
		}
	}
	if err != nil || res.Breached {
		return res, err
	}
	if res.Failed == queries {
		return res, fmt.Errorf("verify: all %d queries of %s failed; last: %w", queries, v.Query, lastErr)
	}
	if len(res.Observed) == 0 {
		res.Breached = true
		res.Reason = fmt.Sprintf("no data: %s returned no sample in %s", v.Query, v.For)
	}
	return res, nil
}

// extract reads the minimum and maximum of a query result. ok is false when
// the result holds no number (an empty vector, or only NaN). series, when the
// result has more than one series, says how many there were.
func extract(val model.Value) (lo, hi float64, series int, ok bool, err error) {
	switch r := val.(type) {
	case *model.Scalar:
		f := float64(r.Value)
		if math.IsNaN(f) {
			return 0, 0, 0, false, nil
		}
		return f, f, 1, true, nil
	case model.Vector:
		for _, s := range r {
			f := float64(s.Value)
			if math.IsNaN(f) {
				continue
			}
			if !ok {
				lo, hi, ok = f, f, true
			}
			lo, hi = math.Min(lo, f), math.Max(hi, f)
		}
		return lo, hi, len(r), ok, nil
	case nil:
		return 0, 0, 0, false, nil
	default:
		return 0, 0, 0, false, fmt.Errorf("result is a %s, not a number (use an instant vector or scalar)", val.Type())
	}
}

func reason(query string, val float64, series int, op, bound string, limit float64, at time.Time) string {
	of := ""
	if series > 1 {
		of = fmt.Sprintf(" (the %simum of %d series)", bound, series)
	}
	return fmt.Sprintf("%s = %s%s %s %s %s at %s",
		query, fmtFloat(val), of, op, bound, fmtFloat(limit), at.Format("15:04:05"))
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
