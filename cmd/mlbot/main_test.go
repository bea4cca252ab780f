package main

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/sandbox"
)

// TestMain lets the test binary serve as the sandbox's init, as the mlbot
// binary does: the tests run steps in the same sandbox users get. It also
// counts each app's train steps, which the sandbox keeps from writing
// anything a test could read.
func TestMain(m *testing.M) {
	sandbox.MaybeInit()
	wrapRunner = func(cfg *configs.Server, r runners.Runner) runners.Runner {
		return countingRunner{Runner: r, n: trainCounter(cfg.DataDir)}
	}
	code := m.Run()
	dockerCleanup()
	os.Exit(code)
}

// trainCounters holds one counter per app, keyed by its data directory.
var trainCounters sync.Map

func trainCounter(dataDir string) *atomic.Int64 {
	c, _ := trainCounters.LoadOrStore(dataDir, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// trainingsIn is how many train steps the app on dataDir has started.
func trainingsIn(dataDir string) int { return int(trainCounter(dataDir).Load()) }

// countingRunner counts the train steps it runs.
type countingRunner struct {
	runners.Runner
	n *atomic.Int64
}

func (c countingRunner) Run(ctx context.Context, spec runners.Spec) (runners.Result, error) {
	if spec.Name == "train" {
		c.n.Add(1)
	}
	return c.Runner.Run(ctx, spec)
}
