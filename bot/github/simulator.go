package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v4"

	"github.com/mlbot/mlbot/bot/forgesim"
)

// Simulator is an http.Handler that answers the GitHub REST API endpoints
// mlbot calls the way GitHub does: status codes, error JSON, pagination
// Link headers and X-RateLimit-* headers. It records every request in Rec
// and answers queued Faults before handling anything, so a faulted call
// changes nothing. Requests under /api/v3/ are served as well, so a client
// configured like a GitHub Enterprise one works too.
//
// Run it with httptest.NewServer(NewSimulator()). Set the exported fields
// before serving; the methods are safe for concurrent use.
type Simulator struct {
	// Rec records every request, API and git alike.
	Rec *forgesim.Recorder
	// Faults are answered before the simulator handles a request.
	Faults *forgesim.Faults
	// BotLogin is the author of comments created through the API.
	BotLogin string
	// WebURL is the root of the html_url links the simulator returns.
	WebURL string

	handler http.Handler
	mux     *http.ServeMux

	mu       sync.Mutex
	tokens   map[string]*grant
	static   bool // AddToken was called
	apps     map[int64]*rsa.PublicKey
	installs map[int64]*simInstall
	statuses map[string][]Status // repoKey+"@"+sha → in order set
	comments map[int64]*Comment
	threads  map[string][]int64 // repoKey+"#"+number → comment ids in order
	// commitComments are the comments on commits, by repoKey+"@"+sha.
	commitComments map[string][]CommitComment
	perms          map[string]map[string]simRole // repoKey → lower-case login → role
	deploys        *deploymentStore
	checks         checkStore
	nextID         int64
	rate           rateState
	// repos holds branches and pull requests (simulator_pulls.go).
	repos       map[string]*simRepo
	notModified int
	git         http.Handler
	oauth       oauthSim
}

// Status is a commit status as the simulator stored it.
type Status struct {
	ID          int64
	SHA         string
	State       string
	Description string
	TargetURL   string
	Context     string
	Creator     string
	CreatedAt   time.Time
}

