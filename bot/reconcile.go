package bot

import "errors"

// CommitStatus is the newest state of one status context (or check run)
// on a commit, as the host lists it.
type CommitStatus struct {
	// Context is the status context or check run name ("mlbot/train-eval").
	Context string
	// State is the host's own state word ("pending", "success", "failed",
	// "completed"…); the reconciler asks only whether a context exists.
	State string
}

// ErrRateBudgetLow is wrapped by the reconciler's host calls when the
// host's rate limit has run low: the calls left are kept for what
// webhooks ask (statuses, comments), and the reconciler tries again on its
// next pass.
var ErrRateBudgetLow = errors.New("rate limit running low: the rest is kept for webhook work")
