package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"

	"github.com/mlbot/mlbot/jobs/registry"
)

// DeployPage serves GET /deploys/{id}: a deploy's record and the end of its
// log, as HTML or (?format=json) JSON. The log comes from the deploy's
// log file under DataDir when this process can read it, otherwise from
// the tail kept in the record.
func (s *Server) DeployPage() http.Handler {
	return http.HandlerFunc(s.serveDeploy)
}

func (s *Server) serveDeploy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		http.Error(w, "no such deploy", http.StatusNotFound)
		return
	}
	d, err := s.opts.Deploys.GetDeploy(r.Context(), id)
	if errors.Is(err, registry.ErrNotFound) {
		http.Error(w, "no such deploy", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
		return
	}
	log := logEnd(filepath.Join(s.opts.DataDir, "logs", "deploy-"+id+".log"), d.LogTail)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	deployPageTemplate.Execute(w, struct {
		D   *registry.Deploy
		Log string
	}{d, log})
}