// Comment is an issue or pull request comment as the simulator holds it
// now. Edits counts the PATCHes it received.
type Comment struct {
	ID        int64
	Repo      string
	Number    int
	User      string
	Body      string
	Edits     int
	Reactions []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// grant is what an accepted token may touch: every repository for a
// personal token, its installation's repositories for an installation
// token.
type grant struct {
	installation int64
	repos        map[string]bool // nil means all
	// user is the user of an OAuth token ("" for other tokens).
	user string
}

type simInstall struct {
	id, appID int64
	repos     map[string]bool
}

type rateState struct {
	limit, remaining int
	reset            time.Time
}

// The limits GitHub gives an authenticated user.
const (
	simRateLimit      = 5000
	simRateWindow     = time.Hour
	maxCommentChars   = 65536
	simDocs           = "https://docs.github.com/rest"
	simBotLogin       = "mlbot[bot]"
	simWebURL         = "https://github.com"
	installationToken = "ghs_"
)

// NewSimulator returns a simulator with no repositories, no tokens (so
// any token is accepted) and a full rate limit.
func NewSimulator() *Simulator {
	s := &Simulator{
		Rec:      &forgesim.Recorder{},
		Faults:   &forgesim.Faults{},
		BotLogin: simBotLogin,
		WebURL:   simWebURL,
		tokens:   map[string]*grant{},
		apps:     map[int64]*rsa.PublicKey{},
		installs: map[int64]*simInstall{},
		statuses: map[string][]Status{},
		comments: map[int64]*Comment{},
		threads:  map[string][]int64{},
		perms:    map[string]map[string]simRole{},
		deploys:  newDeploymentStore(),
		nextID:   1000,
		rate:     rateState{limit: simRateLimit, remaining: simRateLimit, reset: time.Now().Add(simRateWindow)},
		mux:      http.NewServeMux(),
	}
	s.route("POST /app/installations/{id}/access_tokens", authApp, s.createAccessToken)
	s.route("GET /repos/{owner}/{repo}/installation", authApp, s.getRepoInstallation)
	s.route("POST /repos/{owner}/{repo}/statuses/{sha}", authToken, s.createStatus)
	s.route("GET /repos/{owner}/{repo}/commits/{ref}/statuses", authToken, s.listStatuses)
	s.route("GET /repos/{owner}/{repo}/commits/{ref}/status", authToken, s.combinedStatus)
	s.route("POST /repos/{owner}/{repo}/commits/{sha}/comments", authToken, s.createCommitComment)
	// GitHub's issue routes overlap ("issues/{n}/comments" and
	// "issues/comments/{id}"), which ServeMux refuses, so they share one
	// pattern and issues dispatches them.
	s.route("/repos/{owner}/{repo}/issues/{rest...}", authToken, s.issues)
	s.route("GET /repos/{owner}/{repo}/collaborators/{user}/permission", authToken, s.permission)
	s.deploymentRoutes()
	s.checkRoutes()
	s.pullRoutes()
	s.oauthRoutes()
	s.handler = forgesim.Wrap(s.Rec, s.Faults, http.HandlerFunc(s.serve))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// AddToken makes token an accepted personal access token for every
// repository. Until a token is added (or an App registered) any token is
// accepted; a request without one is always refused.
func (s *Simulator) AddToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = &grant{}
	s.static = true
}

// AddApp registers a GitHub App by the public half of its key and installs
// it with installationID on repos ("owner/name"). Call it again to add
// more installations of the same App, or more repositories to one (a nil
// pub keeps the key registered before). Installation tokens it mints are
// accepted for those repositories only.
func (s *Simulator) AddApp(appID int64, pub *rsa.PublicKey, installationID int64, repos ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pub != nil {
		s.apps[appID] = pub
	}
	in := s.installs[installationID]
	if in == nil {
		in = &simInstall{id: installationID, appID: appID, repos: map[string]bool{}}
		s.installs[installationID] = in
	}
	for _, r := range repos {
		in.repos[repoKey(r)] = true
	}
}

// SetPermission sets user's role on repo: admin, maintain, write, triage,
// read or none. The permission endpoint reports maintain as write and
// triage as read, with the role itself in role_name, as GitHub does.
func (s *Simulator) SetPermission(repo, user, perm string) {
	s.setRole(repo, user, simRole{name: perm, permission: legacyPermission(perm)})
}

// SetCustomRole gives user the organization's custom repository role
// roleName on repo, inheriting from base (read, triage, write or
// maintain). The permission endpoint reports roleName in role_name and
// base's legacy permission (maintain as write, triage as read), as GitHub
// does for custom roles.
func (s *Simulator) SetCustomRole(repo, user, roleName, base string) {
	s.setRole(repo, user, simRole{name: roleName, permission: legacyPermission(base)})
}

// legacyPermission is the permission field GitHub reports for a base
// role, which folds maintain into write and triage into read.
func legacyPermission(role string) string {
	switch role {
	case "maintain":
		return "write"
	case "triage":
		return "read"
	}
	return role
}

// simRole is a user's role on a repository as the permission endpoint
// reports it: name is role_name, permission the legacy permission.
type simRole struct {
	name, permission string
}

func (s *Simulator) setRole(repo, user string, r simRole) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := repoKey(repo)
	if s.perms[k] == nil {
		s.perms[k] = map[string]simRole{}
	}
	s.perms[k][strings.ToLower(user)] = r
}

// SetRateLimit sets how many calls are left until reset. At zero the
// simulator answers 403 with X-RateLimit-Remaining: 0 until reset, after
// which the full limit is back.
func (s *Simulator) SetRateLimit(remaining int, reset time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate.remaining, s.rate.reset = remaining, reset
}

// AddComment seeds a comment by user on issue or pull request number, as
// if a person had written it, and returns it.
func (s *Simulator) AddComment(repo string, number int, user, body string) Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.addComment(repo, number, user, body)
}

