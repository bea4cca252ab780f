package jobs

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestSweeperStartShutdown runs the sweeper as the Worker does, start then
// shutdown, and checks what it removed: in each swept directory, the
// leftover older than the directory's limit goes and the fresh entry stays.
func TestSweeperStartShutdown(t *testing.T) {
	tests := []struct {
		name   string
		sub    string        // swept directory under the data directory
		oldAge time.Duration // age of the leftover, past the limit
	}{
		{name: "workspace", sub: "work", oldAge: 3 * time.Hour},
		{name: "log", sub: "logs", oldAge: 5 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			dir := filepath.Join(data, tt.sub)
			old, fresh := filepath.Join(dir, "old-1"), filepath.Join(dir, "fresh-1")
			for _, d := range []string{old, fresh} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			long := time.Now().Add(-tt.oldAge)
			if err := os.Chtimes(old, long, long); err != nil {
				t.Fatal(err)
			}
			s := newSweeper(sweeperParams{logger: slog.New(slog.DiscardHandler), dataDir: data,
				workspaceAge: 2 * time.Hour, logAge: 4 * time.Hour})
			var wg sync.WaitGroup
			s.start(&wg)
			s.shutdown()
			wg.Wait()
			s.shutdown() // a second shutdown, as Worker.Shutdown may call it again, is harmless
			if _, err := os.Stat(old); !os.IsNotExist(err) {
				t.Errorf("the old %s survived the sweep (stat: %v)", tt.name, err)
			}
			if _, err := os.Stat(fresh); err != nil {
				t.Errorf("the fresh %s was swept: %v", tt.name, err)
			}
		})
	}
}

// TestSweeperKeepsWhatIsWithinItsLimit shows the limits are per directory:
// a log younger than the log limit stays although it is older than the
// workspace limit.
func TestSweeperKeepsWhatIsWithinItsLimit(t *testing.T) {
	data := t.TempDir()
	log := filepath.Join(data, "logs", "run-1.log")
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(log, at, at); err != nil {
		t.Fatal(err)
	}
	s := newSweeper(sweeperParams{logger: slog.New(slog.DiscardHandler), dataDir: data,
		workspaceAge: time.Hour, logAge: 4 * time.Hour})
	var wg sync.WaitGroup
	s.start(&wg)
	s.shutdown()
	wg.Wait()
	if _, err := os.Stat(log); err != nil {
		t.Errorf("a log within the log limit was swept: %v", err)
	}
}
