package github

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The simulator's repositories, branches and pull requests, which the
// reconciler lists: GET /repos/{owner}/{repo}/pulls, GET
// /repos/{owner}/{repo}/branches/{branch}, GET /app/installations and GET
// /installation/repositories. Listings carry an ETag and honour
// If-None-Match: a 304 gives the call back to the rate limit, as GitHub
// does for authenticated conditional requests.

// simRepo is a repository the simulator knows pull requests of; its
// branches are those SetBranch set.
type simRepo struct {
	id            int64
	fullName      string
	defaultBranch string
	pulls         []*PullRequestSpec
}

// PullRequestSpec is a pull request as OpenPullRequest creates it.
type PullRequestSpec struct {
	Number  int
	Title   string
	HeadRef string
	HeadSHA string
	// HeadRepo is the fork the head lives in ("owner/name"); empty for a
	// branch of the repository itself.
	HeadRepo string
	// BaseRef is the branch it merges into; empty means the default branch.
	BaseRef string
	Author  string
	// AuthorAssociation is GitHub's OWNER, MEMBER, COLLABORATOR,
	// CONTRIBUTOR, FIRST_TIME_CONTRIBUTOR or NONE.
	AuthorAssociation string
	Draft             bool
	// State is "open" or "closed"; OpenPullRequest sets "open".
	State     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (s *Simulator) pullRoutes() {
	s.route("GET /repos/{owner}/{repo}/pulls", authToken, s.listPulls)
	s.route("GET /repos/{owner}/{repo}/branches/{branch}", authToken, s.getBranch)
	s.route("GET /app/installations", authApp, s.listInstallations)
	s.route("GET /installation/repositories", authToken, s.listInstallationRepos)
}

// repoLocked returns repo's record, made with default branch "main" the
// first time. Callers hold s.mu.
func (s *Simulator) repoLocked(repo string) *simRepo {
	if s.repos == nil {
		s.repos = map[string]*simRepo{}
	}
	k := repoKey(repo)
	if r := s.repos[k]; r != nil {
		return r
	}
	s.nextID++
	r := &simRepo{id: s.nextID, fullName: repo, defaultBranch: "main"}
	s.repos[k] = r
	return r
}

// OpenPullRequest opens pr on repo, without delivering any webhook, and
// returns it as stored.
func (s *Simulator) OpenPullRequest(repo string, pr PullRequestSpec) PullRequestSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repoLocked(repo)
	if pr.BaseRef == "" {
		pr.BaseRef = r.defaultBranch
	}
	if pr.State == "" {
		pr.State = "open"
	}
	if pr.Title == "" {
		pr.Title = "Pull request " + strconv.Itoa(pr.Number)
	}
	now := time.Now().UTC()
	if pr.CreatedAt.IsZero() {
		pr.CreatedAt = now
	}
	if pr.UpdatedAt.IsZero() {
		pr.UpdatedAt = now
	}
	for i, p := range r.pulls {
		if p.Number == pr.Number {
			r.pulls[i] = &pr
			return pr
		}
	}
	r.pulls = append(r.pulls, &pr)
	return pr
}

// ClosePullRequest closes pull request number of repo.
func (s *Simulator) ClosePullRequest(repo string, number int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.repoLocked(repo).pulls {
		if p.Number == number {
			p.State, p.UpdatedAt = "closed", time.Now().UTC()
		}
	}
}

func (s *Simulator) listPulls(w http.ResponseWriter, r *http.Request) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "open"
	}
	if state != "open" && state != "closed" && state != "all" {
		writeValidation(w, "PullRequest", "state", "invalid", "state must be open, closed or all", "https://docs.github.com/rest/pulls/pulls#list-pull-requests")
		return
	}
	s.mu.Lock()
	rp := s.repoLocked(repo)
	var pulls []PullRequestSpec
	for _, p := range rp.pulls {
		if state == "all" || p.State == state {
			pulls = append(pulls, *p)
		}
	}
	branches := map[string]string{}
	for _, p := range pulls {
		branches[p.BaseRef] = s.deploys.branches[repoKey(repo)+":"+p.BaseRef]
	}
	full, id, def := rp.fullName, rp.id, rp.defaultBranch
	s.mu.Unlock()
	// GitHub's default order: newest created first.
	sort.SliceStable(pulls, func(i, j int) bool { return pulls[i].Number > pulls[j].Number })
	lo, hi, ok := paginate(w, r, len(pulls))
	if !ok {
		return
	}
	base := s.repoJSON(r, id, full, def)
	out := []map[string]any{}
	for _, p := range pulls[lo:hi] {
		head := base
		if p.HeadRepo != "" && !strings.EqualFold(p.HeadRepo, full) {
			head = s.repoJSON(r, id+1_000_000, p.HeadRepo, def)
		}
		out = append(out, map[string]any{
			"url":                baseURL(r) + "/repos/" + full + "/pulls/" + strconv.Itoa(p.Number),
			"id":                 int64(p.Number) + 7_000_000,
			"number":             p.Number,
			"state":              p.State,
			"title":              p.Title,
			"draft":              p.Draft,
			"html_url":           s.WebURL + "/" + full + "/pull/" + strconv.Itoa(p.Number),
			"user":               map[string]any{"login": p.Author, "type": userType(p.Author)},
			"author_association": p.AuthorAssociation,
			"created_at":         p.CreatedAt.Format(time.RFC3339),
			"updated_at":         p.UpdatedAt.Format(time.RFC3339),
			"head":               map[string]any{"label": strings.SplitN(head["full_name"].(string), "/", 2)[0] + ":" + p.HeadRef, "ref": p.HeadRef, "sha": p.HeadSHA, "repo": head},
			"base":               map[string]any{"label": strings.SplitN(full, "/", 2)[0] + ":" + p.BaseRef, "ref": p.BaseRef, "sha": branches[p.BaseRef], "repo": base},
		})
	}
	s.writeConditional(w, r, out)
}

