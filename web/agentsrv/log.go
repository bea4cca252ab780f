package agentsrv

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// appendLog serves PATCH agentapi.PathLog: the body is the log from the
// Content-Range's first byte on, appended only if that is where the log
// ends (202), else refused with the log's length (416), so that an agent
// that lost an answer resends from the right byte and nothing is written
// twice.
func (h *Hub) appendLog(w http.ResponseWriter, r *http.Request, rn run) {
	offset, n, err := agentapi.ParseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if n > agentapi.MaxLogChunkBytes || r.ContentLength > agentapi.MaxLogChunkBytes {
		http.Error(w, fmt.Sprintf("a log chunk holds at most %d bytes", agentapi.MaxLogChunkBytes), http.StatusRequestEntityTooLarge)
		return
	}
	chunk, err := io.ReadAll(http.MaxBytesReader(w, r.Body, agentapi.MaxLogChunkBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("a log chunk holds at most %d bytes", agentapi.MaxLogChunkBytes), http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		http.Error(w, "reading the chunk: "+err.Error(), http.StatusBadRequest)
		return
	}
	if int64(len(chunk)) != n {
		http.Error(w, fmt.Sprintf("Content-Range says %d bytes, the body has %d", n, len(chunk)), http.StatusBadRequest)
		return
	}
	have, err := h.store.AppendAgentLog(r.Context(), rn.id, offset, chunk)
	var oe *store.AgentOffsetError
	if errors.As(err, &oe) {
		w.Header().Set(agentapi.HeaderLogOffset, strconv.FormatInt(oe.Have, 10))
		http.Error(w, fmt.Sprintf("the log is %d bytes long", oe.Have), http.StatusRequestedRangeNotSatisfiable)
		return
	}
	if err != nil {
		h.storeError(w, rn, "appending to the log", err)
		return
	}
	w.Header().Set(agentapi.HeaderLogOffset, strconv.FormatInt(have, 10))
	w.WriteHeader(http.StatusAccepted)
}
