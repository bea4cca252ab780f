package gitlab

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mlbot/mlbot/bot/forgesim"
)

// Limits the simulator enforces as GitLab does.
const (
	// MaxNoteLength is GitLab's limit on a note body, in characters.
	MaxNoteLength = 1_000_000
	// DefaultRateLimit is the RateLimit-Limit the simulator reports:
	// GitLab.com's authenticated API limit per minute.
	DefaultRateLimit = 2000
)

// Access levels of project members, as GitLab numbers them.
const (
	AccessGuest      = 10
	AccessReporter   = 20
	AccessDeveloper  = 30
	AccessMaintainer = 40
	AccessOwner      = 50
)

// User is a GitLab user as the simulator presents it.
type User struct {
	ID        int64  `json:"id"`
	Username  string `json:"username"`
	Name      string `json:"name"`
	State     string `json:"state"`
	AvatarURL string `json:"avatar_url"`
	WebURL    string `json:"web_url"`
}

// Status is an external commit status as GitLab returns it.
type Status struct {
	ID           int64      `json:"id"`
	SHA          string     `json:"sha"`
	Ref          string     `json:"ref"`
	Status       string     `json:"status"`
	Name         string     `json:"name"`
	TargetURL    string     `json:"target_url"`
	Description  string     `json:"description"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at"`
	AllowFailure bool       `json:"allow_failure"`
	Coverage     *float64   `json:"coverage"`
	Author       User       `json:"author"`
}

