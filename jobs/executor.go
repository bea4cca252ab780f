package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/workspace"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners"
)

// logTailLines is how much of a failed run's log the PR comment quotes.
const logTailLines = 60

// deadlineSlack is kept from a task's deadline to record and report a
// timeout before asynq gives up on the task.
const deadlineSlack = 10 * time.Second

// Executor runs a repository's pipeline in a checked-out directory. The
// worker uses it for every commit, and `mlbot run` for a working copy.
type Executor struct {
	// Runners holds the runners a repository may choose with
	// `pipeline.runner`; an empty choice is runners.Local.
	Runners runners.Set
	// LogDir receives one log file per run.
	LogDir string
	// Secrets are masked in logs and kept from the child's environment.
	Secrets []string
	// MaxTimeout caps the timeout .mlbot.yml asks for (0: no cap).
	MaxTimeout time.Duration
	// SecretEnv holds the server-side secrets by name; a trusted run gets
	// those its .mlbot.yml names under `secrets:`, as environment variables.
	SecretEnv map[string]string
	// MemoryLimit is a step's memory limit in bytes, quoted when a step
	// runs out of memory (0: not known).
	MemoryLimit int64
	// Limits returns the operator's bounds of a container runner by name
	// and the prefix of their settings; false for a runner without any
	// (configs.Server.Limits). Nil bounds nothing.
	Limits func(runner string) (configs.RunnerLimits, string, bool)
	// RunLogs, when set, receives each run's log as it is written, for the
	// run page's live log (the store).
	RunLogs runLogAppender
	// Logger reports what goes wrong on the side (the live log); nil is
	// slog.Default().
	Logger *slog.Logger
	// Notify, when set, tells the people waiting on run what its runner
	// is waiting for (a Pending pod); see runners.Job.Notify.
	Notify func(run *Run, msg string)
}

// memoryLimitNote names the memory limit for an out-of-memory report.
func (e *Executor) memoryLimitNote() string {
	if e.MemoryLimit <= 0 {
		return ""
	}
	return fmt.Sprintf("; the limit per step is %s (MLBOT_SANDBOX_MEMORY)", formatBytes(e.MemoryLimit))
}