// repoJSON is a repository object as GitHub nests it in pull requests and
// installation listings.
func (s *Simulator) repoJSON(r *http.Request, id int64, fullName, defaultBranch string) map[string]any {
	owner, name, _ := strings.Cut(fullName, "/")
	return map[string]any{
		"id":             id,
		"name":           name,
		"full_name":      fullName,
		"private":        true,
		"owner":          map[string]any{"login": owner},
		"html_url":       s.WebURL + "/" + fullName,
		"clone_url":      GitURL(baseURL(r), fullName),
		"default_branch": defaultBranch,
	}
}

func (s *Simulator) getBranch(w http.ResponseWriter, r *http.Request) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	branch := r.PathValue("branch")
	s.mu.Lock()
	sha, ok := s.deploys.branches[repoKey(repo)+":"+branch]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Branch not found", "https://docs.github.com/rest/branches/branches#get-a-branch")
		return
	}
	s.writeConditional(w, r, map[string]any{
		"name":      branch,
		"protected": false,
		"commit":    map[string]any{"sha": sha, "url": baseURL(r) + "/repos/" + repo + "/commits/" + sha},
	})
}

func (s *Simulator) listInstallations(w http.ResponseWriter, r *http.Request) {
	app := appOf(r)
	s.mu.Lock()
	var ids []int64
	for id, in := range s.installs {
		if in.appID == app {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	lo, hi, ok := paginate(w, r, len(ids))
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, id := range ids[lo:hi] {
		out = append(out, map[string]any{
			"id":                   id,
			"app_id":               app,
			"target_type":          "Organization",
			"repository_selection": "selected",
			"access_tokens_url":    baseURL(r) + "/app/installations/" + strconv.FormatInt(id, 10) + "/access_tokens",
		})
	}
	s.writeConditional(w, r, out)
}

func (s *Simulator) listInstallationRepos(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		token, _ = strings.CutPrefix(auth, "token ")
	}
	s.mu.Lock()
	g := s.tokens[token]
	if g == nil || g.installation == 0 || s.installs[g.installation] == nil {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, "You must authenticate with an installation access token in order to list repositories for an installation.",
			"https://docs.github.com/rest/apps/installations#list-repositories-accessible-to-the-app-installation")
		return
	}
	var keys []string
	for k := range s.installs[g.installation].repos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type entry struct {
		id             int64
		full, defaultB string
	}
	var repos []entry
	for _, k := range keys {
		rp := s.repoLocked(k)
		repos = append(repos, entry{rp.id, rp.fullName, rp.defaultBranch})
	}
	s.mu.Unlock()
	lo, hi, ok := paginate(w, r, len(repos))
	if !ok {
		return
	}
	list := []map[string]any{}
	for _, e := range repos[lo:hi] {
		list = append(list, s.repoJSON(r, e.id, e.full, e.defaultB))
	}
	s.writeConditional(w, r, map[string]any{"total_count": len(repos), "repository_selection": "selected", "repositories": list})
}

// writeConditional answers 200 with v and an ETag, or 304 Not Modified
// when the request's If-None-Match names that ETag; a 304 gives back the
// call the route took from the rate limit, as GitHub does not count it.
func (s *Simulator) writeConditional(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), simDocs)
		return
	}
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=60, s-maxage=60")
	w.Header().Set("Vary", "Accept, Authorization, Cookie")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		s.mu.Lock()
		if s.rate.remaining < s.rate.limit {
			s.rate.remaining++
		}
		s.notModified++
		rs := s.rate
		s.mu.Unlock()
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(rs.remaining))
		w.Header().Set("X-RateLimit-Used", strconv.Itoa(max(rs.limit-rs.remaining, 0)))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// etagMatches reports whether an If-None-Match header names etag, by weak
// comparison (RFC 9110 13.1.2).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// NotModified counts the 304 Not Modified answers given.
func (s *Simulator) NotModified() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notModified
}
