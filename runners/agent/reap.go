package agent

import (
	"context"
	"os"
	"sync"
	"time"
)

// reapEvery is how often the reaper looks for zombies.
const reapEvery = time.Second

// reaper collects the zombies of processes re-parented to the agent. When
// the agent is PID 1 of its container (a pod without an init process),
// every process a step orphans becomes the agent's child when its parent
// exits, and nobody else will ever wait for it: without the reaper each
// stays in the process table until the container ends. The reaper never
// waits for a process the agent started itself (a step's shell, which
// exec.Cmd.Wait reaps, keeping its exit status): runStep registers those
// while holding the reaper's lock, so no scan can come in between.
type reaper struct {
	mu  sync.Mutex
	own map[int]bool
}

// children is the agent's reaper.
var children = &reaper{own: map[int]bool{}}

// start runs fn, which starts a process and returns its pid (0 when it
// did not start), so that the process is the agent's own from its first
// instant.
func (r *reaper) start(fn func() int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pid := fn(); pid > 0 {
		r.own[pid] = true
	}
}

// done forgets pid once it was waited for.
func (r *reaper) done(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.own, pid)
}

// run reaps zombie children every reapEvery until ctx ends, when the
// agent is PID 1; otherwise it returns at once (an init process reaps).
func (r *reaper) run(ctx context.Context) {
	if os.Getpid() != 1 {
		return
	}
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.scan(1)
		}
	}
}