// Run reads .mlbot.yml in dir and runs its pipeline there, recording
// the outcome, metrics and log in run. An empty outcome means "metrics
// collected, verdict pending the base": the caller decides it with Decide,
// for a default-branch run as for a pull request.
func (e *Executor) Run(ctx context.Context, dir string, run *Run) (*configs.RepoConfig, error) {
	logPath := filepath.Join(e.LogDir, run.ID+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, err
	}
	sink, err := runners.NewLogSink(logPath, e.Secrets)
	if err != nil {
		return nil, err
	}
	var mirror *logMirror
	if e.RunLogs != nil {
		lg := e.Logger
		if lg == nil {
			lg = slog.Default()
		}
		mirror = newLogMirror(e.RunLogs, run.ID, lg)
		sink.Mirror = mirror
	}
	defer func() {
		sink.Close()
		if mirror != nil {
			mirror.Close()
		}
		run.LogPath, run.LogTail = logPath, sink.Tail(logTailLines)
	}()
	// Through package workspace: the checkout is the repository's to shape
	// (a symbolic link to a worker file, a FIFO), and 1 MiB is the most
	// ParseRepoConfig accepts.
	data, err := workspace.ReadFile(ctx, dir, configs.RepoConfigFile, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		run.Outcome, run.Detail = report.OutcomeConfigError, configs.RepoConfigFile+": not found in the repository at "+short(run.SHA)
		return nil, nil
	}
	if errors.Is(err, workspace.ErrRefused) {
		run.Outcome, run.Detail = report.OutcomeConfigError, configs.RepoConfigFile+": "+err.Error()
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg, err := configs.ParseRepoConfig(configs.RepoConfigFile, data)
	if err != nil {
		run.Outcome, run.Detail = report.OutcomeConfigError, err.Error()
		fmt.Fprintf(sink, "mlbot: invalid %s:\n%s\n", configs.RepoConfigFile, err)
		return nil, nil
	}
	runnerName := cfg.Pipeline.Runner
	if runnerName == "" {
		runnerName = runners.Local
	}
	r, err := e.Runners.Get(runnerName)
	if err != nil {
		// Running it locally instead would silently ignore the isolation
		// the repository asked for.
		run.Outcome, run.Detail = report.OutcomeConfigError, fmt.Sprintf("%s: runner %q is not available in this mlbot; use runner: local", configs.RepoConfigFile, cfg.Pipeline.Runner)
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return nil, nil
	}
	resources, err := e.bound(runnerName, cfg.Pipeline)
	if err != nil {
		// Refused before anything starts, quoting the operator's limit.
		run.Outcome, run.Detail = report.OutcomeConfigError, fmt.Sprintf("%s: %v", configs.RepoConfigFile, err)
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return nil, nil
	}
	run.ConfigDigest, run.Order, run.Specs = cfg.Digest(), cfg.MetricOrder, specs(cfg)
	timeout := cfg.Pipeline.Timeout
	if e.MaxTimeout > 0 && timeout > e.MaxTimeout {
		timeout = e.MaxTimeout
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-deadlineSlack).Before(deadline) {
		// The task's own deadline (a base run before this one used part of
		// it) comes first: end as timed out while there is time to say so.
		deadline = dl.Add(-deadlineSlack)
	}
	extra := []string{"MLBOT_RUN_ID=" + run.ID, "MLBOT_SHA=" + run.SHA, "MLBOT_REPO=" + run.Repo.FullName}
	for _, name := range cfg.Secrets {
		if v, ok := e.SecretEnv[name]; ok && run.Trusted {
			extra = append(extra, name+"="+v)
		}
	}
	env := runners.ChildEnv(os.Environ(), e.Secrets, extra...)
	// Untrusted code never gets the network; trusted code keeps it unless
	// the repository turns it off.
	network := run.Trusted && cfg.Pipeline.Network != "none"
	job := pipelineJob(cfg, dir, env, network, sink, logPath)
	job.ID, job.Resources = run.ID, resources
	if e.Notify != nil {
		job.Notify = func(msg string) { e.Notify(run, msg) }
	}
	took := map[string]*time.Duration{"train": &run.Train, "evaluate": &run.Evaluate}
	var (
		res  runners.JobResult
		last runners.StepResult
		end  stepEnd
	)
	if job.Timeout = time.Until(deadline); job.Timeout <= 0 {
		// Zero would mean no bound at all: the first step finds no time.
		if len(job.Steps) > 0 {
			last, end = runners.StepResult{Name: job.Steps[0].Name, NotStarted: true}, stepNotStarted
		}
	} else {
		res, last, end = runJob(ctx, r, job)
	}
	for _, sr := range res.Steps {
		observeStep(sr)
		if d := took[sr.Name]; d != nil {
			*d = sr.Duration
		}
	}
	if res.InfraError != nil {
		return nil, fmt.Errorf("%s: %w", last.Name, res.InfraError)
	}
	switch end {
	case stepNotStarted:
		run.Outcome, run.Detail = report.OutcomeTimedOut, fmt.Sprintf("no time was left for %s within the pipeline timeout of %s", last.Name, timeout)
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return cfg, nil
	case stepCanceled:
		return nil, canceledError(ctx, last.Name)
	case stepOOMKilled:
		what := fmt.Sprintf("%s ran out of memory and was killed (exit status %d)", last.Name, last.ExitCode)
		if last.ExitCode == 0 {
			// A helper process died, the step carried on: its result
			// is not to be trusted.
			what = fmt.Sprintf("a process of %s ran out of memory and was killed", last.Name)
		}
		note := e.memoryLimitNote()
		if resources.Memory != "" {
			note = fmt.Sprintf("; the limit is %s (pipeline.resources.memory, or the operator's default)", resources.Memory)
		}
		run.Outcome, run.Detail = report.OutcomeStepFailed, what+note
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return cfg, nil
	case stepTimedOut:
		run.Outcome, run.Detail = report.OutcomeTimedOut, fmt.Sprintf("%s did not finish within the pipeline timeout of %s; its process group was killed", last.Name, timeout)
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return cfg, nil
	case stepExited:
		run.Outcome, run.Detail = report.OutcomeStepFailed, fmt.Sprintf("%s exited with status %d", last.Name, last.ExitCode)
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return cfg, nil
	}
	metrics, err := report.ReadFiles(ctx, dir, cfg.Pipeline.Metrics)
	if err != nil {
		run.Outcome, run.Detail = report.OutcomeStepFailed, "reading metrics: "+err.Error()
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return cfg, nil
	}
	run.Metrics = metrics
	fmt.Fprintf(sink, "mlbot: %d metrics collected\n", len(metrics))
	return cfg, nil
}

// bound checks p against the operator's bounds of runner and returns
// what the run's container or pod gets; the local runner has none here
// (its sandbox limits apply).
func (e *Executor) bound(runner string, p configs.Pipeline) (runners.Resources, error) {
	if e.Limits == nil {
		return runners.Resources{}, nil
	}
	lim, prefix, ok := e.Limits(runner)
	if !ok {
		return runners.Resources{}, nil
	}
	if err := lim.Check(p, prefix); err != nil {
		return runners.Resources{}, err
	}
	r := lim.Apply(p.Resources)
	out := runners.Resources{GPUs: r.GPUs, NodeSelector: r.NodeSelector, Tolerations: r.Tolerations}
	if r.CPUMilli > 0 {
		out.CPU = configs.FormatCPU(r.CPUMilli)
	}
	if r.MemoryBytes > 0 {
		out.Memory = configs.FormatBytes(r.MemoryBytes)
	}
	if r.ShmBytes > 0 {
		out.ShmSize = configs.FormatBytes(r.ShmBytes)
	}
	return out, nil
}

// Decide sets the outcome of a run that produced metrics, compared against
// base (nil when there is none): a pull request against its merge base, a
// default-branch commit against the newest earlier commit of its branch.
func Decide(run, base *Run) {
	if run.Outcome != "" {
		return
	}
	var m map[string]float64
	if base != nil {
		run.BaseRunID, run.BaseSHA, m = base.ID, base.SHA, base.Metrics
	}
	run.Outcome = verdict(m, run)
}

// verdict decides a run that produced metrics: passed when every gate
// holds against base (nil when there is none), gate_failed otherwise.
func verdict(base map[string]float64, run *Run) report.Outcome {
	if report.Compute(base, run.Metrics, run.Specs, run.Order).Pass() {
		return report.OutcomePassed
	}
	return report.OutcomeGateFailed
}

// pipelineJob is the job of cfg's pipeline in dir: its train and
// evaluate steps (those it has), in that order, with the patterns of the
// files the pipeline writes. The caller sets the timeout.
func pipelineJob(cfg *configs.RepoConfig, dir string, env []string, network bool, out io.Writer, logPath string) runners.Job {
	job := runners.Job{Dir: dir, Env: env, Network: network, Output: out, Log: logPath,
		Metrics: cfg.Pipeline.Metrics, Artifacts: cfg.Pipeline.Artifacts, Image: cfg.Pipeline.Image}
	for _, s := range []runners.Step{{Name: "train", Command: cfg.Pipeline.Train}, {Name: "evaluate", Command: cfg.Pipeline.Evaluate}} {
		if s.Command != "" {
			job.Steps = append(job.Steps, s)
		}
	}
	return job
}

func specs(cfg *configs.RepoConfig) map[string]report.Spec {
	out := make(map[string]report.Spec, len(cfg.Metrics))
	for name, m := range cfg.Metrics {
		out[name] = report.Spec{Goal: m.Goal, Min: m.Min, Max: m.Max, MaxDrop: m.MaxDrop}
	}
	return out
}

// formatBytes renders n in the largest binary unit that keeps it at least 1.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
