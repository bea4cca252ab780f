package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mlbot/mlbot/runners/agentapi"
)

// Bounds of the backoff between retries.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// backoff is an exponential wait between retries.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: minBackoff} }

// wait sleeps for the next backoff, or until ctx ends.
func (b *backoff) wait(ctx context.Context) error {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, maxBackoff)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryable reports whether a failed call may succeed when tried again:
// a network failure (mlbot, or the worker serving its socket, is
// restarting) or an answer saying mlbot is briefly unable to serve. Any
// other answer of mlbot (401, 400, 413…) is final.
func retryable(ctx context.Context, err error) bool {
	var pe permanentError
	if ctx.Err() != nil || errors.As(err, &pe) {
		return false
	}
	var se *agentapi.StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// withRetry calls fn until it succeeds, fails for good, or has been
// failing for longer than retryFor.
func withRetry(ctx context.Context, retryFor time.Duration, fn func(context.Context) error) error {
	start := time.Now()
	b := newBackoff()
	for {
		err := fn(ctx)
		if err == nil || !retryable(ctx, err) || time.Since(start) > retryFor {
			return err
		}
		if werr := b.wait(ctx); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// permanentError marks a failure of the agent's own side (a file it
// cannot open) that no retry can cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }
