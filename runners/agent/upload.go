package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/mlbot/mlbot/internal/workspace"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// upload sends the metric files and artifacts the job names from workdir.
// A file that is missing, or that mlbot refuses for its size, is left
// out with a line in the log: the pipeline, reading what was collected,
// then fails the run on it as it would after a local run. Any other
// failure (mlbot unreachable past the retries, a refusal of a path the
// job names) is the agent's and is returned.
func (a *agent) upload(ctx context.Context, job agentapi.Job) error {
	ws, err := workspace.Open(a.opts.Workdir)
	if err != nil {
		return fmt.Errorf("workdir: %w", err)
	}
	defer ws.Close()
	for _, name := range job.Metrics {
		rel := path.Clean(strings.TrimSpace(name))
		data, err := ws.ReadFile(ctx, rel, agentapi.MaxMetricFileBytes)
		if err != nil {
			a.note("metric file %s not uploaded: %v", rel, err)
			continue
		}
		sum := sha256.Sum256(data)
		err = a.put(ctx, agentapi.KindMetrics, rel, "sha256:"+hex.EncodeToString(sum[:]), func() (io.Reader, int64, func(), error) {
			return bytes.NewReader(data), int64(len(data)), func() {}, nil
		})
		if err != nil {
			return err
		}
	}
	if job.Examples != "" {
		if err := a.putExamples(ctx, ws, path.Clean(strings.TrimSpace(job.Examples))); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, name := range job.Artifacts {
		files, err := workspace.ExpandArtifacts(ws.FS(), []string{name})
		if err != nil {
			a.note("artifact %q not uploaded: %v", name, err)
			continue
		}
		for _, rel := range files {
			if seen[rel] {
				continue
			}
			seen[rel] = true
			if err := a.putArtifact(ctx, ws, rel); err != nil {
				return err
			}
		}
	}
	return nil
}

// putExamples sends the per-example results file rel of ws, streamed
// like an artifact. One over agentapi.MaxExamplesFileBytes is left out
// with a line in the log saying so; the pipeline then fails the run for
// want of it.
func (a *agent) putExamples(ctx context.Context, ws *workspace.Dir, rel string) error {
	f, err := ws.Open(rel)
	if err != nil {
		a.note("examples file %s not uploaded: %v", rel, err)
		return nil
	}
	size := f.Size()
	f.Close()
	if size > agentapi.MaxExamplesFileBytes {
		a.note("examples file %s not uploaded: %d bytes, over the limit of %d MiB", rel, size, agentapi.MaxExamplesFileBytes>>20)
		return nil
	}
	return a.putFile(ctx, ws, agentapi.KindExamples, rel)
}

// putArtifact sends artifact rel of ws: a first read computes its digest,
// a second streams it (the digest travels ahead of the body).
func (a *agent) putArtifact(ctx context.Context, ws *workspace.Dir, rel string) error {
	return a.putFile(ctx, ws, agentapi.KindArtifacts, rel)
}

// putFile streams file rel of ws as kind: a first read computes its
// digest, a second sends it.
func (a *agent) putFile(ctx context.Context, ws *workspace.Dir, kind, rel string) error {
	f, err := ws.Open(rel)
	if err != nil {
		a.note("%s %s not uploaded: %v", strings.TrimSuffix(kind, "s"), rel, err)
		return nil
	}
	size := f.Size()
	h := sha256.New()
	_, err = io.Copy(h, f.Reader(ctx, size))
	f.Close()
	if err != nil {
		a.note("%s %s not uploaded: %v", strings.TrimSuffix(kind, "s"), rel, err)
		return nil
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	return a.put(ctx, kind, rel, digest, func() (io.Reader, int64, func(), error) {
		f, err := ws.Open(rel)
		if err != nil {
			return nil, 0, nil, err
		}
		return f.Reader(ctx, size), size, func() { f.Close() }, nil
	})
}

// put uploads one file, opening its body afresh for every attempt. A 413
// is noted in the log and is not an error.
func (a *agent) put(ctx context.Context, kind, rel, digest string, open func() (io.Reader, int64, func(), error)) error {
	err := withRetry(ctx, a.opts.RetryFor, func(ctx context.Context) error {
		body, size, done, err := open()
		if err != nil {
			return permanentError{err}
		}
		defer done()
		return a.client.PutFile(ctx, kind, rel, digest, size, body)
	})
	var se *agentapi.StatusError
	if errors.As(err, &se) && se.Code == http.StatusRequestEntityTooLarge {
		a.note("%s %s not uploaded: %s", strings.TrimSuffix(kind, "s"), rel, se.Message)
		return nil
	}
	if err != nil {
		return fmt.Errorf("upload %s %s: %w", kind, rel, err)
	}
	return nil
}
