// Package agentapi is the wire contract between mlbot and `mlbot agent`,
// the small program that runs a job's steps inside a container or pod.
// Both sides import it and nothing else of each other: the agent
// (runners/agent) is a client of the paths below; mlbot's side serves
// them (web/agentsrv) and offers the container runners (runners/docker,
// runners/kubernetes) the Hub they drive a run through.
//
// The agent knows two things, given in its environment: the URL of mlbot
// (EnvURL) and a token valid for its run only (EnvToken). Everything else
// it asks for: the job (PathJob), the source as a tar archive
// (PathSource). It pushes back the log in chunks appended by byte offset
// (PathLog, resumable the way GitLab's job trace PATCH is), the metric
// files and artifacts (PathFiles), each step's end (PathSteps) and its
// own end (PathDone). No forge credential ever enters the container.
package agentapi

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mlbot/mlbot/runners"
)

// Environment variables a runner gives the agent.
const (
	// EnvURL is mlbot's base URL as the agent reaches it: "http://host:port"
	// or "unix:///path/to/socket" (the docker runner's per-run socket).
	EnvURL = "MLBOT_AGENT_URL"
	// EnvToken is the run's bearer token.
	EnvToken = "MLBOT_AGENT_TOKEN"
	// EnvWorkdir is where the agent unpacks the source and runs the steps;
	// DefaultWorkdir when unset.
	EnvWorkdir = "MLBOT_AGENT_WORKDIR"
)

// DefaultWorkdir is the agent's working directory when EnvWorkdir is unset.
const DefaultWorkdir = "/workspace"

// Paths of the agent API, relative to mlbot's base URL. Every request
// carries "Authorization: Bearer <token>"; a missing, wrong, expired or
// revoked token is answered 401 with no detail.
const (
	// PathJob answers GET with the run's Job as JSON.
	PathJob = "/api/v1/agent/job"
	// PathSource answers GET with the checkout as an uncompressed tar
	// archive of regular files, directories and symbolic links.
	PathSource = "/api/v1/agent/source"
	// PathLog takes PATCH: the body is the log from byte Offset on, with
	// "Content-Range: bytes <first>-<last>/*". The answer is 202 with
	// HeaderLogOffset set to the log's new length; a chunk that does not
	// start at the log's current length is refused with 416 and
	// HeaderLogOffset set to that length, from which the agent resends.
	// A chunk may hold at most MaxLogChunkBytes (413 otherwise); an empty
	// one asks for the log's length. mlbot keeps the first 16 MiB of a
	// log and counts the rest, so the offset goes on advancing.
	PathLog = "/api/v1/agent/log"
	// PathFiles takes PUT at PathFiles + kind + "/" + slash-separated path,
	// kind being KindMetrics, KindArtifacts or KindExamples, the body the file and
	// HeaderDigest its "sha256:<hex>". The path must be clean and
	// relative, and name a file of the job's Metrics (one of them
	// exactly), Artifacts (as the pipeline expands them: a file, a
	// directory's file, a match of a pattern) or Examples (exactly). 201
	// when stored; 400 when the digest does not match or the path is not
	// one the job names; 413 over MaxMetricFileBytes, the job's
	// MaxArtifactBytes, MaxExamplesFileBytes, or the
	// run's limit of 64 files of a kind. A file uploaded again replaces
	// the first.
	PathFiles = "/api/v1/agent/files/"
	// PathSteps takes POST of a StepReport as JSON when a step ends: 204.
	// A report whose Index was reported already is ignored, so a retry is
	// harmless; one that skips an index is refused with 409.
	PathSteps = "/api/v1/agent/steps"
	// PathDone takes POST of a Done as JSON when the agent ends: 204. The
	// first Done stays; later ones change nothing.
	PathDone = "/api/v1/agent/done"
)

// Headers of the agent API.
const (
	// HeaderLogOffset carries the log's length after a PATCH of PathLog.
	HeaderLogOffset = "X-Mlbot-Log-Offset"
	// HeaderDigest carries a file's digest, "sha256:<hex>".
	HeaderDigest = "X-Mlbot-Digest"
)

// Kinds of file an agent uploads.
const (
	// KindMetrics is a metric file (small: at most MaxMetricFileBytes).
	KindMetrics = "metrics"
	// KindArtifacts is an artifact (large, streamed).
	KindArtifacts = "artifacts"
	// KindExamples is the per-example results file (streamed, at most
	// MaxExamplesFileBytes).
	KindExamples = "examples"
)

// MaxExamplesFileBytes bounds the per-example results file, as mlbot
// reads it (jobs/report.MaxExamplesFileBytes).
const MaxExamplesFileBytes = 32 << 20

// MaxMetricFileBytes bounds one metric file.
const MaxMetricFileBytes = 1 << 20

// MaxLogChunkBytes bounds the body of one PATCH of PathLog.
const MaxLogChunkBytes = 1 << 20

// Job is what the agent runs, as PathJob serves it.
type Job struct {
	// RunID names the run (for the agent's own messages).
	RunID string `json:"run_id"`
	// Steps run in order; the agent stops at the first that does not succeed.
	Steps []runners.Step `json:"steps"`
	// Env is each step's entire environment ("K=V").
	Env []string `json:"env"`
	// Timeout bounds all the steps together; zero means no bound.
	Timeout Duration `json:"timeout"`
	// Grace is how long a step has after SIGTERM before SIGKILL.
	Grace Duration `json:"grace"`
	// Metrics and Artifacts are the patterns of the files to upload after
	// the last step succeeded (matched relative to the workdir).
	Metrics   []string `json:"metrics"`
	Artifacts []string `json:"artifacts"`
	// Examples is the per-example results file to upload, "" for none.
	Examples string `json:"examples,omitempty"`
	// MaxArtifactBytes bounds each artifact; the server refuses more.
	// Zero means the server's default (2 GiB, as the model registry's).
	MaxArtifactBytes int64 `json:"max_artifact_bytes"`
}

// StepReport is how one step ended, as the agent reports it.
type StepReport struct {
	// Index is the step's position in Job.Steps, from 0.
	Index      int      `json:"index"`
	Name       string   `json:"name"`
	ExitCode   int      `json:"exit_code"`
	Duration   Duration `json:"duration"`
	NotStarted bool     `json:"not_started,omitempty"`
	TimedOut   bool     `json:"timed_out,omitempty"`
}

// Result is the runners.StepResult the report stands for.
func (r StepReport) Result() runners.StepResult {
	return runners.StepResult{Name: r.Name, ExitCode: r.ExitCode, Duration: time.Duration(r.Duration),
		NotStarted: r.NotStarted, TimedOut: r.TimedOut}
}

// Done is the agent's last word. Error is set when the agent itself
// failed (the source could not be fetched, a file not uploaded): an
// infrastructure failure, not a step's.
type Done struct {
	Error string `json:"error,omitempty"`
}

// Duration is a time.Duration that travels as a Go duration string ("1m30s").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ContentRange is the Content-Range header value of a log chunk of n
// bytes at offset.
func ContentRange(offset int64, n int) string {
	return fmt.Sprintf("bytes %d-%d/*", offset, offset+int64(n)-1)
}

// ParseContentRange returns the first offset and the length of a log
// chunk's Content-Range header.
func ParseContentRange(h string) (offset, n int64, err error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: want \"bytes <first>-<last>/*\"", h)
	}
	rest, _, _ = strings.Cut(rest, "/")
	a, b, ok := strings.Cut(rest, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first-1 {
		return 0, 0, fmt.Errorf("content-range %q: want \"bytes <first>-<last>/*\"", h)
	}
	return first, last - first + 1, nil
}
