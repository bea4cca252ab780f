package jobs

import (
	"context"
	"time"

	"github.com/mlbot/mlbot/jobs/store"
)

// hold keeps lease alive with a heartbeat every third of ttl; the returned
// func stops the heartbeat and releases the lease. Runs and environments
// hold their leases this way while their work runs.
func hold(ctx context.Context, lease *store.Lease, ttl time.Duration) (release func()) {
	stop := lease.Heartbeat(ctx, ttl)
	return func() {
		stop()
		lease.Release()
	}
}
