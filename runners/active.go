package runners

import (
	"errors"
	"sync"
)

// ErrDetach is the cause to cancel a JobRunner's context with
// (context.WithCancelCause) to leave the job running instead of stopping
// it, as a worker that shuts down does: a later RunJob with the same job id,
// in this process or another, attaches to it again. The result of the
// detached call wraps ErrDetach in its InfraError.
var ErrDetach = errors.New("runners: detached from the job")

// ActiveJobs is the set of job ids a JobRunner is running in this process,
// so that a second RunJob of the same id (a task asynq delivered twice)
// does not attach to the job beside the first. Its zero value is an empty
// set, ready to use; it is safe for concurrent use.
type ActiveJobs struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// Begin marks id as running; it returns false when it already is.
func (a *ActiveJobs) Begin(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.ids[id]; ok {
		return false
	}
	if a.ids == nil {
		a.ids = map[string]struct{}{}
	}
	a.ids[id] = struct{}{}
	return true
}

// End unmarks id.
func (a *ActiveJobs) End(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.ids, id)
}

// Running reports whether id is marked as running.
func (a *ActiveJobs) Running(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ids[id]
	return ok
}
