package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/promtest"
	"github.com/mlbot/mlbot/jobs/verify"
)

func ptr(f float64) *float64 { return &f }

// TestVerify runs every scenario against one real Prometheus server, each
// scenario scraping its own exporter(s), in parallel to keep the test short.
func TestVerify(t *testing.T) {
	t.Parallel()
	start := time.Now()
	var (
		pass     = promtest.NewExporter(t, "mlbot_test_pass")
		breach   = promtest.NewExporter(t, "mlbot_test_breach")
		minPass  = promtest.NewExporter(t, "mlbot_test_min_pass")
		minBreak = promtest.NewExporter(t, "mlbot_test_min_breach")
		multiA   = promtest.NewExporter(t, "mlbot_test_multi")
		multiB   = promtest.NewExporter(t, "mlbot_test_multi")
	)
	pass.SetValue(0.005)
	breach.SetValue(0.001)
	minPass.SetValue(0.95)
	minBreak.SetValue(0.95)
	multiA.SetValue(1)
	multiB.SetValue(5)

	prom := promtest.Start(t, pass.Addr(), breach.Addr(), minPass.Addr(), minBreak.Addr(), multiA.Addr(), multiB.Addr())
	for _, q := range []string{"mlbot_test_pass", "mlbot_test_breach", "mlbot_test_min_pass", "mlbot_test_min_breach", "count(mlbot_test_multi) == 2"} {
		prom.WaitForSeries(t, q, 20*time.Second)
	}
	t.Logf("prometheus ready with all series after %s", time.Since(start).Round(time.Millisecond))

	vf, err := verify.New(prom.URL())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("PassesUnderMax", func(t *testing.T) {
		t.Parallel()
		v := configs.Verify{Query: "max(mlbot_test_pass)", Max: ptr(0.01), For: 3 * time.Second, Every: 500 * time.Millisecond}
		began := time.Now()
		res, err := vf.Run(context.Background(), v)
		took := time.Since(began)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Breached || res.Reason != "" {
			t.Fatalf("breached: %+v", res)
		}
		// Samples at 0, 0.5, ..., 3s: seven, give or take a tick lost to load.
		if n := len(res.Observed); n < 5 || n > 7 {
			t.Errorf("observed %d samples, want about 7: %+v", n, res.Observed)
		}
		for _, s := range res.Observed {
			if s.Value != 0.005 {
				t.Errorf("sample %v = %v, want 0.005", s.At, s.Value)
			}
		}
		if took < 3*time.Second || took > 5*time.Second {
			t.Errorf("Run took %s, want the 3s window", took)
		}
	})

	t.Run("BreachesMaxFast", func(t *testing.T) {
		t.Parallel()
		q := "max(mlbot_test_breach)"
		v := configs.Verify{Query: q, Max: ptr(0.01), For: 20 * time.Second, Every: 500 * time.Millisecond}
		began := time.Now()
		time.AfterFunc(time.Second, func() { breach.SetValue(0.05) })
		res, err := vf.Run(context.Background(), v)
		took := time.Since(began)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !res.Breached {
			t.Fatalf("not breached: %+v", res)
		}
		// Set at 1s, scraped within 1s, read within 0.5s: well before the 20s window.
		if took > 5*time.Second {
			t.Errorf("breach took %s to detect, want fail-fast", took)
		}
		n := len(res.Observed)
		if n < 2 {
			t.Fatalf("observed %+v, want the good values then the breach", res.Observed)
		}
		if res.Observed[0].Value != 0.001 || res.Observed[n-1].Value != 0.05 {
			t.Errorf("observed %+v, want 0.001 first and 0.05 last", res.Observed)
		}
		at := res.Observed[n-1].At.Format("15:04:05")
		want := fmt.Sprintf("%s = 0.05 > max 0.01 at %s", q, at)
		if res.Reason != want {
			t.Errorf("reason %q, want %q", res.Reason, want)
		}
		t.Logf("breach detected after %s: %s", took.Round(time.Millisecond), res.Reason)
	})

	t.Run("PassesOverMin", func(t *testing.T) {
		t.Parallel()
		// A scalar result, for the scalar path.
		v := configs.Verify{Query: "scalar(mlbot_test_min_pass)", Min: ptr(0.9), For: 2 * time.Second, Every: 500 * time.Millisecond}
		res, err := vf.Run(context.Background(), v)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Breached || len(res.Observed) == 0 || res.Observed[0].Value != 0.95 {
			t.Fatalf("got %+v, want a pass at 0.95", res)
		}
	})

	t.Run("BreachesMin", func(t *testing.T) {
		t.Parallel()
		q := "min(mlbot_test_min_breach)"
		v := configs.Verify{Query: q, Min: ptr(0.9), Max: ptr(1), For: 20 * time.Second, Every: 500 * time.Millisecond}
		time.AfterFunc(time.Second, func() { minBreak.SetValue(0.5) })
		began := time.Now()
		res, err := vf.Run(context.Background(), v)
		took := time.Since(began)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !res.Breached || took > 5*time.Second {
			t.Fatalf("got %+v after %s, want a fast breach", res, took)
		}
		last := res.Observed[len(res.Observed)-1]
		want := fmt.Sprintf("%s = 0.5 < min 0.9 at %s", q, last.At.Format("15:04:05"))
		if last.Value != 0.5 || res.Reason != want {
			t.Errorf("last %+v reason %q, want 0.5 and %q", last, res.Reason, want)
		}
	})

	t.Run("MultiSeriesMaxUsesMaximum", func(t *testing.T) {
		t.Parallel()
		v := configs.Verify{Query: "mlbot_test_multi", Max: ptr(3), For: 2 * time.Second, Every: 500 * time.Millisecond}
		res, err := vf.Run(context.Background(), v)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !res.Breached || len(res.Observed) != 1 || res.Observed[0].Value != 5 {
			t.Fatalf("got %+v, want an immediate breach at 5", res)
		}
		if !strings.Contains(res.Reason, "= 5 (the maximum of 2 series) > max 3") {
			t.Errorf("reason %q", res.Reason)
		}
	})

	t.Run("MultiSeriesMinUsesMinimum", func(t *testing.T) {
		t.Parallel()
		v := configs.Verify{Query: "mlbot_test_multi", Min: ptr(2), For: 2 * time.Second, Every: 500 * time.Millisecond}
		res, err := vf.Run(context.Background(), v)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !res.Breached || res.Observed[0].Value != 1 {
			t.Fatalf("got %+v, want an immediate breach at 1", res)
		}
		// Both bounds hold when max ≥ 5 and min ≤ 1.
		v = configs.Verify{Query: "mlbot_test_multi", Min: ptr(0.5), Max: ptr(6), For: time.Second, Every: 500 * time.Millisecond}
		res, err = vf.Run(context.Background(), v)
		if err != nil || res.Breached || res.Observed[0].Value != 5 {
			t.Fatalf("got %+v, %v, want a pass recording the maximum 5", res, err)
		}
	})

	t.Run("NoData", func(t *testing.T) {
		t.Parallel()
		v := configs.Verify{Query: "mlbot_metric_that_does_not_exist", Max: ptr(1), For: 2 * time.Second, Every: 500 * time.Millisecond}
		res, err := vf.Run(context.Background(), v)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !res.Breached || !strings.HasPrefix(res.Reason, "no data") || len(res.Observed) != 0 {
			t.Fatalf("got %+v, want a no-data breach", res)
		}
		// NaN is no sample too.
		v.Query = "0/0"
		res, err = vf.Run(context.Background(), v)
		if err != nil || !res.Breached || !strings.HasPrefix(res.Reason, "no data") {
			t.Fatalf("NaN: got %+v, %v, want a no-data breach", res, err)
		}
	})

	t.Run("InvalidQuery", func(t *testing.T) {
		t.Parallel()
		for _, q := range []string{"sum(rate(", "mlbot_test_pass[1m]"} {
			v := configs.Verify{Query: q, Max: ptr(1), For: 10 * time.Second, Every: 500 * time.Millisecond}
			began := time.Now()
			_, err := vf.Run(context.Background(), v)
			if err == nil {
				t.Fatalf("%s: no error", q)
			}
			if !errors.Is(err, verify.ErrInvalidQuery) {
				t.Errorf("%s: error %v is not ErrInvalidQuery", q, err)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("%s: took %s, want an error at once", q, took)
			}
			t.Logf("%s: %v", q, err)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		v := configs.Verify{Query: "max(mlbot_test_pass)", Max: ptr(1), For: 20 * time.Second, Every: 500 * time.Millisecond}
		res, err := vf.Run(ctx, v)
		if !errors.Is(err, context.DeadlineExceeded) || res.Breached || len(res.Observed) == 0 {
			t.Fatalf("got %+v, %v, want the samples so far and the deadline", res, err)
		}
	})
}

// TestUnreachable needs no Prometheus: every query fails, so Run errors.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	vf, err := verify.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	v := configs.Verify{Query: "up", Max: ptr(1), For: time.Second, Every: 250 * time.Millisecond}
	res, err := vf.Run(context.Background(), v)
	if err == nil || errors.Is(err, verify.ErrInvalidQuery) || res.Breached {
		t.Fatalf("got %+v, %v, want an outage error", res, err)
	}
	if res.Failed < 4 {
		t.Errorf("failed %d queries, want every tick retried", res.Failed)
	}
	t.Logf("unreachable: %v", err)
}

func TestRunRejectsConfig(t *testing.T) {
	vf := &verify.Verifier{}
	for _, v := range []configs.Verify{
		{Max: ptr(1)},
		{Query: "up"},
		{Query: "up", Min: ptr(2), Max: ptr(1)},
	} {
		if _, err := vf.Run(context.Background(), v); err == nil {
			t.Errorf("%+v: no error", v)
		}
	}
	if _, err := verify.New(""); err == nil {
		t.Error("New(\"\"): no error")
	}
}
