package main

// The fan-out of a sweep over two workers, end to end through webhooks,
// with a real Redis (MLBOT_TEST_REDIS_URL):
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench SweepFanOut -benchtime 3x ./cmd/mlbot/
//
// Each iteration comments `/sweep` with 16 values on the pull request and
// waits for mlbot/sweep to leave pending. Serve and a second worker app
// (the same Redis and task key, a data directory of its own) each run
// one pipeline at a time, and the sweep runs two trials at once. The
// baseline, measured in the same run, is a one-trial sweep: the ideal
// wall time of 16 trials on two workers is 16 × that ÷ 2.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
)

// BenchmarkSweepFanOut reports the wall time of a 16-trial sweep of
// trivial trainings on two workers (wall-s), the time of a one-trial sweep
// (one-trial-s), the ideal 16 × one trial ÷ 2 (ideal-s) and wall-s over
// ideal-s (ratio; target ≤ 1.3); and, stricter, wall-s over 16 × a
// trial's own run time ÷ 2 (trial-run-s, ratio-run).
func BenchmarkSweepFanOut(b *testing.B) {
	const key = "0123456789abcdef0123456789abcdef-sweep-bench"
	e := newE2E(b, "github", func(c *configs.Server) { c.TaskKey, c.Concurrency = key, 1 })
	files := lrModel("2", "none", "0")
	e.mainSHA = e.commit("main", files, "model")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	e.final(e.mainSHA)
	h := e.commit("feature", map[string]string{"notes.txt": "a change\n"}, "change")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	e.final(h)
	e.settle()
	e.startSecondWorker(key)

	sweeps := 0
	// sweepOnce comments /sweep with space and returns the wall time from
	// the comment's delivery to mlbot/sweep's final status.
	sweepOnce := func(space string, trials int) time.Duration {
		sweeps++
		start := time.Now()
		e.send(e.sb.comment(e.hook, commentEvent{Body: "/sweep " + space, Author: "alice", Association: "MEMBER", HeadRef: "feature"}), http.StatusAccepted)
		want := fmt.Sprintf("%d/%d done", trials, trials)
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			st := e.contextStatusNow(h, "mlbot/sweep")
			if st.State == "success" && strings.Contains(st.Description, want) && countSweepStatuses(e, h) >= sweeps {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("sweep %d did not finish: %+v", sweeps, st)
			}
		}
		wall := time.Since(start)
		e.settle()
		return wall
	}
	// The baseline: one trial, three times (the first warms up).
	var one time.Duration
	for i := range 3 {
		d := sweepOnce("lr=0.1 nap=0.2", 1)
		if i > 0 {
			one += d / 2
		}
	}
	values := make([]string, 16)
	for i := range values {
		values[i] = fmt.Sprintf("0.%02d", i+10)
	}
	var wall time.Duration
	n := 0
	b.ResetTimer()
	for b.Loop() {
		wall += sweepOnce("lr="+strings.Join(values, ",")+" nap=0.2", 16)
		n++
	}
	b.StopTimer()
	wall /= time.Duration(n)
	ideal := 16 * one / 2
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(one.Seconds(), "one-trial-s")
	b.ReportMetric(ideal.Seconds(), "ideal-s")
	b.ReportMetric(wall.Seconds()/ideal.Seconds(), "ratio")
	// A stricter baseline: a trial's own run time (started to finished,
	// from its run record: checkout, train, evaluate, record), without
	// the comment, the planning and the queue hand-offs.
	run := meanTrialRun(b, e)
	b.ReportMetric(run.Seconds(), "trial-run-s")
	b.ReportMetric(wall.Seconds()/(16*run/2).Seconds(), "ratio-run")
}

// meanTrialRun is the mean time from start to finish of the sweep trials
// e's store holds.
func meanTrialRun(b *testing.B, e *e2e) time.Duration {
	ctx := b.Context()
	repos, err := e.app.store.RunRepos(ctx)
	if err != nil || len(repos) != 1 {
		b.Fatalf("repositories with runs: %v, %v", repos, err)
	}
	runs, err := e.app.store.RecentRuns(ctx, repos[0], 0)
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	n := 0
	for _, r := range runs {
		if r.Sweep != "" && !r.Started.IsZero() && !r.Finished.IsZero() {
			sum += r.Finished.Sub(r.Started)
			n++
		}
	}
	if n == 0 {
		b.Fatal("no finished trial runs")
	}
	return sum / time.Duration(n)
}

// countSweepStatuses counts the final mlbot/sweep statuses of sha: one a
// finished sweep.
func countSweepStatuses(e *e2e, sha string) int {
	n := 0
	for _, s := range e.sb.statuses(sha) {
		if s.Context == "mlbot/sweep" && s.State != "pending" {
			n++
		}
	}
	return n
}
