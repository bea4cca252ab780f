package jobs

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// sweeper removes what crashed attempts left in the data directory:
// workspaces older than any task may run (so another worker sharing the
// directory loses nothing in use) and logs older than the runs that link
// them. It sweeps once, when it starts; a process that crashed left its
// leftovers before this one started.
//
// It has the shape of asynq's background components (heartbeater,
// janitor): newSweeper, start, shutdown.
type sweeper struct {
	logger *slog.Logger
	// maxAge maps each swept directory to the age past which an entry
	// in it is removed.
	maxAge map[string]time.Duration

	// done is closed by shutdown.
	done     chan struct{}
	stopOnce sync.Once
}

// sweeperParams configures a sweeper.
type sweeperParams struct {
	logger *slog.Logger
	// dataDir holds the workspaces (work/) and the run logs (logs/).
	dataDir string
	// workspaceAge and logAge are the ages past which a workspace and a
	// log are leftovers.
	workspaceAge time.Duration
	logAge       time.Duration
}

// newSweeper returns a sweeper of params.dataDir; start runs it.
func newSweeper(params sweeperParams) *sweeper {
	return &sweeper{
		logger: params.logger,
		maxAge: map[string]time.Duration{
			filepath.Join(params.dataDir, "work"): params.workspaceAge,
			filepath.Join(params.dataDir, "logs"): params.logAge,
		},
		done: make(chan struct{}),
	}
}

// start sweeps once in a goroutine counted by wg, which is done once the
// sweep finished and shutdown was called.
func (s *sweeper) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sweep()
		<-s.done
		s.logger.Debug("sweeper done")
	}()
}

// shutdown stops the sweeper; the caller waits for it on the WaitGroup
// given to start. A sweep under way is finished first. Calling shutdown
// more than once, or without start, is harmless.
func (s *sweeper) shutdown() {
	s.stopOnce.Do(func() {
		s.logger.Debug("sweeper shutting down")
		close(s.done)
	})
}

// sweep removes the entries of each swept directory older than the
// directory's maximum age. A directory that cannot be read is skipped.
func (s *sweeper) sweep() {
	now := time.Now()
	for dir, maxAge := range s.maxAge {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			info, err := e.Info()
			if err == nil && now.Sub(info.ModTime()) > maxAge {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err == nil {
					s.logger.Info("swept a leftover", "path", filepath.Join(dir, e.Name()))
				}
			}
		}
	}
}
