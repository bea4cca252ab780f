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

// openLog creates the log file of run id in LogDir; what is written to
// the sink has the secrets masked, and is mirrored into RunLogs when set.
// closeLog closes the sink, then the mirror.
func (e *Executor) openLog(id string) (sink *runners.LogSink, logPath string, closeLog func(), err error) {
	logPath = filepath.Join(e.LogDir, id+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, "", nil, err
	}
	sink, err = runners.NewLogSink(logPath, e.Secrets)
	if err != nil {
		return nil, "", nil, err
	}
	var mirror *logMirror
	if e.RunLogs != nil {
		lg := e.Logger
		if lg == nil {
			lg = slog.Default()
		}
		mirror = newLogMirror(e.RunLogs, id, lg)
		sink.Mirror = mirror
	}
	return sink, logPath, func() {
		sink.Close()
		if mirror != nil {
			mirror.Close()
		}
	}, nil
}

// readRepoConfig reads and parses .mlbot.yml in dir. A file missing,
// refused or invalid is the repository's fault: run gets a config_error
// outcome (said in the log too) and the config is nil, without an error.
func readRepoConfig(ctx context.Context, dir string, run *Run, sink io.Writer) (*configs.RepoConfig, error) {
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
	return cfg, nil
}

// runnerFor returns the runner cfg's pipeline asks for (runners.Local when
// it names none) and the resources its job gets within the operator's
// bounds of that runner. A runner this mlbot does not have, or resources
// beyond the bounds, are a config_error of run, and the runner is nil.
func (e *Executor) runnerFor(cfg *configs.RepoConfig, run *Run, sink io.Writer) (runners.Runner, runners.Resources) {
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
		return nil, runners.Resources{}
	}
	resources, err := e.bound(runnerName, cfg.Pipeline)
	if err != nil {
		// Refused before anything starts, quoting the operator's limit.
		run.Outcome, run.Detail = report.OutcomeConfigError, fmt.Sprintf("%s: %v", configs.RepoConfigFile, err)
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return nil, runners.Resources{}
	}
	return r, resources
}

// deadline returns the pipeline's timeout (cfg's, capped at MaxTimeout)
// and when its steps must be done: the timeout from now, or, when the
// task's own deadline comes first, that deadline less deadlineSlack.
func (e *Executor) deadline(ctx context.Context, cfg *configs.RepoConfig) (timeout time.Duration, deadline time.Time) {
	timeout = cfg.Pipeline.Timeout
	if e.MaxTimeout > 0 && timeout > e.MaxTimeout {
		timeout = e.MaxTimeout
	}
	deadline = time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-deadlineSlack).Before(deadline) {
		// The task's own deadline (a base run before this one used part of
		// it) comes first: end as timed out while there is time to say so.
		deadline = dl.Add(-deadlineSlack)
	}
	return timeout, deadline
}

// stepEnv is the environment of run's steps: nothing of the worker's
// secrets, the run's identity, the parameters cfg declares with run's
// overrides (configs.ParamEnv), and, for a trusted run, the server-side
// secrets cfg names. An override cfg does not allow is an error.
func (e *Executor) stepEnv(cfg *configs.RepoConfig, run *Run) ([]string, error) {
	values, err := cfg.ParamValues(run.Params)
	if err != nil {
		return nil, err
	}
	extra := []string{"MLBOT_RUN_ID=" + run.ID, "MLBOT_SHA=" + run.SHA, "MLBOT_REPO=" + run.Repo.FullName}
	extra = append(extra, configs.ParamEnv(values)...)
	for _, name := range cfg.Secrets {
		if v, ok := e.SecretEnv[name]; ok && run.Trusted {
			extra = append(extra, name+"="+v)
		}
	}
	return runners.ChildEnv(os.Environ(), e.Secrets, extra...), nil
}