// Statuses returns the statuses set on sha in repo, in the order set.
func (s *Simulator) Statuses(repo, sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses[repoKey(repo)+"@"+sha]...)
}

// Comments returns the comments of issue or pull request number in repo
// as they are now, oldest first.
func (s *Simulator) Comments(repo string, number int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, id := range s.threads[threadKey(repo, number)] {
		c := *s.comments[id]
		c.Reactions = append([]string(nil), c.Reactions...)
		out = append(out, c)
	}
	return out
}

// ServeGit serves the bare repositories under root (root/owner/name.git)
// over git's smart HTTP protocol at /owner/name.git, as GitHub Enterprise
// does beside its API (and, for older clone URLs, at /git/owner/name.git).
// Once tokens were added or an App registered, clones need the Basic
// credential "x-access-token" with an accepted token, as GitHub's git
// endpoint does.
func (s *Simulator) ServeGit(root string) {
	h := forgesim.GitHTTPBackend(root, s.authorizeGit)
	s.mu.Lock()
	s.git = h
	s.mu.Unlock()
}

// GitURL returns the clone URL of fullName on a simulator served at base:
// base/owner/name.git, where mlbot expects the repository of a GitHub
// whose API is at base.
func GitURL(base, fullName string) string {
	return strings.TrimSuffix(base, "/") + "/" + fullName + ".git"
}

func (s *Simulator) authorizeGit(authorization string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open() {
		return true
	}
	enc, ok := strings.CutPrefix(authorization, "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return false
	}
	user, token, ok := strings.Cut(string(raw), ":")
	g := s.tokens[token]
	// A user's OAuth token (no scope) clones no private repository.
	return ok && user == "x-access-token" && g != nil && g.user == ""
}

// open reports whether no credentials were configured, so that any token
// is accepted. Callers hold s.mu.
func (s *Simulator) open() bool {
	return !s.static && len(s.apps) == 0
}

type prefixKey struct{}

func (s *Simulator) serve(w http.ResponseWriter, r *http.Request) {
	if path, ok := forgesim.GitPath(r.URL.Path); ok {
		s.mu.Lock()
		git := s.git
		s.mu.Unlock()
		if git != nil {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = path, ""
			git.ServeHTTP(w, r2)
			return
		}
	}
	// GitHub Enterprise serves the API under /api/v3/; pagination links
	// must keep that prefix.
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v3/"); ok {
		r2 := r.Clone(context.WithValue(r.Context(), prefixKey{}, "/api/v3"))
		r2.URL.Path, r2.URL.RawPath = "/"+rest, ""
		r = r2
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.rateHeaders(w, false)
		writeError(w, http.StatusNotFound, "Not Found", simDocs)
		return
	}
	s.mux.ServeHTTP(w, r)
}

type authKind int

const (
	authToken authKind = iota // a personal or installation token
	authApp                   // an App's JWT
)

// route registers h behind authentication and the rate limit.
func (s *Simulator) route(pattern string, auth authKind, h func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")
		w.Header().Set("X-GitHub-Request-Id", randomHex(8))
		var (
			status int
			msg    string
		)
		if auth == authApp {
			var app int64
			app, status, msg = s.checkJWT(r)
			r = r.WithContext(context.WithValue(r.Context(), appKey{}, app))
		} else {
			status, msg = s.checkToken(r)
		}
		if status != 0 {
			s.rateHeaders(w, false)
			writeError(w, status, msg, simDocs)
			return
		}
		if !s.rateHeaders(w, true) {
			writeError(w, http.StatusForbidden, "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.",
				"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting")
			return
		}
		h(w, r)
	})
}

