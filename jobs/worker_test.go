package jobs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
)

func TestRetryDelayHonoursRetryAfter(t *testing.T) {
	w := &Worker{opts: Options{RetryBase: time.Second, RetryMax: 10 * time.Second}}
	tests := []struct {
		name       string
		err        error
		retryAfter time.Duration
	}{
		{"rate limit", &bot.RateLimitError{Forge: "github", RetryAfter: 30 * time.Second}, 30 * time.Second},
		{"wrapped rate limit", fmt.Errorf("create status: %w", &bot.RateLimitError{Forge: "gitlab", RetryAfter: 2 * time.Second}), 2 * time.Second},
		// A Retry-After longer than RetryMax is still honoured: retrying
		// earlier would only be refused again.
		{"longer than RetryMax", &bot.RateLimitError{Forge: "github", RetryAfter: time.Hour}, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for n := range 20 {
				// asynq keeps retry times in whole seconds, truncated, so the
				// delay is the host's wait plus a second (and a little jitter).
				got := w.retryDelay(n%5, tc.err, nil)
				lo, hi := tc.retryAfter+time.Second, tc.retryAfter+time.Second+250*time.Millisecond
				if got < lo || got >= hi {
					t.Fatalf("retryDelay = %v, want in [%v, %v)", got, lo, hi)
				}
			}
		})
	}
}

func TestRetryDelayBacksOffExponentially(t *testing.T) {
	base, maxDelay := time.Second, 40*time.Second
	w := &Worker{opts: Options{RetryBase: base, RetryMax: maxDelay}}
	errs := []error{
		errors.New("connection refused"),
		// A rate limit without a Retry-After backs off like any error.
		&bot.RateLimitError{Forge: "github"},
	}
	for _, err := range errs {
		for n := 0; n <= 64; n++ {
			// The nominal delay doubles per retry until RetryMax; the delay
			// returned is jittered into its upper half.
			nominal := maxDelay
			if n < 20 && base<<n < maxDelay {
				nominal = base << n
			}
			for range 50 {
				got := w.retryDelay(n, err, nil)
				if got < nominal/2 || got > nominal {
					t.Fatalf("retryDelay(%d, %v) = %v, want in [%v, %v]", n, err, got, nominal/2, nominal)
				}
			}
		}
	}
}

func TestRetryDelayDefaults(t *testing.T) {
	w := newRouteWorker(t, &fakeForge{}, nil)
	if w.opts.RetryBase != 2*time.Second || w.opts.RetryMax != 10*time.Minute {
		t.Fatalf("defaults = %v..%v, want 2s..10m", w.opts.RetryBase, w.opts.RetryMax)
	}
	if got := w.retryDelay(0, errors.New("x"), nil); got < time.Second || got > 2*time.Second {
		t.Errorf("first retry after %v, want 1s..2s", got)
	}
	if got := w.retryDelay(30, errors.New("x"), nil); got < 5*time.Minute || got > 10*time.Minute {
		t.Errorf("late retry after %v, want 5m..10m", got)
	}
}