// Note is a merge request note as GitLab returns it. Edits and Awards are
// the simulator's own bookkeeping and are not part of the JSON.
type Note struct {
	ID           int64     `json:"id"`
	Type         *string   `json:"type"`
	Body         string    `json:"body"`
	Author       User      `json:"author"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	System       bool      `json:"system"`
	NoteableID   int64     `json:"noteable_id"`
	NoteableType string    `json:"noteable_type"`
	NoteableIID  int       `json:"noteable_iid"`
	ProjectID    int64     `json:"project_id"`
	Resolvable   bool      `json:"resolvable"`
	Confidential bool      `json:"confidential"`
	Internal     bool      `json:"internal"`

	// Edits counts the PUTs that changed this note.
	Edits int `json:"-"`
	// Awards lists the emoji names awarded to this note, in order.
	Awards []string `json:"-"`
}

// Simulator is an http.Handler emulating the parts of the GitLab REST API
// v4 that mlbot calls, with GitLab's status codes, error bodies,
// pagination and rate-limit headers. Every request is recorded in Rec, and
// faults queued in Faults answer before the simulator sees the request.
// Configure it (Add*, Set*, BotUsername, ServeGit) before serving.
type Simulator struct {
	// Rec records every request, API and git alike.
	Rec *forgesim.Recorder
	// Faults are answered instead of matching requests.
	Faults *forgesim.Faults
	// BotUsername is the author of notes and statuses created through the
	// API (the token's user); "mlbot" by default.
	BotUsername string

	handler http.Handler

	mu       sync.Mutex
	now      func() time.Time
	nextID   int64
	tokens   map[string]bool
	projects map[int64]*simProject
	byPath   map[string]*simProject // lower-case path: GitLab routes paths case-insensitively
	users    map[string]*User       // by lower-case username
	git      http.Handler

	rateLimit     int
	rateRemaining int
	rateReset     time.Time
	rateEnforced  bool

	oauth oauthSim
}

type simProject struct {
	id       int64
	path     string
	statuses map[string][]*Status // by sha, in creation order
	notes    map[int][]*Note      // by merge request iid, in creation order
	// commitComments are the comments on commits, by sha.
	commitComments map[string][]CommitComment
	members        map[int64]int // user id → access level

	deployments  []*Deployment // in creation order
	environments []*simEnvironment

	// branches and mrs are what SetBranch and OpenMergeRequest made
	// (simulator_mergerequests.go).
	branches map[string]string
	mrs      []*MergeRequestSpec
}

// NewSimulator returns an empty simulator: no projects, any token accepted,
// no rate limiting until SetRateLimit.
func NewSimulator() *Simulator {
	s := &Simulator{
		Rec:         &forgesim.Recorder{},
		Faults:      &forgesim.Faults{},
		BotUsername: "mlbot",
		now:         time.Now,
		nextID:      1000,
		tokens:      map[string]bool{},
		projects:    map[int64]*simProject{},
		byPath:      map[string]*simProject{},
		users:       map[string]*User{},
		rateLimit:   DefaultRateLimit,
	}
	s.rateRemaining = s.rateLimit
	s.rateReset = s.now().Add(time.Minute)
	s.handler = forgesim.Wrap(s.Rec, s.Faults, http.HandlerFunc(s.serve))
	return s
}

// ServeHTTP answers r as GitLab would.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// AddToken makes token valid, as PRIVATE-TOKEN, as "Authorization:
// Bearer", and as the password of git user oauth2. Once a token is added,
// requests without a valid one get 401.
func (s *Simulator) AddToken(token string) {
	s.mu.Lock()
	s.tokens[token] = true
	s.mu.Unlock()
}

// AddProject creates project id at path ("group/subgroup/name"), which
// the API then finds by id or by URL-encoded path. Adding an existing id
// renames it.
func (s *Simulator) AddProject(id int64, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addProjectLocked(id, path)
}

func (s *Simulator) addProjectLocked(id int64, path string) *simProject {
	if p, ok := s.projects[id]; ok {
		delete(s.byPath, strings.ToLower(p.path))
		p.path = path
		s.byPath[strings.ToLower(path)] = p
		return p
	}
	p := &simProject{
		id:       id,
		path:     path,
		statuses: map[string][]*Status{},
		notes:    map[int][]*Note{},
		members:  map[int64]int{},
	}
	s.projects[id] = p
	s.byPath[strings.ToLower(path)] = p
	return p
}

// SetMember gives username accessLevel (AccessDeveloper, AccessMaintainer…)
// on the project at path, creating the user, and the project with a fresh
// id when it was not added. Level 0 removes the membership.
func (s *Simulator) SetMember(path, username string, accessLevel int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(path)]
	if p == nil {
		var id int64 = 1
		for pid := range s.projects {
			id = max(id, pid+1)
		}
		p = s.addProjectLocked(id, path)
	}
	u := s.userLocked(username)
	if accessLevel == 0 {
		delete(p.members, u.ID)
		return
	}
	p.members[u.ID] = accessLevel
}

// AddNote seeds a note on merge request iid of the project at path, as
// if author had written it (system marks notes GitLab writes itself, such
// as "added 1 commit"). It returns the note; the project must exist.
func (s *Simulator) AddNote(path string, iid int, author, body string, system bool) (Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(path)]
	if p == nil {
		return Note{}, fmt.Errorf("gitlab simulator: no project %q", path)
	}
	n := s.addNoteLocked(p, iid, s.userLocked(author), body)
	n.System = system
	return *n, nil
}

// SetRateLimit makes the simulator report remaining calls until reset and
// answer 429 with Retry-After once they are used up, until reset passes;
// then a fresh window of DefaultRateLimit calls a minute begins. Without
// it the headers count down but nothing is refused.
func (s *Simulator) SetRateLimit(remaining int, reset time.Time) {
	s.mu.Lock()
	s.rateEnforced = true
	s.rateRemaining = remaining
	s.rateReset = reset
	s.mu.Unlock()
}

// Statuses returns the commit statuses of sha in the project at path, in
// creation order, each in its current state.
func (s *Simulator) Statuses(projectPath, sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(projectPath)]
	if p == nil {
		return nil
	}
	out := make([]Status, 0, len(p.statuses[sha]))
	for _, st := range p.statuses[sha] {
		out = append(out, *st)
	}
	return out
}

// Notes returns the notes of merge request iid in the project at path,
// oldest first, each with its current body and edit count.
func (s *Simulator) Notes(projectPath string, iid int) []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(projectPath)]
	if p == nil {
		return nil
	}
	out := make([]Note, 0, len(p.notes[iid]))
	for _, n := range p.notes[iid] {
		c := *n
		c.Awards = slices.Clone(n.Awards)
		out = append(out, c)
	}
	return out
}

// ServeGit serves the bare repositories under root (root/<path>.git) over
// git's smart HTTP protocol at /<path>.git, as GitLab does (and, for older
// clone URLs, at /git/<path>.git). Once tokens are added, git must
// authenticate as Basic oauth2:<token>, the way mlbot clones.
func (s *Simulator) ServeGit(root string) {
	h := forgesim.GitHTTPBackend(root, s.authorizeGit)
	s.mu.Lock()
	s.git = h
	s.mu.Unlock()
}

// GitURL returns the clone URL of path on a simulator served at base:
// base/<path>.git, as GitLab's http_url_to_repo.
func GitURL(base, path string) string {
	return strings.TrimSuffix(base, "/") + "/" + strings.Trim(path, "/") + ".git"
}

func (s *Simulator) authorizeGit(authorization string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) == 0 {
		return true
	}
	enc, ok := strings.CutPrefix(authorization, "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	return ok && user == "oauth2" && s.tokens[pass]
}

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
	if s.serveOAuth(w, r) {
		return
	}
	escaped, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/")
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
		return
	}
	// Segments are unescaped one by one: a project path travels as a
	// single %2F-encoded segment.
	var seg []string
	for _, e := range strings.Split(strings.Trim(escaped, "/"), "/") {
		u, err := url.PathUnescape(e)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid path"})
			return
		}
		seg = append(seg, u)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rateLimitLocked(w) {
		return
	}
	if !s.authorizedLocked(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	params, err := requestParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "400 Bad request - " + err.Error()})
		return
	}
	rq := &simRequest{w: w, r: r, seg: seg, params: params}
	switch {
	case match(seg, "users") && r.Method == http.MethodGet:
		s.listUsers(rq)
	case match(seg, "user") && r.Method == http.MethodGet:
		s.currentUser(rq)
	case len(seg) >= 2 && seg[0] == "projects":
		p := s.projectLocked(seg[1])
		if p == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
			return
		}
		s.serveProject(rq, p, seg[2:])
	default:
		notFound(w)
	}
}

// simRequest bundles what the handlers need; params merges the query with
// a JSON or form body, as GitLab's API framework does.
type simRequest struct {
	w      http.ResponseWriter
	r      *http.Request
	seg    []string
	params map[string]string
}

func (s *Simulator) serveProject(rq *simRequest, p *simProject, seg []string) {
	m := rq.r.Method
	switch {
	case len(seg) == 0 && m == http.MethodGet:
		writeJSON(rq.w, http.StatusOK, s.projectJSON(rq.r, p))
	case match(seg, "statuses", "*") && m == http.MethodPost:
		s.createStatus(rq, p, seg[1])
	case match(seg, "merge_requests") && m == http.MethodGet:
		s.listMergeRequests(rq, p)
	case match(seg, "repository", "branches", "*") && m == http.MethodGet:
		s.getBranch(rq, p, seg[2])
	case match(seg, "repository", "commits", "*", "statuses") && m == http.MethodGet:
		s.listStatuses(rq, p, seg[2])
	case match(seg, "repository", "commits", "*", "comments") && m == http.MethodPost:
		s.createCommitComment(rq, p, seg[2])
	case match(seg, "members", "all", "*") && m == http.MethodGet:
		s.getMember(rq, p, seg[2])
	case len(seg) >= 1 && seg[0] == "deployments":
		s.serveDeployments(rq, p, seg[1:])
	case len(seg) >= 3 && seg[0] == "merge_requests" && seg[2] == "notes":
		iid, err := strconv.Atoi(seg[1])
		if err != nil || iid <= 0 {
			notFound(rq.w)
			return
		}
		s.serveNotes(rq, p, iid, seg[3:])
	default:
		notFound(rq.w)
	}
}

func (s *Simulator) serveNotes(rq *simRequest, p *simProject, iid int, seg []string) {
	m := rq.r.Method
	if len(seg) == 0 {
		switch m {
		case http.MethodGet:
			s.listNotes(rq, p, iid)
		case http.MethodPost:
			s.createNote(rq, p, iid)
		default:
			notFound(rq.w)
		}
		return
	}
	id, err := strconv.ParseInt(seg[0], 10, 64)
	var note *Note
	if err == nil {
		for _, n := range p.notes[iid] {
			if n.ID == id {
				note = n
			}
		}
	}
	switch {
	case len(seg) == 1 && (m == http.MethodGet || m == http.MethodPut):
		if note == nil {
			writeJSON(rq.w, http.StatusNotFound, map[string]string{"message": "404 Note Not Found"})
			return
		}
		if m == http.MethodGet {
			writeJSON(rq.w, http.StatusOK, note)
			return
		}
		s.updateNote(rq, note)
	case match(seg, "*", "award_emoji") && m == http.MethodPost:
		if note == nil {
			writeJSON(rq.w, http.StatusNotFound, map[string]string{"message": "404 Note Not Found"})
			return
		}
		s.awardEmoji(rq, note)
	default:
		notFound(rq.w)
	}
}

// validStates are the states POST /statuses accepts.
var validStates = []string{"pending", "running", "success", "failed", "canceled", "skipped"}

// transition is the state-machine event GitLab fires for each requested
// state, and the states it may fire from ("" is a status just created).
var transition = map[string]struct {
	event string
	from  []string
}{
	"pending":  {"enqueue", []string{""}},
	"running":  {"run", []string{"", "pending"}},
	"success":  {"success", []string{"", "pending", "running"}},
	"failed":   {"drop", []string{"", "pending", "running"}},
	"canceled": {"cancel", []string{"", "pending", "running"}},
	"skipped":  {"skip", []string{""}},
}

// createStatus follows GitLab's commit status API: a pending or running
// status with the same name and ref is moved to the new state, anything
// else starts a new status, and a transition the state machine does not
// allow (running to running, say) is a 400.
func (s *Simulator) createStatus(rq *simRequest, p *simProject, sha string) {
	state, ok := rq.params["state"]
	switch {
	case !ok || state == "":
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "state is missing"})
		return
	case !slices.Contains(validStates, state):
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "state does not have a valid value"})
		return
	}
	name := rq.params["name"]
	if name == "" {
		name = rq.params["context"]
	}
	if name == "" {
		name = "default"
	}
	ref := rq.params["ref"]
	now := s.now().UTC()

	var st *Status
	for _, old := range p.statuses[sha] {
		if old.Name == name && old.Ref == ref && (old.Status == "pending" || old.Status == "running") {
			st = old
		}
	}
	from := ""
	if st != nil {
		from = st.Status
	}
	tr := transition[state]
	if !slices.Contains(tr.from, from) {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf(
			"Cannot transition status via :%s from :%s (Reason(s): Status cannot transition via \"%s\")", tr.event, from, tr.event)})
		return
	}
	if st == nil {
		st = &Status{ID: s.newIDLocked(), SHA: sha, Ref: ref, Name: name, CreatedAt: now, Author: *s.userLocked(s.BotUsername)}
		p.statuses[sha] = append(p.statuses[sha], st)
	}
	st.Status = state
	if v, ok := rq.params["target_url"]; ok {
		st.TargetURL = v
	}
	if v, ok := rq.params["description"]; ok {
		st.Description = v
	}
	if v, err := strconv.ParseFloat(rq.params["coverage"], 64); err == nil {
		st.Coverage = &v
	}
	switch state {
	case "running":
		st.StartedAt = &now
	case "success", "failed", "canceled", "skipped":
		st.FinishedAt = &now
	}
	writeJSON(rq.w, http.StatusCreated, st)
}

func (s *Simulator) listStatuses(rq *simRequest, p *simProject, sha string) {
	out := []*Status{}
	for _, st := range p.statuses[sha] {
		if name := rq.params["name"]; name != "" && st.Name != name {
			continue
		}
		if ref := rq.params["ref"]; ref != "" && st.Ref != ref {
			continue
		}
		out = append(out, st)
	}
	start, end := paginate(rq.w, rq.r, len(out))
	writeJSON(rq.w, http.StatusOK, out[start:end])
}

func (s *Simulator) listNotes(rq *simRequest, p *simProject, iid int) {
	notes := slices.Clone(p.notes[iid])
	byUpdated := rq.params["order_by"] == "updated_at"
	desc := rq.params["sort"] != "asc" // GitLab lists newest first unless asked
	sort.SliceStable(notes, func(i, j int) bool {
		a, b := notes[i], notes[j]
		if desc {
			a, b = b, a
		}
		if byUpdated && !a.UpdatedAt.Equal(b.UpdatedAt) {
			return a.UpdatedAt.Before(b.UpdatedAt)
		}
		return a.ID < b.ID
	})
	start, end := paginate(rq.w, rq.r, len(notes))
	page := notes[start:end]
	if page == nil {
		page = []*Note{}
	}
	writeJSON(rq.w, http.StatusOK, page)
}

// checkBody validates a note body as GitLab does, answering and returning
// false when it is refused.
func checkBody(rq *simRequest) (string, bool) {
	body, ok := rq.params["body"]
	if !ok || body == "" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "body is missing"})
		return "", false
	}
	if utf8.RuneCountInString(body) > MaxNoteLength {
		writeJSON(rq.w, http.StatusBadRequest, map[string]any{
			"message": map[string][]string{"note": {fmt.Sprintf("is too long (maximum is %d characters)", MaxNoteLength)}},
		})
		return "", false
	}
	return body, true
}

func (s *Simulator) createNote(rq *simRequest, p *simProject, iid int) {
	body, ok := checkBody(rq)
	if !ok {
		return
	}
	n := s.addNoteLocked(p, iid, s.userLocked(s.BotUsername), body)
	writeJSON(rq.w, http.StatusCreated, n)
}

func (s *Simulator) updateNote(rq *simRequest, n *Note) {
	body, ok := checkBody(rq)
	if !ok {
		return
	}
	if body != n.Body {
		n.Body = body
		n.Edits++
	}
	n.UpdatedAt = s.now().UTC()
	writeJSON(rq.w, http.StatusOK, n)
}

// awardEmoji adds a reaction. GitLab refuses a second identical award by
// the same user with a 404, not a 409, whose message carries the model's
// uniqueness error ("has already been taken", which is what GitLab's own
// API tests check for) inside its not_found! wording.
func (s *Simulator) awardEmoji(rq *simRequest, n *Note) {
	name := rq.params["name"]
	if name == "" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "name is missing"})
		return
	}
	if slices.Contains(n.Awards, name) {
		writeJSON(rq.w, http.StatusNotFound, map[string]string{"message": "404 Award Emoji Name has already been taken Not Found"})
		return
	}
	n.Awards = append(n.Awards, name)
	now := s.now().UTC()
	writeJSON(rq.w, http.StatusCreated, map[string]any{
		"id":             s.newIDLocked(),
		"name":           name,
		"user":           s.userLocked(s.BotUsername),
		"created_at":     now,
		"updated_at":     now,
		"awardable_id":   n.ID,
		"awardable_type": "Note",
	})
}

func (s *Simulator) getMember(rq *simRequest, p *simProject, userID string) {
	id, err := strconv.ParseInt(userID, 10, 64)
	level, ok := p.members[id]
	if err != nil || !ok {
		writeJSON(rq.w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
		return
	}
	var u *User
	for _, cand := range s.users {
		if cand.ID == id {
			u = cand
		}
	}
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"id":           u.ID,
		"username":     u.Username,
		"name":         u.Name,
		"state":        u.State,
		"avatar_url":   u.AvatarURL,
		"web_url":      u.WebURL,
		"access_level": level,
		"created_at":   s.now().UTC(),
		"expires_at":   nil,
	})
}

func (s *Simulator) listUsers(rq *simRequest) {
	out := []*User{}
	if name, ok := rq.params["username"]; ok {
		if u := s.users[strings.ToLower(name)]; u != nil {
			out = append(out, u)
		}
	} else {
		for _, u := range s.users {
			out = append(out, u)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	}
	start, end := paginate(rq.w, rq.r, len(out))
	writeJSON(rq.w, http.StatusOK, out[start:end])
}

func (s *Simulator) projectJSON(r *http.Request, p *simProject) map[string]any {
	web := baseURL(r) + "/" + p.path
	name := p.path[strings.LastIndex(p.path, "/")+1:]
	return map[string]any{
		"id":                  p.id,
		"name":                name,
		"path":                name,
		"path_with_namespace": p.path,
		"default_branch":      "main",
		"web_url":             web,
		"http_url_to_repo":    GitURL(baseURL(r), p.path),
		"visibility":          "private",
	}
}

func (s *Simulator) addNoteLocked(p *simProject, iid int, author *User, body string) *Note {
	now := s.now().UTC()
	n := &Note{
		ID:           s.newIDLocked(),
		Body:         body,
		Author:       *author,
		CreatedAt:    now,
		UpdatedAt:    now,
		NoteableID:   p.id*100000 + int64(iid),
		NoteableType: "MergeRequest",
		NoteableIID:  iid,
		ProjectID:    p.id,
	}
	p.notes[iid] = append(p.notes[iid], n)
	return n
}

// userLocked returns the user called username, creating it.
// UserID returns the id of username, creating the user when new, as the
// author_id a merge request payload would carry.
func (s *Simulator) UserID(username string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userLocked(username).ID
}

func (s *Simulator) userLocked(username string) *User {
	key := strings.ToLower(username)
	if u := s.users[key]; u != nil {
		return u
	}
	u := &User{
		ID:       int64(len(s.users) + 1),
		Username: username,
		Name:     username,
		State:    "active",
		WebURL:   "https://gitlab.example.com/" + username,
	}
	s.users[key] = u
	return u
}

func (s *Simulator) newIDLocked() int64 {
	s.nextID++
	return s.nextID
}

// projectLocked finds a project by numeric id or by its unescaped path.
func (s *Simulator) projectLocked(idOrPath string) *simProject {
	if id, err := strconv.ParseInt(idOrPath, 10, 64); err == nil {
		return s.projects[id]
	}
	return s.byPath[strings.ToLower(idOrPath)]
}

func (s *Simulator) authorizedLocked(r *http.Request) bool {
	if len(s.tokens) == 0 {
		return true
	}
	token := r.Header.Get("PRIVATE-TOKEN")
	if token == "" {
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = bearer
		}
	}
	return token != "" && s.tokens[token]
}

// rateLimitLocked sets GitLab's RateLimit-* headers and counts the call;
// when an enforced budget is spent it answers 429 as GitLab's Rack::Attack
// does (plain-text body, Retry-After) and returns false.
func (s *Simulator) rateLimitLocked(w http.ResponseWriter) bool {
	now := s.now()
	if !now.Before(s.rateReset) {
		s.rateRemaining = s.rateLimit
		s.rateReset = now.Add(time.Minute)
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(s.rateLimit))
	h.Set("RateLimit-Reset", strconv.FormatInt(s.rateReset.Unix(), 10))
	h.Set("RateLimit-ResetTime", s.rateReset.UTC().Format(http.TimeFormat))
	if s.rateRemaining <= 0 && s.rateEnforced {
		h.Set("RateLimit-Remaining", "0")
		h.Set("RateLimit-Observed", strconv.Itoa(s.rateLimit))
		wait := int(s.rateReset.Sub(now).Seconds() + 0.999)
		h.Set("Retry-After", strconv.Itoa(max(wait, 1)))
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, "Retry later\n")
		return false
	}
	if s.rateRemaining > 0 {
		s.rateRemaining--
	}
	h.Set("RateLimit-Remaining", strconv.Itoa(s.rateRemaining))
	h.Set("RateLimit-Observed", strconv.Itoa(s.rateLimit-s.rateRemaining))
	return true
}

// requestParams merges query parameters with a JSON or form body; the
// body wins, as in GitLab's API framework.
func requestParams(r *http.Request) (map[string]string, error) {
	params := map[string]string{}
	for k, v := range r.URL.Query() {
		params[k] = v[0]
	}
	if r.Body == nil || r.Method == http.MethodGet {
		return params, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var body map[string]any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			return nil, fmt.Errorf("invalid JSON body: %w", err)
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				params[k] = v
			case nil:
			default:
				params[k] = fmt.Sprint(v)
			}
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(32 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return nil, fmt.Errorf("invalid form body: %w", err)
		}
		for k, v := range r.PostForm {
			params[k] = v[0]
		}
	}
	return params, nil
}

// paginate applies GitLab's offset pagination to a list of total items:
// per_page defaults to 20 and is capped at 100. It sets the X-* and Link
// headers and returns the slice bounds of the requested page.
func paginate(w http.ResponseWriter, r *http.Request, total int) (start, end int) {
	q := r.URL.Query()
	perPage, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || perPage < 1 {
		perPage = 20
	}
	perPage = min(perPage, 100)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	totalPages := max((total+perPage-1)/perPage, 1)

	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(perPage))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(totalPages))
	h.Set("X-Next-Page", "")
	h.Set("X-Prev-Page", "")
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, baseURL(r), r.URL.EscapedPath(), q.Encode(), rel)
	}
	var links []string
	if page > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(min(page-1, totalPages)))
		links = append(links, link(min(page-1, totalPages), "prev"))
	}
	if page < totalPages {
		h.Set("X-Next-Page", strconv.Itoa(page+1))
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(1, "first"), link(totalPages, "last"))
	h.Set("Link", strings.Join(links, ", "))

	start = min((page-1)*perPage, total)
	end = min(start+perPage, total)
	return start, end
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// match reports whether seg equals pattern, where "*" matches any one
// segment.
func match(seg []string, pattern ...string) bool {
	if len(seg) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && p != seg[i] {
			return false
		}
	}
	return true
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