// rateHeaders writes X-RateLimit-* and, when consume is set, uses one call
// of the budget; it reports false when the budget is exhausted.
func (s *Simulator) rateHeaders(w http.ResponseWriter, consume bool) bool {
	s.mu.Lock()
	now := time.Now()
	if !now.Before(s.rate.reset) {
		s.rate.remaining, s.rate.reset = s.rate.limit, now.Add(simRateWindow)
	}
	ok := s.rate.remaining > 0
	if consume && ok {
		s.rate.remaining--
	}
	rs := s.rate
	s.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(rs.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(rs.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(rs.reset.Unix(), 10))
	h.Set("X-RateLimit-Used", strconv.Itoa(max(rs.limit-rs.remaining, 0)))
	h.Set("X-RateLimit-Resource", "core")
	return !consume || ok
}

// checkToken authenticates a token request and checks that the token may
// see the repository in the path; GitHub hides what a token may not see
// behind a 404.
func (s *Simulator) checkToken(r *http.Request) (int, string) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		token, ok = strings.CutPrefix(auth, "token ")
	}
	if !ok || token == "" {
		return http.StatusUnauthorized, "Requires authentication"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open() {
		return 0, ""
	}
	g := s.tokens[token]
	if g == nil {
		return http.StatusUnauthorized, "Bad credentials"
	}
	if r.PathValue("owner") != "" && g.repos != nil && !g.repos[repoKey(r.PathValue("owner")+"/"+r.PathValue("repo"))] {
		return http.StatusNotFound, "Not Found"
	}
	return 0, ""
}

type appKey struct{}

// checkJWT verifies an App's JWT against the public key registered for
// the App named by its issuer claim and returns the App's id.
func (s *Simulator) checkJWT(r *http.Request) (int64, int, string) {
	const bad = "A JSON web token could not be decoded"
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return 0, http.StatusUnauthorized, bad
	}
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodRSA); !ok {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		id, err := strconv.ParseInt(t.Claims.(*jwt.RegisteredClaims).Issuer, 10, 64)
		if err != nil {
			return nil, errors.New("issuer is not an App ID")
		}
		s.mu.Lock()
		pub := s.apps[id]
		s.mu.Unlock()
		if pub == nil {
			return nil, errors.New("unknown App")
		}
		return pub, nil
	})
	if err != nil {
		return 0, http.StatusUnauthorized, bad
	}
	id, _ := strconv.ParseInt(claims.Issuer, 10, 64)
	return id, 0, ""
}

func appOf(r *http.Request) int64 {
	id, _ := r.Context().Value(appKey{}).(int64)
	return id
}

func (s *Simulator) createAccessToken(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	in := s.installs[id]
	if in == nil || in.appID != appOf(r) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found", simDocs)
		return
	}
	token := installationToken + randomHex(18)
	repos := map[string]bool{}
	for k := range in.repos {
		repos[k] = true
	}
	s.tokens[token] = &grant{installation: id, repos: repos}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":                token,
		"expires_at":           time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"permissions":          map[string]string{"checks": "write", "contents": "read", "issues": "write", "metadata": "read", "pull_requests": "write", "statuses": "write"},
		"repository_selection": "selected",
	})
}

func (s *Simulator) getRepoInstallation(w http.ResponseWriter, r *http.Request) {
	key := repoKey(r.PathValue("owner") + "/" + r.PathValue("repo"))
	app := appOf(r)
	s.mu.Lock()
	var found *simInstall
	for _, in := range s.installs {
		if in.appID == app && in.repos[key] {
			found = in
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                   found.id,
		"app_id":               found.appID,
		"account":              map[string]any{"login": r.PathValue("owner")},
		"target_type":          "Organization",
		"repository_selection": "selected",
		"access_tokens_url":    baseURL(r) + "/app/installations/" + strconv.FormatInt(found.id, 10) + "/access_tokens",
	})
}

var validStates = map[string]bool{"error": true, "failure": true, "pending": true, "success": true}

