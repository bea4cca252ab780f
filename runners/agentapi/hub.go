package agentapi

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Hub is mlbot's side of the agent protocol as a container runner drives
// it. Its state lives in Redis and the data directory, so that any
// `mlbot serve` replica can answer the agent while one worker watches the
// container; web/agentsrv implements it.
type Hub interface {
	// Open registers a run under id, with the job the agent will fetch and
	// the checkout in dir as its source, and returns the run's token. It
	// is idempotent: for an id that is already open it changes nothing
	// and returns a Session with Attached set and no token, so that a
	// worker re-attaching to a running container starts nothing twice.
	// The session ends by itself after ttl.
	Open(ctx context.Context, id string, job Job, dir string, ttl time.Duration) (Session, error)
	// ReadLog writes the log the agent has pushed from byte from on to w
	// and returns the offset after what it wrote.
	ReadLog(ctx context.Context, id string, from int64, w io.Writer) (int64, error)
	// State returns what the agent has reported so far.
	State(ctx context.Context, id string) (State, error)
	// MarkCopied records that the runner watching the run copied its log
	// into the job's output up to offset, so that a runner re-attaching
	// after a restart goes on from there (State.Copied). The mark only
	// moves forward.
	MarkCopied(ctx context.Context, id string, offset int64) error
	// Collect writes the metric files and artifacts the agent uploaded
	// into dir, at their paths relative to the agent's workdir.
	Collect(ctx context.Context, id string, dir string) error
	// Close revokes the run's token and deletes what the run left.
	Close(ctx context.Context, id string) error
	// Handler serves the agent API, for runners that give the agent a
	// socket of their own (the docker runner, whose untrusted containers
	// have no network).
	Handler() http.Handler
}

// Session is what Open returns.
type Session struct {
	// Token is the run's bearer token; empty when Attached.
	Token string
	// Attached is true when the run was already open.
	Attached bool
}

// State is what an agent has reported of its run.
type State struct {
	// Steps holds a report for each step that ended, in order.
	Steps []StepReport
	// Done is true once the agent posted PathDone.
	Done bool
	// Error is Done.Error.
	Error string
	// LogBytes is the length of the log pushed so far.
	LogBytes int64
	// Copied is how much of the log a runner copied into the job's output
	// (Hub.MarkCopied).
	Copied int64
}
