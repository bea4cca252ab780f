// Package jobs holds mlbot's asynq tasks and their handlers: route a
// webhook to a pipeline, run the pipeline, publish its report, and the
// state they share in Redis. Every handler is safe to run twice: asynq
// delivers at least once.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/store"
)

// Task type names. They are part of the Redis contract between mlbot
// versions running side by side, so they never change meaning.
const (
	TypeWebhook  = "mlbot:webhook"  // a verified delivery to route
	TypePipeline = "mlbot:pipeline" // train and evaluate one commit
	TypeReport   = "mlbot:report"   // post a finished run's comment and status
)

// Queue names for the fast tasks. Pipelines go to the queues named in
// .mlbot.yml (default "default"); they are served by a separate asynq
// server so that long trainings never delay a webhook's pending status.
const (
	QueueEvents = "events"
	QueueReport = "report"
)

// StatusContext is the commit status context of the train-and-evaluate check.
const StatusContext = "mlbot/train-eval"

// webhookRetention keeps accepted deliveries' task ids so that a redelivery
// within a day is recognised as a duplicate (store.WebhookRetention).
const webhookRetention = store.WebhookRetention

// runRetention keeps finished pipeline and report task ids, so that a
// duplicate delivery of the same commit does not train it again
// (store.RunRetention).
const runRetention = store.RunRetention

// RunKind says why a run exists (store.RunKind).
type RunKind = store.RunKind

// Run kinds.
const (
	// KindPullRequest runs a pull/merge request head against its base.
	KindPullRequest = store.KindPullRequest
	// KindBaseline runs a default-branch commit to serve as a later base.
	KindBaseline = store.KindBaseline
)

// PipelinePayload is the payload of a TypePipeline task.
type PipelinePayload struct {
	RunID string           `json:"run_id"`
	Kind  RunKind          `json:"kind"`
	Repo  bot.Repo         `json:"repo"`
	SHA   string           `json:"sha"`
	PR    *bot.PullRequest `json:"pr,omitempty"`
	// Branch is the branch a baseline run belongs to.
	Branch   string `json:"branch,omitempty"`
	Delivery string `json:"delivery,omitempty"`
	// Trusted runs receive the repository's secrets; approved runs of
	// untrusted authors do not.
	Trusted bool `json:"trusted,omitempty"`
	// Params overrides parameter defaults for this run (see Run.Params).
	Params map[string]string `json:"params,omitempty"`
	// Before is the previous tip of a pushed branch (the push event's
	// "before"): a baseline run's changes are counted from it for
	// pipeline.paths. Empty or all zeros when the push created the branch.
	Before string `json:"before,omitempty"`
	// Force runs the pipeline whatever pipeline.paths says (/retrain).
	Force bool `json:"force,omitempty"`
	// Sweep, Trial and Rung name the sweep trial the run is (see
	// Run.Sweep); Sweep is "" for any other run.
	Sweep string `json:"sweep,omitempty"`
	Trial int    `json:"trial,omitempty"`
	Rung  int    `json:"rung,omitempty"`
}

// newRun is the queued run a pipeline payload describes.
func (p PipelinePayload) newRun() *Run {
	return &Run{ID: p.RunID, Kind: p.Kind, Repo: p.Repo, SHA: p.SHA, PR: p.PR, Branch: p.Branch,
		Trusted: p.Trusted, Params: p.Params, Sweep: p.Sweep, Trial: p.Trial, Rung: p.Rung, State: RunQueued, Created: time.Now().UTC()}
}

// ReportPayload is the payload of a TypeReport task.
type ReportPayload struct {
	RunID string `json:"run_id"`
}

// runKey derives a run's dedupe key from what identifies the work: the
// same commit of the same repository for the same pull request (or branch)
// is one run. It is never shown: the run's id, which names it in links, is
// random and found through this key (see Worker.runID).
func runKey(repo bot.Repo, kind RunKind, sha string, pr int, branch string) string {
	h := sha256.New()
	for _, s := range []string{repo.Forge, strings.ToLower(repo.FullName), string(kind), sha, branch} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if pr > 0 {
		h.Write([]byte{byte(pr >> 24), byte(pr >> 16), byte(pr >> 8), byte(pr)})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// paramsKey extends dedupe key with the parameter values a run overrides:
// trials of one commit are distinct runs. Without params it is key.
func paramsKey(key string, params map[string]string) string {
	if len(params) == 0 {
		return key
	}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	h.Write([]byte(key))
	for _, n := range names {
		h.Write([]byte{0})
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(params[n]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// runID returns the id of the run that the work named by repo, kind, sha,
// pr and branch is: a random id the first time, the same id for every
// later ask (a retried task, a redelivered event), so the work runs once.
func (w *Worker) runID(ctx context.Context, repo bot.Repo, kind RunKind, sha string, pr int, branch string) (string, error) {
	return w.store.ClaimID(ctx, "run", runKey(repo, kind, sha, pr, branch))
}