func (s *Simulator) createStatus(w http.ResponseWriter, r *http.Request) {
	var in struct {
		State       string  `json:"state"`
		TargetURL   *string `json:"target_url"`
		Description *string `json:"description"`
		Context     *string `json:"context"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", simDocs)
		return
	}
	const doc = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
	if !validStates[in.State] {
		writeValidation(w, "Status", "state", "custom", "state is not included in the list", doc)
		return
	}
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > MaxStatusDescription {
		writeValidation(w, "Status", "description", "custom", "description is too long (maximum is 140 characters)", doc)
		return
	}
	st := Status{SHA: r.PathValue("sha"), State: in.State, Context: "default", CreatedAt: time.Now().UTC()}
	if in.Description != nil {
		st.Description = *in.Description
	}
	if in.TargetURL != nil {
		st.TargetURL = *in.TargetURL
	}
	if in.Context != nil && *in.Context != "" {
		st.Context = *in.Context
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	s.mu.Lock()
	st.Creator = s.BotLogin
	s.nextID++
	st.ID = s.nextID
	k := repoKey(repo) + "@" + st.SHA
	s.statuses[k] = append(s.statuses[k], st)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.statusJSON(r, repo, st))
}

func (s *Simulator) statusJSON(r *http.Request, repo string, st Status) map[string]any {
	return map[string]any{
		"url":         baseURL(r) + "/repos/" + repo + "/statuses/" + st.SHA,
		"id":          st.ID,
		"node_id":     "SC_" + strconv.FormatInt(st.ID, 10),
		"state":       st.State,
		"description": nullable(st.Description),
		"target_url":  nullable(st.TargetURL),
		"context":     st.Context,
		"created_at":  st.CreatedAt.Format(time.RFC3339),
		"updated_at":  st.CreatedAt.Format(time.RFC3339),
		"creator":     map[string]any{"login": st.Creator, "type": "Bot"},
	}
}

func (s *Simulator) listStatuses(w http.ResponseWriter, r *http.Request) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	all := s.Statuses(repo, r.PathValue("ref"))
	out := []map[string]any{}
	lo, hi, ok := paginate(w, r, len(all))
	if !ok {
		return
	}
	for i := lo; i < hi; i++ {
		out = append(out, s.statusJSON(r, repo, all[len(all)-1-i])) // newest first
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Simulator) combinedStatus(w http.ResponseWriter, r *http.Request) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	sha := r.PathValue("ref")
	all := s.Statuses(repo, sha)
	latest := map[string]Status{}
	var order []string
	for _, st := range all {
		if _, seen := latest[st.Context]; !seen {
			order = append(order, st.Context)
		}
		latest[st.Context] = st
	}
	sort.Strings(order)
	state := "success"
	if len(order) == 0 {
		state = "pending"
	}
	statuses := []map[string]any{}
	for _, ctx := range order {
		st := latest[ctx]
		switch {
		case st.State == "error" || st.State == "failure":
			state = "failure"
		case st.State == "pending" && state != "failure":
			state = "pending"
		}
		statuses = append(statuses, s.statusJSON(r, repo, st))
	}
	s.writeConditional(w, r, map[string]any{
		"state":       state,
		"sha":         sha,
		"total_count": len(statuses),
		"statuses":    statuses,
		"repository":  map[string]any{"full_name": repo},
		"commit_url":  baseURL(r) + "/repos/" + repo + "/commits/" + sha,
		"url":         baseURL(r) + "/repos/" + repo + "/commits/" + sha + "/status",
	})
}

// issues dispatches GitHub's overlapping issue-comment routes.
func (s *Simulator) issues(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(r.PathValue("rest"), "/")
	switch {
	case len(parts) == 2 && parts[1] == "comments" && parts[0] != "comments":
		n, err := strconv.Atoi(parts[0])
		if err != nil || n <= 0 {
			break
		}
		switch r.Method {
		case http.MethodGet:
			s.listComments(w, r, n)
			return
		case http.MethodPost:
			s.createComment(w, r, n)
			return
		}
	case len(parts) >= 2 && parts[0] == "comments":
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			break
		}
		switch {
		case len(parts) == 2 && r.Method == http.MethodGet:
			s.getComment(w, r, id)
			return
		case len(parts) == 2 && r.Method == http.MethodPatch:
			s.editComment(w, r, id)
			return
		case len(parts) == 3 && parts[2] == "reactions" && r.Method == http.MethodPost:
			s.createReaction(w, r, id)
			return
		}
	}
	writeError(w, http.StatusNotFound, "Not Found", simDocs)
}

func (s *Simulator) listComments(w http.ResponseWriter, r *http.Request, number int) {
	all := s.Comments(r.PathValue("owner")+"/"+r.PathValue("repo"), number)
	lo, hi, ok := paginate(w, r, len(all))
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, c := range all[lo:hi] {
		out = append(out, s.commentJSON(r, c))
	}
	writeJSON(w, http.StatusOK, out)
}

const commentDoc = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"

// decodeBody reads a comment body and answers GitHub's 422 for a missing
// or too long one.
func decodeBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in struct {
		Body *string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", simDocs)
		return "", false
	}
	if in.Body == nil || *in.Body == "" {
		writeValidation(w, "IssueComment", "body", "missing_field", "", commentDoc)
		return "", false
	}
	if utf8.RuneCountInString(*in.Body) >= maxCommentChars {
		writeValidation(w, "IssueComment", "data", "unprocessable", "Body is too long (maximum is 65536 characters)", commentDoc)
		return "", false
	}
	return *in.Body, true
}

func (s *Simulator) createComment(w http.ResponseWriter, r *http.Request, number int) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c := *s.addComment(r.PathValue("owner")+"/"+r.PathValue("repo"), number, s.BotLogin, body)
	s.mu.Unlock()
	w.Header().Set("Location", baseURL(r)+"/repos/"+c.Repo+"/issues/comments/"+strconv.FormatInt(c.ID, 10))
	writeJSON(w, http.StatusCreated, s.commentJSON(r, c))
}

// addComment stores a new comment. Callers hold s.mu.
func (s *Simulator) addComment(repo string, number int, user, body string) *Comment {
	s.nextID++
	now := time.Now().UTC()
	c := &Comment{ID: s.nextID, Repo: repo, Number: number, User: user, Body: body, CreatedAt: now, UpdatedAt: now}
	s.comments[c.ID] = c
	k := threadKey(repo, number)
	s.threads[k] = append(s.threads[k], c.ID)
	return c
}

// comment returns a copy of comment id when it belongs to the request's
// repository, answering 404 otherwise.
func (s *Simulator) comment(w http.ResponseWriter, r *http.Request, id int64, edit func(*Comment)) (Comment, bool) {
	s.mu.Lock()
	c := s.comments[id]
	if c == nil || repoKey(c.Repo) != repoKey(r.PathValue("owner")+"/"+r.PathValue("repo")) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found", simDocs)
		return Comment{}, false
	}
	if edit != nil {
		edit(c)
	}
	out := *c
	s.mu.Unlock()
	return out, true
}

func (s *Simulator) getComment(w http.ResponseWriter, r *http.Request, id int64) {
	if c, ok := s.comment(w, r, id, nil); ok {
		writeJSON(w, http.StatusOK, s.commentJSON(r, c))
	}
}

func (s *Simulator) editComment(w http.ResponseWriter, r *http.Request, id int64) {
	// A missing comment is a 404 even when the body is also bad.
	if _, ok := s.comment(w, r, id, nil); !ok {
		return
	}
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	c, ok := s.comment(w, r, id, func(c *Comment) {
		c.Body, c.UpdatedAt = body, time.Now().UTC()
		c.Edits++
	})
	if ok {
		writeJSON(w, http.StatusOK, s.commentJSON(r, c))
	}
}

var validReactions = map[string]bool{"+1": true, "-1": true, "laugh": true, "confused": true, "heart": true, "hooray": true, "rocket": true, "eyes": true}

func (s *Simulator) createReaction(w http.ResponseWriter, r *http.Request, id int64) {
	if _, ok := s.comment(w, r, id, nil); !ok {
		return
	}
	var in struct {
		Content string `json:"content"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", simDocs)
		return
	}
	if !validReactions[in.Content] {
		writeValidation(w, "Reaction", "content", "invalid", "", "https://docs.github.com/rest/reactions/reactions#create-reaction-for-an-issue-comment")
		return
	}
	// GitHub answers 200 instead of 201 when the user already reacted so.
	code := http.StatusCreated
	_, _ = s.comment(w, r, id, func(c *Comment) {
		for _, x := range c.Reactions {
			if x == in.Content {
				code = http.StatusOK
				return
			}
		}
		c.Reactions = append(c.Reactions, in.Content)
	})
	s.mu.Lock()
	s.nextID++
	rid, login := s.nextID, s.BotLogin
	s.mu.Unlock()
	writeJSON(w, code, map[string]any{
		"id":         rid,
		"node_id":    "REA_" + strconv.FormatInt(rid, 10),
		"user":       map[string]any{"login": login, "type": "Bot"},
		"content":    in.Content,
		"created_at": time.Now().UTC().Format(time.RFC3339),
	})
}