// Run reads .mlbot.yml in dir and runs its pipeline there, recording
// the outcome, metrics and log in run. An empty outcome means "metrics
// collected, verdict pending the base": the caller decides it with Decide,
// for a default-branch run as for a pull request. The steps: open the
// run's log; read .mlbot.yml; choose its runner; bound the time and set
// the environment; run the pipeline's job; record how it ended and
// collect the metrics.
func (e *Executor) Run(ctx context.Context, dir string, run *Run) (*configs.RepoConfig, error) {
	sink, logPath, closeLog, err := e.openLog(run.ID)
	if err != nil {
		return nil, err
	}
	defer func() {
		closeLog()
		run.LogPath, run.LogTail = logPath, sink.Tail(logTailLines)
	}()
	cfg, err := readRepoConfig(ctx, dir, run, sink)
	if cfg == nil || err != nil {
		return nil, err
	}
	r, resources := e.runnerFor(cfg, run, sink)
	if r == nil {
		return nil, nil
	}
	run.ConfigDigest, run.Order, run.Specs = cfg.Digest(), cfg.MetricOrder, specs(cfg)
	timeout, deadline := e.deadline(ctx, cfg)
	env, err := e.stepEnv(cfg, run)
	if err != nil {
		// The run asks for parameters the commit does not declare (a
		// sweep started before a push that renamed them): nothing runs.
		run.Outcome, run.Detail = report.OutcomeConfigError, configs.RepoConfigFile+": "+err.Error()
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return nil, nil
	}
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
	return e.recordEnd(ctx, dir, cfg, run, sink, last, end, timeout, resources)
}

// recordEnd records in run how its last step ended (last, end), saying so
// in the log, and once every step succeeded collects the metrics. timeout
// and resources are quoted when the run ran out of either. It returns an
// error only for a run cancelled with ctx.
func (e *Executor) recordEnd(ctx context.Context, dir string, cfg *configs.RepoConfig, run *Run, sink io.Writer,
	last runners.StepResult, end stepEnd, timeout time.Duration, resources runners.Resources) (*configs.RepoConfig, error) {
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
	collectMetrics(ctx, dir, cfg, run, sink, e.Secrets)
	return cfg, nil
}

// collectMetrics reads the metric files cfg names from dir into run; a
// file missing or unreadable fails the run. A metric name holding one of
// secrets holds "***" there instead, as the log does: the names reach the
// comment, the status and the run page.
func collectMetrics(ctx context.Context, dir string, cfg *configs.RepoConfig, run *Run, sink io.Writer, secrets []string) {
	defer func() {
		masked := map[string]string{}
		for name := range run.Metrics {
			if m := redact(name, secrets); m != name {
				masked[name] = m
			}
		}
		for name, m := range masked {
			run.Metrics[m] = run.Metrics[name]
			delete(run.Metrics, name)
		}
	}()
	metrics, err := report.ReadFiles(ctx, dir, cfg.Pipeline.Metrics)
	if err != nil {
		run.Outcome, run.Detail = report.OutcomeStepFailed, "reading metrics: "+err.Error()
		fmt.Fprintf(sink, "mlbot: %s\n", run.Detail)
		return
	}
	run.Metrics = metrics
	fmt.Fprintf(sink, "mlbot: %d metrics collected\n", len(metrics))
	collectExamples(ctx, dir, cfg, run, sink)
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
// The gates that use per-example results read run.Significance.
func verdict(base map[string]float64, run *Run) report.Outcome {
	if report.ComputeWith(base, run.Metrics, run.Specs, run.Order, run.Significance).Pass() {
		return report.OutcomePassed
	}
	return report.OutcomeGateFailed
}

// pipelineJob is the job of cfg's pipeline in dir: its train and
// evaluate steps (those it has), in that order, with the patterns of the
// files the pipeline writes. The caller sets the timeout.
func pipelineJob(cfg *configs.RepoConfig, dir string, env []string, network bool, out io.Writer, logPath string) runners.Job {
	job := runners.Job{Dir: dir, Env: env, Network: network, Output: out, Log: logPath,
		Metrics: cfg.Pipeline.Metrics, Artifacts: cfg.Pipeline.Artifacts, Examples: cfg.Pipeline.Examples, Image: cfg.Pipeline.Image}
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
		out[name] = report.Spec{Goal: m.Goal, Min: m.Min, Max: m.Max, MaxDrop: m.MaxDrop,
			Significance: m.Significance, NonInferiority: m.NonInferiority}
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
