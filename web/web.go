// Package web serves the pages people open and the /api/v1 API: the run
// page, the deploy page and the models API. It reads through narrow
// interfaces (RunReader, DeployReader, ModelReader) that the run store and
// the model registry satisfy, and asks for actions through Actions, so
// that serving a page needs neither the task handlers of jobs nor an asynq
// server.
package web

import (
	"net/http"
)

// Options configures a Server.
type Options struct {
	// Runs reads the runs the run page shows.
	Runs RunReader
	// Logs reads the runs' live logs (nil: the page shows the log file or
	// the tail kept with the run, and nothing streams).
	Logs LogReader
	// Deploys reads the deploys the deploy page shows.
	Deploys DeployReader
	// Models reads the model versions and deploys of GET /api/v1/models.
	Models ModelReader
	// DataDir is MLBOT_DATA_DIR, under whose logs/ the deploy workers
	// write each deploy's log (deploy-<id>.log).
	DataDir string
	// APIToken is the bearer token /api/v1 requires (MLBOT_API_TOKEN);
	// without it the API is off and its paths answer 404.
	APIToken string
}

// Server holds the handlers of the pages and the API.
type Server struct {
	opts Options
}

// New returns a Server reading through the readers of opts.
func New(opts Options) *Server {
	return &Server{opts: opts}
}

// Register mounts the pages and, when an API token is set, the API on
// mux: GET /runs/{id}, GET /deploys/{id} and /api/v1/ (GET
// /api/v1/models behind the bearer token).
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /runs/{id}", s.RunPage())
	mux.Handle("GET /runs/{id}/log/stream", s.LogStream())
	mux.Handle("GET /assets/", s.Assets())
	mux.Handle("GET /deploys/{id}", s.DeployPage())
	if s.opts.APIToken != "" {
		// Without a token the API is off: its paths answer 404.
		api := http.NewServeMux()
		api.Handle("GET /api/v1/models", s.Models())
		mux.Handle("/api/v1/", requireBearer(s.opts.APIToken, api))
	}
}