func (s *Simulator) commentJSON(r *http.Request, c Comment) map[string]any {
	id := strconv.FormatInt(c.ID, 10)
	api := baseURL(r) + "/repos/" + c.Repo
	return map[string]any{
		"id":                 c.ID,
		"node_id":            "IC_" + id,
		"url":                api + "/issues/comments/" + id,
		"html_url":           fmt.Sprintf("%s/%s/pull/%d#issuecomment-%s", strings.TrimSuffix(s.WebURL, "/"), c.Repo, c.Number, id),
		"issue_url":          fmt.Sprintf("%s/issues/%d", api, c.Number),
		"body":               c.Body,
		"user":               map[string]any{"login": c.User, "type": userType(c.User)},
		"created_at":         c.CreatedAt.Format(time.RFC3339),
		"updated_at":         c.UpdatedAt.Format(time.RFC3339),
		"author_association": "NONE",
	}
}

func userType(login string) string {
	if strings.HasSuffix(login, "[bot]") {
		return "Bot"
	}
	return "User"
}

func (s *Simulator) permission(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	s.mu.Lock()
	role, ok := s.perms[repoKey(r.PathValue("owner")+"/"+r.PathValue("repo"))][strings.ToLower(user)]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"permission": role.permission,
		"role_name":  role.name,
		"user":       map[string]any{"login": user, "type": userType(user)},
	})
}

