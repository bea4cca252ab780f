// Package web serves the pages people open and the /api/v1 API: the
// overview, a repository's page, the run, model and deploy pages, their
// SVG charts, the login through GitHub or GitLab, and the models API. It
// reads through narrow interfaces (RunReader, DeployReader, ModelReader,
// SessionStore) that the run store and the model registry satisfy, asks
// the code hosts who may read a repository through PermissionAsker, and
// asks for actions through Actions, so that serving a page needs neither
// the task handlers of jobs nor an asynq server.
package web

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/internal/urlsig"
)

// Who may open the pages (Options.Auth, MLBOT_UI_AUTH).
const (
	// AuthNone shows every page to anyone who reaches the port.
	AuthNone = "none"
	// AuthOAuth shows a repository's pages to people who logged in with
	// the repository's code host and may read the repository there.
	AuthOAuth = "oauth"
)

// Options configures a Server.
type Options struct {
	// Runs reads the runs the pages show.
	Runs RunReader
	// Logs reads the runs' live logs (nil: the page shows the log file or
	// the tail kept with the run, and nothing streams).
	Logs LogReader
	// Deploys reads the deploys the deploy page shows.
	Deploys DeployReader
	// Models reads the model versions and deploys of the pages and of GET
	// /api/v1/models.
	Models ModelReader
	// Sweeps reads the sweeps the sweep page and the repository's page
	// show (nil: no sweep page, and no sweeps listed).
	Sweeps SweepReader
	// DataDir is MLBOT_DATA_DIR, under whose logs/ the deploy workers
	// write each deploy's log (deploy-<id>.log).
	DataDir string
	// APIToken is the bearer token /api/v1 requires (MLBOT_API_TOKEN);
	// without it the API is off and its paths answer 404.
	APIToken string

	// Auth is AuthOAuth or AuthNone ("" is AuthNone).
	Auth string
	// PublicURL is where browsers reach mlbot (MLBOT_PUBLIC_URL): the
	// code hosts send people back to PublicURL/login/<forge>/callback,
	// and the session cookie is Secure unless it is http.
	PublicURL string
	// Logins are the code hosts people may log in with.
	Logins []bot.OAuth
	// Hosts ask each code host, by forge name, what a user may do on a
	// repository.
	Hosts map[string]PermissionAsker
	// Sessions keeps the logins (required with AuthOAuth).
	Sessions SessionStore
	// Images verifies the signed URLs of the chart images that comments
	// embed (GET /charts/runs/{id}.svg); nil turns those images off.
	Images *urlsig.Signer
	// Logger receives what goes wrong while serving (nil: slog.Default).
	Logger *slog.Logger
}

// Server holds the handlers of the pages and the API.
type Server struct {
	opts   Options
	logins map[string]bot.OAuth
	log    *slog.Logger
	// secure marks the cookies Secure: the public URL is not http.
	secure bool
}

// New returns a Server reading through the readers of opts.
func New(opts Options) *Server {
	s := &Server{opts: opts, logins: map[string]bot.OAuth{}, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.opts.Auth == "" {
		s.opts.Auth = AuthNone
	}
	for _, l := range opts.Logins {
		s.logins[l.Forge()] = l
	}
	s.opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	u, err := url.Parse(s.opts.PublicURL)
	s.secure = err != nil || u.Scheme != "http"
	return s
}

// Register mounts the pages, the login and, when an API token is set,
// the API on mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", s.page(s.serveOverview))
	mux.Handle("GET /repos/{forge}/{path...}", s.page(s.serveRepo))
	mux.Handle("GET /runs/{id}", s.RunPage())
	mux.Handle("GET /runs/{id}/log/stream", s.LogStream())
	mux.Handle("GET /models/{forge}/{path...}", s.page(s.serveModel))
	mux.Handle("GET /deploys/{id}", s.DeployPage())
	mux.Handle("GET /sweeps/{id}", s.page(s.serveSweep))
	mux.Handle("GET /charts/runs/{file}", http.HandlerFunc(s.serveChartImage))
	mux.Handle("GET /assets/", s.Assets())
	mux.Handle("GET /login", s.page(s.serveLogin))
	mux.Handle("GET /login/{forge}", http.HandlerFunc(s.serveLoginStart))
	mux.Handle("GET /login/{forge}/callback", http.HandlerFunc(s.serveLoginCallback))
	mux.Handle("POST /logout", http.HandlerFunc(s.serveLogout))
	if s.opts.APIToken != "" {
		// Without a token the API is off: its paths answer 404.
		api := http.NewServeMux()
		api.Handle("GET /api/v1/models", s.Models())
		mux.Handle("/api/v1/", requireBearer(s.opts.APIToken, api))
	}
}
