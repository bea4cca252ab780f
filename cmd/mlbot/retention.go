package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
)

// retentionLease is the lease a collection holds, so that one process at a
// time collects, whatever the number of replicas (and `mlbot models gc`
// waits its turn like them).
const retentionLease = "retention"

// retentionLeaseTTL is how long a collection's lease lasts unless renewed;
// a heartbeat renews it while the collection runs.
const retentionLeaseTTL = time.Minute

// errCollecting is returned when another process holds the lease.
var errCollecting = errors.New("another mlbot process is collecting now")

// policyOf turns the retention settings into the registry's policy.
func policyOf(r configs.Retention) registry.Policy {
	return registry.Policy{Deploys: r.Deploys, DefaultBranch: r.Main, MaxAge: r.MaxAge()}
}

// collect runs one collection under the retention lease; a dry run needs
// no lease, since it changes nothing.
func collect(ctx context.Context, st *store.Store, reg *registry.Registry, p registry.Policy, dryRun bool) (*registry.Collection, error) {
	if dryRun {
		return reg.Collect(ctx, registry.CollectOptions{Policy: p, DryRun: true})
	}
	lease, ok, err := st.Lease(ctx, retentionLease, retentionLeaseTTL)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errCollecting
	}
	defer lease.Release()
	stop := lease.Heartbeat(ctx, retentionLeaseTTL)
	defer stop()
	return reg.Collect(ctx, registry.CollectOptions{Policy: p})
}

// retention runs a collection every interval (MLBOT_RETENTION_INTERVAL) in
// whichever process takes the lease first: it drops the model versions no
// retention rule keeps and deletes the artifact blobs nothing names.
//
// It has the shape of asynq's background components (heartbeater,
// janitor): newRetention, start, shutdown.
type retention struct {
	logger   *slog.Logger
	store    *store.Store
	registry *registry.Registry
	policy   registry.Policy
	interval time.Duration

	// cancel stops a collection under way; done is closed by shutdown.
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// retentionParams configures a retention loop.
type retentionParams struct {
	logger   *slog.Logger
	store    *store.Store
	registry *registry.Registry
	settings configs.Retention
}

// newRetention returns the loop of params; start runs it. With an
// interval of 0 it does nothing.
func newRetention(params retentionParams) *retention {
	ctx, cancel := context.WithCancel(context.Background())
	return &retention{
		logger: params.logger, store: params.store, registry: params.registry,
		policy: policyOf(params.settings), interval: params.settings.Interval,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
}

// start runs the loop in a goroutine counted by wg: a collection every
// interval, the first one interval after start.
func (r *retention) start(wg *sync.WaitGroup) {
	if r.interval <= 0 {
		r.logger.Debug("retention collector off (MLBOT_RETENTION_INTERVAL=0)")
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				r.logger.Debug("retention collector done")
				return
			case <-t.C:
				r.collect()
			}
		}
	}()
}

// shutdown stops the loop, cancelling a collection under way (what it has
// deleted stays deleted; the rest waits for the next one); the caller waits
// on the WaitGroup given to start. Calling it more than once, or without
// start, is harmless.
func (r *retention) shutdown() {
	r.stopOnce.Do(func() {
		r.logger.Debug("retention collector shutting down")
		r.cancel()
		close(r.done)
	})
}

// collect runs one collection and logs what it did.
func (r *retention) collect() {
	c, err := collect(r.ctx, r.store, r.registry, r.policy, false)
	switch {
	case errors.Is(err, errCollecting):
		r.logger.Debug("retention: another process is collecting")
	case err != nil && r.ctx.Err() == nil:
		r.logger.Error("retention: collection failed", "err", err)
	case err == nil && (c.Dropped() > 0 || len(c.Deleted) > 0 || c.StaleTemp > 0):
		r.logger.Info("retention: collected", "versions_dropped", c.Dropped(), "blobs_deleted", len(c.Deleted),
			"bytes_freed", c.Freed(), "blobs_held", len(c.Held), "stale_temp_files", c.StaleTemp)
	}
}