// paginate applies GitHub's page and per_page (default 30, at most 100)
// to n items, setting the Link header. It answers 422 for a bad page.
func paginate(w http.ResponseWriter, r *http.Request, n int) (lo, hi int, ok bool) {
	q := r.URL.Query()
	per, page := 30, 1
	if v := q.Get("per_page"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 {
			writeError(w, http.StatusUnprocessableEntity, "per_page must be a positive integer", simDocs)
			return 0, 0, false
		}
		per = min(p, 100)
	}
	if v := q.Get("page"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 {
			writeError(w, http.StatusUnprocessableEntity, "page must be a positive integer", simDocs)
			return 0, 0, false
		}
		page = p
	}
	last := max((n+per-1)/per, 1)
	link := func(p int, rel string) string {
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, baseURL(r), r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(min(page-1, last), "prev"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	lo = min((page-1)*per, n)
	return lo, min(lo+per, n), true
}

// baseURL is the API root the request came in on, as links must name it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix, _ := r.Context().Value(prefixKey{}).(string)
	return scheme + "://" + r.Host + prefix
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg, doc string) {
	writeJSON(w, code, map[string]any{"message": msg, "documentation_url": doc, "status": strconv.Itoa(code)})
}

// writeValidation answers 422 the way GitHub reports failed validations.
func writeValidation(w http.ResponseWriter, resource, field, code, msg, doc string) {
	e := map[string]string{"resource": resource, "field": field, "code": code}
	if msg != "" {
		e["message"] = msg
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message":           "Validation Failed",
		"errors":            []map[string]string{e},
		"documentation_url": doc,
		"status":            "422",
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// repoKey folds case: GitHub repository names are case-insensitive.
func repoKey(fullName string) string { return strings.ToLower(fullName) }

func threadKey(repo string, number int) string {
	return repoKey(repo) + "#" + strconv.Itoa(number)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
