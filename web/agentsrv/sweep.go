package agentsrv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mlbot/mlbot/jobs/store"
)

// Sweep removes the directories of runs whose session is gone from the
// store (it expired without a Close, or the process that would have
// closed it died) and that were last changed more than minAge ago, so an
// Open in progress, which makes its directory before its session, is left
// alone. It returns how many it removed. Call it now and then, as the
// other cleanups are.
func (h *Hub) Sweep(ctx context.Context, minAge time.Duration) (int, error) {
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return 0, fmt.Errorf("agentsrv: sweep: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		id := e.Name()
		if !e.IsDir() || !validID.MatchString(id) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < minAge {
			continue
		}
		_, err = h.store.GetAgent(ctx, id)
		if !errors.Is(err, store.ErrNoAgent) {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := os.RemoveAll(h.runDir(id)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("agentsrv: sweep: %w", err)
	}
	return removed, nil
}
