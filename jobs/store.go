package jobs

import (
	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/store"
)

// RunState is where a run is in its life (store.RunState).
type RunState = store.RunState

// Run states.
const (
	RunQueued   = store.RunQueued
	RunRunning  = store.RunRunning
	RunFinished = store.RunFinished
)

// Run is one execution of a repository's pipeline on one commit
// (store.Run, the read model the pages share).
type Run = store.Run

// ErrNoRun is returned for a run id Redis does not know (store.ErrNoRun).
var ErrNoRun = store.ErrNoRun

// Errors of HeadAt (store.ErrNoHeadHistory, store.ErrBeforeHeads).
var (
	ErrNoHeadHistory = store.ErrNoHeadHistory
	ErrBeforeHeads   = store.ErrBeforeHeads
)

func repoKey(r bot.Repo) string { return store.RepoKey(r) }

// runTTL bounds how long run records are kept (store.RunTTL).
const runTTL = store.RunTTL
