package agentapi

import (
	"context"
	"io"

	"github.com/mlbot/mlbot/runners"
)

// Follower copies a run's log from the Hub to the job's output as the
// agent pushes it, for a container runner's watch loop: call Poll on a
// ticker and once more after the container ended.
type Follower struct {
	hub    Hub
	id     string
	out    io.Writer
	offset int64
}

// NewFollower returns a follower of run id's log into out, from its start.
func NewFollower(hub Hub, id string, out io.Writer) *Follower {
	return &Follower{hub: hub, id: id, out: out}
}

// Poll copies what is new of the log to the output and returns the
// run's state.
func (f *Follower) Poll(ctx context.Context) (State, error) {
	off, err := f.hub.ReadLog(ctx, f.id, f.offset, f.out)
	if err != nil {
		return State{}, err
	}
	f.offset = off
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
