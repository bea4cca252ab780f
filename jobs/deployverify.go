package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/verify"
)

// verifyDeploy watches the environment's metric after deploy d succeeded,
// when the environment has a verify: block. On a breach d becomes rolled
// back and the previous version is queued in its place; otherwise what
// was observed joins d's detail. It returns an error when mlbot shuts
// down meanwhile (the retry finds d running and reports it unverified
// rather than succeeded) or the rollback cannot be queued.
func (w *Worker) verifyDeploy(ctx context.Context, p DeployPayload, d *registry.Deploy, env configs.Environment) error {
	// An automatic rollback restores a version that held before; verifying
	// it against the same bad signal could bounce between versions forever.
	if d.State != deploystate.Succeeded || env.Verify == nil || strings.HasPrefix(d.Reason, autoRollbackReason) {
		return nil
	}
	breach, observed, rec := w.watchMetric(ctx, env)
	d.Verification = rec
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if breach != "" {
		d.State, d.Detail = deploystate.RolledBack, "verification failed: "+breach+observed
		// The rollback is queued before anything that can fail on the
		// host, so a lost reply cannot leave the bad model serving.
		return w.autoRollback(ctx, p, d, breach)
	}
	if observed != "" {
		d.Detail = joinDetail(d.Detail, "verified: "+observed)
	}
	return nil
}

// watchMetric watches the environment's metric after a deploy; it returns
// why it breached ("" when it held), what it observed, and the record of
// the values read that the deploy keeps (nil when nothing was queried).
func (w *Worker) watchMetric(ctx context.Context, env configs.Environment) (breach, observed string, rec *registry.Verification) {
	if w.opts.PrometheusURL == "" {
		verifications.WithLabelValues(env.Name, "skipped").Inc()
		return "", "not verified: MLBOT_PROMETHEUS_URL is not set", nil
	}
	vf, err := verify.New(w.opts.PrometheusURL)
	if err != nil {
		verifications.WithLabelValues(env.Name, "error").Inc()
		return "", "not verified: " + err.Error(), nil
	}
	res, err := vf.Run(ctx, *env.Verify)
	rec = verificationRecord(*env.Verify, res, err)
	var vals []string
	for _, s := range res.Observed {
		vals = append(vals, strconv.FormatFloat(s.Value, 'g', 4, 64))
	}
	if len(vals) > 20 {
		vals = vals[len(vals)-20:]
	}
	obs := ""
	if len(vals) > 0 {
		obs = fmt.Sprintf(" (observed %s: %s)", env.Verify.Query, strings.Join(vals, ", "))
	}
	if err != nil {
		if ctx.Err() == nil {
			// A shutdown is not a verification that failed.
			verifications.WithLabelValues(env.Name, "error").Inc()
		}
		return "", "not verified: " + err.Error() + obs, rec
	}
	if res.Breached {
		verifications.WithLabelValues(env.Name, "breached").Inc()
		return res.Reason, obs, rec
	}
	verifications.WithLabelValues(env.Name, "passed").Inc()
	return "", strings.TrimPrefix(obs, " "), rec
}

const autoRollbackReason = "automatic rollback"

// autoRollback queues the environment's previous version after a failed
// verification.
func (w *Worker) autoRollback(ctx context.Context, p DeployPayload, d *registry.Deploy, why string) error {
	prev, err := w.previousVersion(ctx, d.Repo, d.Env, d.Version)
	if err != nil || prev == nil {
		w.log.Error("automatic rollback impossible: no previous version", "env", d.Env, "err", err)
		return err
	}
	_, err = w.requestDeploy(ctx, deployKey(d.ID, "rollback"), p.Repo, p.Ref, d.Env, prev, autoRollbackReason+" from v"+strconv.Itoa(d.Version)+": "+why, "mlbot", d.PR, registry.KindRollback, false)
	return err
}

// previousVersion returns the newest version other than current that was
// deployed successfully to env.
func (w *Worker) previousVersion(ctx context.Context, repo, env string, current int) (*registry.Version, error) {
	hist, err := w.registry.Deploys(ctx, repo, env)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		if h.State == deploystate.Succeeded && h.Version != current {
			return w.registry.Get(ctx, repo, h.Version)
		}
	}
	return nil, nil
}

// joinDetail appends b to a deploy's detail a, after a semicolon.
func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
