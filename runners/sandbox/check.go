package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Check makes one sandbox as opts says and runs `true` in it, without and
// with the host's network, so that a host where sandboxes cannot be made
// is found when mlbot starts rather than when a pull request arrives.
// scratch is a directory for the probe's workspace (mlbot's data dir).
func Check(ctx context.Context, opts Options, scratch string) error {
	ws, err := os.MkdirTemp(scratch, "sandbox-check-")
	if err != nil {
		return fmt.Errorf("sandbox check: %w", err)
	}
	defer os.RemoveAll(ws)
	ws, _ = filepath.Abs(ws)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, network := range []bool{false, true} {
		res, err := Run(ctx, opts, Step{Command: "true", Workspace: ws, Dir: ws, Env: []string{"PATH=/usr/bin:/bin"}, Network: network})
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("sandbox check: `true` exited with status %d", res.ExitCode)
		}
	}
	return nil
}
