// Package agentsrv is mlbot's side of the agent protocol (runners/agentapi):
// a Hub that the container runners drive a run through, and the HTTP
// handler that `mlbot agent` in the container talks to.
//
// A run's state lives in two places. Redis, through jobs/store, holds the
// session: the job, the sha256 of the run's bearer token, the log the agent
// pushed (by byte offset), the metric files, the artifact records, the step
// reports and the agent's end; everything expires with the session's TTL.
// The data directory holds the bulky part, under <dataDir>/agent/<id>/
// (mode 0700, files 0600): the source archive the agent fetches and the
// artifacts it uploaded. Close removes both.
//
// Nothing the agent sends is trusted: its token is valid for its own run
// only, every body is bounded, every uploaded path must be clean, relative
// and named by the job's patterns, and artifacts are written and later
// collected through os.Root, never through a symbolic link.
package agentsrv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// DefaultMaxArtifactBytes bounds an artifact of a job whose
// MaxArtifactBytes is zero: the model registry's own default per file.
const DefaultMaxArtifactBytes = 2 << 30

// Hub implements agentapi.Hub over a jobs/store Store and a directory of
// the data dir. It is safe for concurrent use; several Hubs (several mlbot
// processes) may share the Store, and share the directory when the agent's
// uploads and Collect may happen in different processes.
type Hub struct {
	store *store.Store
	dir   string
	log   *slog.Logger
}

var _ agentapi.Hub = (*Hub)(nil)

// New returns a Hub keeping sessions in st and files under
// dataDir/agent, which it creates (mode 0700). logger receives what the
// agent did wrong; nil means slog.Default().
func New(st *store.Store, dataDir string, logger *slog.Logger) (*Hub, error) {
	if logger == nil {
		logger = slog.Default()
	}
	dir := filepath.Join(dataDir, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agentsrv: %w", err)
	}
	return &Hub{store: st, dir: dir, log: logger}, nil
}

// validID matches the run ids a Hub accepts: they name a directory and
// Redis keys.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// runDir is the directory of run id's files.
func (h *Hub) runDir(id string) string { return filepath.Join(h.dir, id) }

// Names inside a run's directory.
const (
	sourceName    = "source.tar"
	artifactsName = "artifacts"
	tmpName       = "tmp"
)

// Open registers run id: it writes the source archive of dir (everything
// but .git, see writeSource), stores the job and a fresh token's hash, and
// returns the token. For a run that is open already it changes nothing
// and returns a Session with Attached set.
func (h *Hub) Open(ctx context.Context, id string, job agentapi.Job, dir string, ttl time.Duration) (agentapi.Session, error) {
	if !validID.MatchString(id) {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open: bad run id %q", id)
	}
	if _, err := h.store.GetAgent(ctx, id); err == nil {
		return agentapi.Session{Attached: true}, nil
	} else if !errors.Is(err, store.ErrNoAgent) {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open %s: %w", id, err)
	}
	job.RunID = id
	jobJSON, err := json.Marshal(job)
	if err != nil {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open %s: %w", id, err)
	}
	run := h.runDir(id)
	if err := os.MkdirAll(filepath.Join(run, tmpName), 0o700); err != nil {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open %s: %w", id, err)
	}
	tmp, err := os.CreateTemp(filepath.Join(run, tmpName), "source-*.tar")
	if err != nil {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open %s: %w", id, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	err = writeSource(ctx, dir, tmp, h.log.With("run", id))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open %s: source: %w", id, err)
	}
	token, hash := newToken()
	created, err := h.store.OpenAgent(ctx, id, jobJSON, hash, ttl)
	if err != nil {
		return agentapi.Session{}, fmt.Errorf("agentsrv: open %s: %w", id, err)
	}
	if !created {
		// Another Open of the same run won the race; its archive stays.
		return agentapi.Session{Attached: true}, nil
	}
	// Only this caller knows the token yet, so nobody can ask for the
	// archive before it is in place.
	if err := os.Rename(tmp.Name(), filepath.Join(run, sourceName)); err != nil {
		return agentapi.Session{}, errors.Join(fmt.Errorf("agentsrv: open %s: %w", id, err), h.store.CloseAgent(ctx, id))
	}
	return agentapi.Session{Token: token}, nil
}

// newToken returns a fresh bearer token (256 random bits in hex) and its
// hash as the store keeps it.
func newToken() (token, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on the systems mlbot runs on; a token
		// that is not random must never be handed out.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	token = hex.EncodeToString(b[:])
	return token, tokenHash(token)
}

// tokenHash is the sha256 of token in hex.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// State returns what the agent of run id has reported.
func (h *Hub) State(ctx context.Context, id string) (agentapi.State, error) {
	sess, err := h.store.GetAgent(ctx, id)
	if err != nil {
		return agentapi.State{}, fmt.Errorf("agentsrv: state: %w", err)
	}
	reports, err := h.store.AgentSteps(ctx, id)
	if err != nil {
		return agentapi.State{}, fmt.Errorf("agentsrv: state: %w", err)
	}
	st := agentapi.State{Done: sess.Done, Error: sess.Error, LogBytes: sess.LogBytes, Copied: sess.Copied}
	for i, b := range reports {
		var r agentapi.StepReport
		if err := json.Unmarshal(b, &r); err != nil {
			return agentapi.State{}, fmt.Errorf("agentsrv: state of %s: step %d: %w", id, i, err)
		}
		st.Steps = append(st.Steps, r)
	}
	return st, nil
}

// MarkCopied records that run id's log was copied into the job's output
// up to offset.
func (h *Hub) MarkCopied(ctx context.Context, id string, offset int64) error {
	if err := h.store.SetAgentCopied(ctx, id, offset); err != nil {
		return fmt.Errorf("agentsrv: mark copied: %w", err)
	}
	return nil
}

// readLogChunk is how much log ReadLog asks Redis for at once.
const readLogChunk = 1 << 20

// ReadLog writes run id's log from byte from on to w and returns the
// offset after it. Where the log went on past what mlbot keeps
// (store.MaxAgentLogBytes), one line says so and the offset jumps to the
// log's full length.
func (h *Hub) ReadLog(ctx context.Context, id string, from int64, w io.Writer) (int64, error) {
	for {
		got, err := h.store.ReadAgentLog(ctx, id, from, readLogChunk)
		if err != nil {
			return from, fmt.Errorf("agentsrv: read log: %w", err)
		}
		if len(got.Data) > 0 {
			n, err := w.Write(got.Data)
			from += int64(n)
			if err != nil {
				return from, fmt.Errorf("agentsrv: read log: %w", err)
			}
			if from < got.Stored {
				continue
			}
		}
		switch {
		case from > got.Stored:
			// Past the cut already: nothing more will be shown.
			return max(from, got.Total), nil
		case from == got.Stored && got.Total > got.Stored:
			if _, err := fmt.Fprintf(w, "\n[mlbot: the agent's log was cut after %d bytes]\n", got.Stored); err != nil {
				return from, fmt.Errorf("agentsrv: read log: %w", err)
			}
			return got.Total, nil
		}
		return from, nil
	}
}

// Close revokes run id's token and deletes its session and files. Closing
// a run that is gone is not an error.
func (h *Hub) Close(ctx context.Context, id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("agentsrv: close: bad run id %q", id)
	}
	err := h.store.CloseAgent(ctx, id)
	if rerr := os.RemoveAll(h.runDir(id)); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("agentsrv: close %s: %w", id, err)
	}
	return nil
}
