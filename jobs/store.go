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

// Store keeps mlbot's state in Redis (store.Store).
type Store = store.Store

// NewStore returns a Store using keys that start with prefix ("mlbot:")
// (store.New).
var NewStore = store.New

// Lease is an exclusive, expiring hold on a name (store.Lease).
type Lease = store.Lease

// NewID returns a fresh random id (store.NewID).
func NewID() string { return store.NewID() }

// Errors of HeadAt (store.ErrNoHeadHistory, store.ErrBeforeHeads).
var (
	ErrNoHeadHistory = store.ErrNoHeadHistory
	ErrBeforeHeads   = store.ErrBeforeHeads
)

func repoKey(r bot.Repo) string { return store.RepoKey(r) }

// runTTL bounds how long run records are kept (store.RunTTL).
const runTTL = store.RunTTL
