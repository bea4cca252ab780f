// Package store holds mlbot's state in Redis: runs and their read model
// (Run, its states and kinds, ErrNoRun), ids, pull request heads, comment
// ids, leases, cancel flags, once-only marks, merge notes and the deploy
// line. Every key it writes and every TTL is declared in keys.go. The
// pages in web read runs through it without importing the task handlers
// of jobs.
package store

import (
	"errors"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// RunState is where a run is in its life.
type RunState string

// Run states.
const (
	RunQueued   RunState = "queued"
	RunRunning  RunState = "running"
	RunFinished RunState = "finished"
)

// RunKind says why a run exists.
type RunKind string

// Run kinds.
const (
	// KindPullRequest runs a pull/merge request head against its base.
	KindPullRequest RunKind = "pull_request"
	// KindBaseline runs a default-branch commit to serve as a later base.
	KindBaseline RunKind = "baseline"
)

// Run is one execution of a repository's pipeline on one commit, as kept in
// Redis and shown on the run page.
type Run struct {
	ID           string                 `json:"id"`
	Kind         RunKind                `json:"kind"`
	Repo         bot.Repo               `json:"repo"`
	SHA          string                 `json:"sha"`
	PR           *bot.PullRequest       `json:"pr,omitempty"`
	Branch       string                 `json:"branch,omitempty"`
	State        RunState               `json:"state"`
	Outcome      report.Outcome         `json:"outcome,omitempty"`
	Detail       string                 `json:"detail,omitempty"`
	Metrics      map[string]float64     `json:"metrics,omitempty"`
	Specs        map[string]report.Spec `json:"specs,omitempty"`
	Order        []string               `json:"order,omitempty"`
	ConfigDigest string                 `json:"config_digest,omitempty"`
	// BaseRunID names the baseline run this run is compared against.
	BaseRunID string        `json:"base_run_id,omitempty"`
	BaseSHA   string        `json:"base_sha,omitempty"`
	BaseNote  string        `json:"base_note,omitempty"`
	LogTail   string        `json:"log_tail,omitempty"`
	LogPath   string        `json:"log_path,omitempty"`
	Train     time.Duration `json:"train_ns,omitempty"`
	Evaluate  time.Duration `json:"evaluate_ns,omitempty"`
	Created   time.Time     `json:"created"`
	Started   time.Time     `json:"started,omitempty"`
	Finished  time.Time     `json:"finished,omitempty"`
	Attempts  int           `json:"attempts,omitempty"`
	// Trusted runs receive the secrets .mlbot.yml names.
	Trusted bool `json:"trusted,omitempty"`
	// Params overrides the defaults of parameters .mlbot.yml declares
	// under params: (name → value as text), for a sweep's trial; the
	// executor refuses a name not declared or a value not of its kind.
	Params map[string]string `json:"params,omitempty"`
	// Sweep names the sweep the run is a trial of ("" for any other run);
	// Trial is the trial's candidate index (from 0) and Rung its rung of
	// successive halving. A trial's result goes to the sweep's comment,
	// never to the pull request's own comment or status.
	Sweep string `json:"sweep,omitempty"`
	Trial int    `json:"trial,omitempty"`
	Rung  int    `json:"rung,omitempty"`
	// ModelVersion is the registry version the run recorded (0: none).
	ModelVersion int `json:"model_version,omitempty"`
	// OnMerge names the environments a default-branch run deploys to
	// when it passes.
	OnMerge []string `json:"on_merge,omitempty"`
	// Queue is the pipeline queue .mlbot.yml sent the run to, when a
	// worker of another queue handed it over ("" before that).
	Queue string `json:"queue,omitempty"`
	// Examples is the number of per-example results the run wrote
	// (pipeline.examples); the results themselves are kept apart
	// (PutExamples), compressed, for the runs compared against it.
	Examples int `json:"examples,omitempty"`
	// Significance is the per-example comparison with the base, made when
	// the run was decided; nil when there was none to make.
	Significance *report.Significance `json:"significance,omitempty"`
	// ExampleData and ExampleBlob are the run's per-example results and
	// their encoding while the worker holds the run; never stored here.
	ExampleData *report.Examples `json:"-"`
	ExampleBlob []byte           `json:"-"`
	// Paths are the pipeline.paths globs of a run that was skipped
	// (outcome skipped) because its changes since the base touch none of
	// them; Detail says how many files changed since which commit.
	Paths []string `json:"paths,omitempty"`
}

// HasMetrics reports whether the run produced metrics a later run can be
// compared against.
func (r *Run) HasMetrics() bool {
	return r.State == RunFinished && (r.Outcome == report.OutcomePassed || r.Outcome == report.OutcomeGateFailed)
}

// HasMetricsOutcome reports whether the run's outcome means it produced
// metrics, finished or not.
func (r *Run) HasMetricsOutcome() bool {
	return r.Outcome == report.OutcomePassed || r.Outcome == report.OutcomeGateFailed
}

// ErrNoRun is returned for a run id Redis does not know.
var ErrNoRun = errors.New("no such run")

// Comment assembles what the pull request comment shows for the finished
// run r compared against base (nil when there is none), linking runURL.
// The comment, the commit status and the run page all start from it.
func (r *Run) Comment(base *Run, runURL string) report.Comment {
	c := report.Comment{
		Outcome: r.Outcome, HeadSHA: r.SHA, BaseNote: r.BaseNote, Detail: r.Detail,
		RunURL: runURL, Train: r.Train, Eval: r.Evaluate, Paths: r.Paths,
	}
	var baseMetrics map[string]float64
	if base != nil {
		c.BaseSHA, baseMetrics = base.SHA, base.Metrics
	}
	if r.Metrics != nil {
		c.Diff = report.ComputeWith(baseMetrics, r.Metrics, r.Specs, r.Order, r.Significance)
	}
	switch r.Outcome {
	case report.OutcomeStepFailed, report.OutcomeTimedOut, report.OutcomeError:
		c.LogTail = r.LogTail
	}
	return c
}
