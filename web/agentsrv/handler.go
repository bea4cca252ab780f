package agentsrv

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// maxJSONBytes bounds the JSON body of PathSteps and PathDone.
const maxJSONBytes = 64 << 10

// maxDoneError bounds the error message kept of a Done.
const maxDoneError = 4 << 10

// transferTimeout bounds one authenticated request of the agent API (a
// source download, an artifact upload).
const transferTimeout = time.Hour

// maxTokenLen bounds the bearer token looked at: a longer one is wrong.
const maxTokenLen = 256

// Handler serves the agent API (the paths of runners/agentapi) to agents
// holding a run's token. Mount it at "/api/v1/agent/" of mlbot's mux, or
// serve it alone on a runner's socket.
func (h *Hub) Handler() http.Handler {
	return http.HandlerFunc(h.serveHTTP)
}

// run is what a request learned of its run from its token.
type run struct {
	id  string
	job agentapi.Job
}

func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rn, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	// The server's read and write timeouts are for pages and webhooks; a
	// run's source archive or a 2 GiB artifact takes longer. Only an
	// authenticated agent gets the longer bound.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(transferTimeout))
	rc.SetWriteDeadline(time.Now().Add(transferTimeout))
	p := r.URL.Path
	switch {
	case p == agentapi.PathJob:
		if allow(w, r, http.MethodGet) {
			h.serveJob(w, r, rn)
		}
	case p == agentapi.PathSource:
		if allow(w, r, http.MethodGet) {
			h.serveSource(w, r, rn)
		}
	case p == agentapi.PathLog:
		if allow(w, r, http.MethodPatch) {
			h.appendLog(w, r, rn)
		}
	case strings.HasPrefix(p, agentapi.PathFiles):
		if allow(w, r, http.MethodPut) {
			h.putFile(w, r, rn)
		}
	case p == agentapi.PathSteps:
		if allow(w, r, http.MethodPost) {
			h.postStep(w, r, rn)
		}
	case p == agentapi.PathDone:
		if allow(w, r, http.MethodPost) {
			h.postDone(w, r, rn)
		}
	default:
		http.NotFound(w, r)
	}
}

// allow answers 405 unless r uses method.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// authenticate finds the run of r's bearer token. A missing, unknown,
// expired or revoked token is answered 401 with no detail: a caller
// learns nothing about which runs exist. The store is asked by the
// token's hash and the stored hash compared in constant time.
func (h *Hub) authenticate(w http.ResponseWriter, r *http.Request) (run, bool) {
	deny := func() (run, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mlbot agent"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return run{}, false
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" || len(token) > maxTokenLen {
		return deny()
	}
	hash := tokenHash(token)
	sess, err := h.store.AgentByToken(r.Context(), hash)
	if errors.Is(err, store.ErrNoAgent) {
		return deny()
	}
	if err != nil {
		h.log.Error("agent API: looking up a token", "err", err)
		http.Error(w, "mlbot's store is unavailable", http.StatusServiceUnavailable)
		return run{}, false
	}
	if subtle.ConstantTimeCompare([]byte(sess.TokenHash), []byte(hash)) != 1 || !time.Now().Before(sess.Expires) {
		return deny()
	}
	var job agentapi.Job
	if err := json.Unmarshal(sess.Job, &job); err != nil {
		h.log.Error("agent API: the stored job is unreadable", "run", sess.ID, "err", err)
		http.Error(w, "the run's job is unreadable", http.StatusInternalServerError)
		return run{}, false
	}
	return run{id: sess.ID, job: job}, true
}

// storeError answers a store failure of run rn: 401 when the session
// ended meanwhile, 503 otherwise.
func (h *Hub) storeError(w http.ResponseWriter, rn run, what string, err error) {
	if errors.Is(err, store.ErrNoAgent) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	h.log.Error("agent API: "+what, "run", rn.id, "err", err)
	http.Error(w, "mlbot's store is unavailable", http.StatusServiceUnavailable)
}

func (h *Hub) serveJob(w http.ResponseWriter, _ *http.Request, rn run) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(rn.job); err != nil {
		h.log.Warn("agent API: sending the job", "run", rn.id, "err", err)
	}
}

func (h *Hub) serveSource(w http.ResponseWriter, r *http.Request, rn run) {
	f, err := os.Open(filepath.Join(h.runDir(rn.id), sourceName))
	if err != nil {
		h.log.Error("agent API: the source archive is missing", "run", rn.id, "err", err)
		http.Error(w, "the source archive is missing", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	http.ServeContent(w, r, sourceName, time.Time{}, f)
}

func (h *Hub) postStep(w http.ResponseWriter, r *http.Request, rn run) {
	var rep agentapi.StepReport
	if !readJSON(w, r, &rep) {
		return
	}
	if rep.Index < 0 || rep.Index >= len(rn.job.Steps) {
		http.Error(w, fmt.Sprintf("step index %d: the job has %d steps", rep.Index, len(rn.job.Steps)), http.StatusBadRequest)
		return
	}
	b, err := json.Marshal(rep)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch _, err := h.store.AddAgentStep(r.Context(), rn.id, rep.Index, b); {
	case errors.Is(err, store.ErrAgentStepGap):
		http.Error(w, "a step before this one was not reported", http.StatusConflict)
	case errors.Is(err, store.ErrAgentLimit):
		http.Error(w, "too many step reports", http.StatusRequestEntityTooLarge)
	case err != nil:
		h.storeError(w, rn, "storing a step report", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (h *Hub) postDone(w http.ResponseWriter, r *http.Request, rn run) {
	var d agentapi.Done
	if !readJSON(w, r, &d) {
		return
	}
	if len(d.Error) > maxDoneError {
		d.Error = d.Error[:maxDoneError] + "…"
	}
	if err := h.store.FinishAgent(r.Context(), rn.id, d.Error); err != nil {
		h.storeError(w, rn, "storing the agent's end", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readJSON decodes r's body, at most maxJSONBytes, into v; it answers 400
// or 413 and returns false when it cannot.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("body over %d bytes", maxJSONBytes), http.StatusRequestEntityTooLarge)
		return false
	}
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		http.Error(w, "malformed JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
