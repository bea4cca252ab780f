package agentapi

import (
	"context"
	"io"

	"github.com/mlbot/mlbot/runners"
)

// Follower copies a run's log from the Hub to the job's output as the
// agent pushes it, for a container runner's watch loop: call Poll on a
// ticker and once more after the container ended.
//
// It starts where the run's previous follower stopped (State.Copied),
// and marks at the Hub how far it copied after each Poll: a worker that
// re-attaches to a run after its predecessor died goes on with the log
// instead of copying it again from the start. A worker that dies between
// copying and marking leaves at most what one Poll copied to be copied
// again.
type Follower struct {
	hub     Hub
	id      string
	out     io.Writer
	offset  int64
	resumed bool
}

// NewFollower returns a follower of run id's log into out, from where
// the run's previous follower stopped (its start for a new run).
func NewFollower(hub Hub, id string, out io.Writer) *Follower {
	return &Follower{hub: hub, id: id, out: out}
}

// Poll copies what is new of the log to the output and returns the
// run's state.
func (f *Follower) Poll(ctx context.Context) (State, error) {
	if !f.resumed {
		st, err := f.hub.State(ctx, f.id)
		if err != nil {
			return State{}, err
		}
		f.offset, f.resumed = st.Copied, true
	}
	off, err := f.hub.ReadLog(ctx, f.id, f.offset, f.out)
	if off > f.offset {
		// What was written is marked even when the read failed after it.
		if merr := f.hub.MarkCopied(ctx, f.id, off); merr != nil && err == nil {
			err = merr
		}
		f.offset = off
	}
	if err != nil {
		return State{}, err
	}
	return f.hub.State(ctx, f.id)
}

// Offset is how much of the log has been copied.
func (f *Follower) Offset() int64 { return f.offset }

// JobResult turns the steps an agent reported into the runner contract's
// result; a step the agent did not report (the container died in it) is
// the caller's to add.
func JobResult(st State, log string) runners.JobResult {
	res := runners.JobResult{Log: log}
	for _, s := range st.Steps {
		res.Steps = append(res.Steps, s.Result())
	}
	return res
}
