// Package stop ends a running command the way every mlbot runner does:
// when its timeout expires or its context ends, it is asked to stop
// (SIGTERM), and forced (SIGKILL) if it has not exited a grace period
// later. The local runner signals a process group, the sandbox its init;
// both watch the command with Watch.
package stop

import (
	"context"
	"time"
)

// Reason says why Watch stopped a command.
type Reason int

const (
	// NotStopped: the command exited by itself.
	NotStopped Reason = iota
	// TimedOut: the timeout expired first.
	TimedOut
	// Canceled: the context ended first.
	Canceled
)

// String returns the reason's name, for logs and test failures.
func (r Reason) String() string {
	switch r {
	case NotStopped:
		return "not stopped"
	case TimedOut:
		return "timed out"
	case Canceled:
		return "canceled"
	}
	return "unknown"
}

// Watch watches a started command until exited is closed, which the
// caller does once its Wait returns. If ctx ends, or timeout (zero: none)
// passes, before that, Watch calls term, then kill when the command has
// not exited grace later.
//
// The returned channel receives exactly one Reason, and receives it
// before term is called, so a caller that reads it after closing exited
// never waits for the grace period. The caller must close exited, or the
// watching goroutine never ends.
func Watch(ctx context.Context, timeout, grace time.Duration, exited <-chan struct{}, term, kill func()) <-chan Reason {
	var expired <-chan time.Time
	var timer *time.Timer
	if timeout > 0 {
		timer = time.NewTimer(timeout)
		expired = timer.C
	}
	stopped := make(chan Reason, 1)
	go func() {
		if timer != nil {
			defer timer.Stop()
		}
		why := NotStopped
		select {
		case <-exited:
		case <-ctx.Done():
			why = Canceled
		case <-expired:
			why = TimedOut
		}
		stopped <- why
		if why == NotStopped {
			return
		}
		term()
		force := time.NewTimer(grace)
		defer force.Stop()
		select {
		case <-exited:
		case <-force.C:
			kill()
		}
	}()
	return stopped
}