func TestIsFailure(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&bot.RateLimitError{Forge: "github", RetryAfter: time.Minute}, false},
		{fmt.Errorf("update comment: %w", &bot.RateLimitError{Forge: "gitlab"}), false},
		{&bot.HostError{Forge: "github", StatusCode: 502}, true},
		{errors.New("dial tcp: connection refused"), true},
	}
	for _, tc := range tests {
		if got := isFailure(tc.err); got != tc.want {
			t.Errorf("isFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// allOutcomes is every report.Outcome, for tables that must cover them all.
var allOutcomes = []report.Outcome{
	report.OutcomePassed, report.OutcomeGateFailed, report.OutcomeStepFailed, report.OutcomeTimedOut,
	report.OutcomeConfigError, report.OutcomeError, report.OutcomeCanceled, report.OutcomeForkNotRun,
}

func TestStateOf(t *testing.T) {
	want := map[report.Outcome]bot.State{
		report.OutcomePassed:      bot.StateSuccess,
		report.OutcomeGateFailed:  bot.StateFailure,
		report.OutcomeStepFailed:  bot.StateFailure,
		report.OutcomeTimedOut:    bot.StateFailure,
		report.OutcomeConfigError: bot.StateFailure,
		report.OutcomeError:       bot.StateError,
		report.OutcomeCanceled:    bot.StateCanceled,
		report.OutcomeForkNotRun:  bot.StateError,
		// A run without an outcome should never be reported; if it is, it
		// is mlbot's error, not the contributor's failure.
		"": bot.StateError,
	}
	for _, o := range allOutcomes {
		if _, ok := want[o]; !ok {
			t.Errorf("outcome %q missing from the table", o)
		}
	}
	for o, st := range want {
		if got := stateOf(o); got != st {
			t.Errorf("stateOf(%q) = %q, want %q", o, got, st)
		}
	}
}

func TestDescribe(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	withMetric := report.Diff{Rows: []report.Row{
		{Name: "loss"}, // no head value: skipped
		{Name: "accuracy", Head: f(0.9312), Base: f(0.92), Abs: f(0.0112)},
		{Name: "f1", Head: f(0.5)},
	}}
	noBase := report.Diff{Rows: []report.Row{{Name: "accuracy", Head: f(0.9312)}}}
	gateFailed := report.Diff{
		Rows:   []report.Row{{Name: "accuracy", Head: f(0.85), Base: f(0.92), Abs: f(-0.07)}},
		Failed: []string{"accuracy", "latency_ms"},
	}
	tests := []struct {
		outcome report.Outcome
		detail  string
		diff    report.Diff
		want    string
	}{
		{report.OutcomePassed, "", withMetric, "passed · accuracy 0.9312 (+0.0112)"},
		{report.OutcomePassed, "", noBase, "passed · accuracy 0.9312"},
		{report.OutcomePassed, "", report.Diff{}, "passed"},
		{report.OutcomeGateFailed, "", gateFailed, "gate failed: accuracy, latency_ms · accuracy 0.85 (-0.07)"},
		{report.OutcomeStepFailed, "train exited with status 1\nTraceback", report.Diff{}, "step_failed: train exited with status 1"},
		{report.OutcomeTimedOut, "train ran longer than 2h0m0s", report.Diff{}, "timed_out: train ran longer than 2h0m0s"},
		{report.OutcomeConfigError, ".mlbot.yml:3:5: unknown key \"trian\"\n  3 | trian: x", report.Diff{}, "invalid .mlbot.yml:3:5: unknown key \"trian\""},
		{report.OutcomeError, "fetch abc: exit status 128", report.Diff{}, "error: fetch abc: exit status 128"},
		{report.OutcomeCanceled, "superseded by abc1234", report.Diff{}, "superseded by abc1234"},
		{report.OutcomeForkNotRun, "fork pull requests are not run yet", report.Diff{}, "fork_not_run: fork pull requests are not run yet"},
	}
	covered := map[report.Outcome]bool{}
	for _, tc := range tests {
		covered[tc.outcome] = true
		t.Run(string(tc.outcome), func(t *testing.T) {
			got := describe(&Run{Outcome: tc.outcome, Detail: tc.detail}, tc.diff)
			if got != tc.want {
				t.Errorf("describe = %q, want %q", got, tc.want)
			}
		})
	}
	for _, o := range allOutcomes {
		if !covered[o] {
			t.Errorf("outcome %q missing from the table", o)
		}
	}
}

func TestDescribeIsCutAt140(t *testing.T) {
	one := 1.0
	long := report.Diff{
		Rows:   []report.Row{{Name: strings.Repeat("m", 300), Head: &one}},
		Failed: []string{strings.Repeat("m", 300)},
	}
	for _, o := range allOutcomes {
		got := describe(&Run{Outcome: o, Detail: strings.Repeat("x", 300)}, long)
		if len(got) > 140 {
			t.Errorf("%s: description is %d bytes, want at most 140", o, len(got))
		}
		if !strings.HasSuffix(got, "...") {
			t.Errorf("%s: a cut description does not end in \"...\": %q", o, got)
		}
	}
}

// TestDescribeCutKeepsUTF8 documents a bug: describe cuts the description
// at byte 137, which can split a multi-byte character and send GitHub a
// description that is not valid UTF-8.
func TestDescribeCutKeepsUTF8(t *testing.T) {
	for shift := range 4 {
		detail := strings.Repeat("x", 120+shift) + strings.Repeat("é", 40)
		got := describe(&Run{Outcome: report.OutcomeStepFailed, Detail: detail}, report.Diff{})
		if !utf8.ValidString(got) {
			t.Errorf("cutting the description split a character: %q", got[len(got)-8:])
		}
	}
}

// TestRunKey checks the dedupe key behind run ids: the same work has one
// key, and any difference in what the work is makes another.
func TestRunKey(t *testing.T) {
	repo := bot.Repo{Forge: "github", FullName: "Acme/Model"}
	const sha = "2c70e997118ada09d114005cedaa23a2a6b41cf4"
	id := runKey(repo, KindPullRequest, sha, 1, "")
	if again := runKey(repo, KindPullRequest, sha, 1, ""); again != id {
		t.Errorf("runKey is not stable: %q then %q", id, again)
	}
	if same := runKey(bot.Repo{Forge: "github", FullName: "acme/model"}, KindPullRequest, sha, 1, ""); same != id {
		t.Errorf("runKey depends on the case of the repository name: %q vs %q", id, same)
	}
	// Each of these differs from the others in one thing that makes it
	// other work, so every id must be distinct.
	variants := map[string]string{
		"pr 1":            id,
		"pr 2":            runKey(repo, KindPullRequest, sha, 2, ""),
		"pr 256":          runKey(repo, KindPullRequest, sha, 256, ""),
		"pr 65536":        runKey(repo, KindPullRequest, sha, 65536, ""),
		"baseline main":   runKey(repo, KindBaseline, sha, 0, "main"),
		"baseline master": runKey(repo, KindBaseline, sha, 0, "master"),
		"pr kind, no pr":  runKey(repo, KindPullRequest, sha, 0, ""),
		"baseline, no br": runKey(repo, KindBaseline, sha, 0, ""),
		"other sha":       runKey(repo, KindPullRequest, "3ae9c36f8a03c1bd7e352bc683f72943dc92422e", 1, ""),
		"other forge":     runKey(bot.Repo{Forge: "gitlab", FullName: "Acme/Model"}, KindPullRequest, sha, 1, ""),
		"other repo":      runKey(bot.Repo{Forge: "github", FullName: "Acme/Model2"}, KindPullRequest, sha, 1, ""),
		"sha|branch ab|c": runKey(repo, KindBaseline, "ab", 0, "c"),
		"sha|branch a|bc": runKey(repo, KindBaseline, "a", 0, "bc"),
	}
	seen := map[string]string{}
	for name, v := range variants {
		if other, dup := seen[v]; dup {
			t.Errorf("%s and %s share the run key %s", name, other, v)
		}
		seen[v] = name
	}
}

// TestSweepRemovesOnlyOldLeftovers keeps workspaces that may still be in
// use and removes those older than any task may run.
func TestSweepRemovesOnlyOldLeftovers(t *testing.T) {
	w := newRouteWorker(t, &fakeForge{}, nil)
	work := filepath.Join(w.opts.DataDir, "work")
	old, fresh := filepath.Join(work, "old-1"), filepath.Join(work, "fresh-1")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-3 * w.opts.MaxPipelineTimeout)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	w.sweeper.sweep()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("an old workspace survived the sweep")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a fresh workspace was swept")
	}
}

// TestNewNeedsWhatTheCallerBuilds refuses a Worker missing one of the
// long-lived things the composition root builds once and hands in: New
// makes none of them itself.
func TestNewNeedsWhatTheCallerBuilds(t *testing.T) {
	rdb := testRedis(t)
	st := store.New(rdb, "mlbot:")
	reg := registry.New(st, &registry.ArtifactStore{Dir: t.TempDir()})
	complete := func() Options {
		return Options{Redis: rdb, Store: st, Registry: reg, Forges: []ForgeSet{{Webhook: &github.Webhook{}, Forge: &fakeForge{}}},
			Runners: runners.Set{runners.Local: &fakeRunner{}}, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr bool
	}{
		{"complete", func(*Options) {}, false},
		{"no Redis", func(o *Options) { o.Redis = nil }, true},
		{"no store", func(o *Options) { o.Store = nil }, true},
		{"no registry", func(o *Options) { o.Registry = nil }, true},
		{"no forge", func(o *Options) { o.Forges = nil }, true},
		{"no local runner", func(o *Options) { o.Runners = runners.Set{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := complete()
			tt.edit(&opts)
			w, err := New(opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New: err = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			t.Cleanup(w.Shutdown)
			if w.store != st || w.registry != reg {
				t.Error("the Worker does not use the store and registry it was given")
			}
		})
	}
}
