package github

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mlbot/mlbot/bot"
)

// SimCheckRun is a check run as the simulator holds it now, with every
// state it was put in, oldest first.
type SimCheckRun struct {
	CheckRun
	Repo        string
	SuiteID     int64
	StartedAt   time.Time
	CompletedAt time.Time
	History     []CheckRunState
}

// CheckRunState is one state a check run was created or updated with.
type CheckRunState struct {
	Status, Conclusion, Title, ExternalID string
	// Actions are the identifiers of its buttons from then on.
	Actions []string
	At      time.Time
	// Seq orders the states of every check run of the simulator.
	Seq int64
}

// checkStore holds the simulator's check runs and suites. Guarded by
// Simulator.mu.
type checkStore struct {
	runs   map[int64]*SimCheckRun
	suites map[string]*simSuite // app+repo+sha → suite
}

type simSuite struct {
	id      int64
	updated time.Time
}

const (
	checkRunsDoc      = "https://docs.github.com/rest/checks/runs#create-a-check-run"
	checkRunUpdateDoc = "https://docs.github.com/rest/checks/runs#update-a-check-run"
	checkRunsListDoc  = "https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference"
)

var (
	validCheckStatuses    = []string{CheckQueued, CheckInProgress, CheckCompleted}
	validCheckConclusions = []string{"action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"}
)

func (s *Simulator) checkRoutes() {
	s.route("POST /repos/{owner}/{repo}/check-runs", authToken, s.createCheckRun)
	s.route("GET /repos/{owner}/{repo}/check-runs/{id}", authToken, s.getCheckRun)
	s.route("PATCH /repos/{owner}/{repo}/check-runs/{id}", authToken, s.updateCheckRun)
	s.route("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", authToken, s.listCheckRunsForRef)
}

// CheckRuns returns the check runs on sha in repo, oldest first, each with
// its history.
func (s *Simulator) CheckRuns(repo, sha string) []SimCheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SimCheckRun
	for _, cr := range s.repoCheckRuns(repo) {
		if strings.EqualFold(cr.HeadSHA, sha) {
			out = append(out, copyCheckRun(cr))
		}
	}
	return out
}

func copyCheckRun(cr *SimCheckRun) SimCheckRun {
	c := *cr
	c.Actions = slices.Clone(cr.Actions)
	c.History = slices.Clone(cr.History)
	return c
}

// repoCheckRuns returns repo's check runs by ascending id. Callers hold
// s.mu.
func (s *Simulator) repoCheckRuns(repo string) []*SimCheckRun {
	var out []*SimCheckRun
	for _, cr := range s.checks.runs {
		if repoKey(cr.Repo) == repoKey(repo) {
			out = append(out, cr)
		}
	}
	slices.SortFunc(out, func(a, b *SimCheckRun) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// appOfToken returns the App a request's token acts for. Check runs are
// written by GitHub Apps only: a personal access token is refused with
// GitHub's 403. Until credentials are configured, an installation-shaped
// token ("ghs_…") counts as App 0's.
func (s *Simulator) appOfToken(r *http.Request) (int64, bool) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		token, _ = strings.CutPrefix(auth, "token ")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open() {
		return 0, strings.HasPrefix(token, installationToken)
	}
	g := s.tokens[token]
	if g == nil || g.installation == 0 {
		return 0, false
	}
	in := s.installs[g.installation]
	if in == nil {
		return 0, false
	}
	return in.appID, true
}

// checkRunInput is the body of a check run's POST or PATCH. Pointers tell
// a field left out from one set empty, as a PATCH must.
type checkRunInput struct {
	Name        *string `json:"name"`
	HeadSHA     *string `json:"head_sha"`
	DetailsURL  *string `json:"details_url"`
	ExternalID  *string `json:"external_id"`
	Status      *string `json:"status"`
	Conclusion  *string `json:"conclusion"`
	StartedAt   *string `json:"started_at"`
	CompletedAt *string `json:"completed_at"`
	Output      *struct {
		Title   *string `json:"title"`
		Summary *string `json:"summary"`
		Text    *string `json:"text"`
	} `json:"output"`
	Actions *[]struct {
		Label       *string `json:"label"`
		Description *string `json:"description"`
		Identifier  *string `json:"identifier"`
	} `json:"actions"`
}

// validate answers GitHub's 422 for what it refuses in a check run body
// and reports whether the body passed.
func (in *checkRunInput) validate(w http.ResponseWriter, create bool, doc string) bool {
	fail := func(msg string) bool {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n"+msg, doc)
		return false
	}
	if create {
		for field, v := range map[string]*string{"name": in.Name, "head_sha": in.HeadSHA} {
			if v == nil || *v == "" {
				return fail(fmt.Sprintf("%q wasn't supplied.", field))
			}
		}
	} else if in.Name != nil && *in.Name == "" {
		return fail(`"name" wasn't supplied.`)
	}
	if in.Status != nil && !slices.Contains(validCheckStatuses, *in.Status) {
		return fail(fmt.Sprintf("%q is not a member of [%s].", *in.Status, strings.Join(validCheckStatuses, ", ")))
	}
	if in.Conclusion != nil && !slices.Contains(validCheckConclusions, *in.Conclusion) {
		return fail(fmt.Sprintf("%q is not a member of [%s].", *in.Conclusion, strings.Join(validCheckConclusions, ", ")))
	}
	if in.Status != nil && *in.Status == CheckCompleted && in.Conclusion == nil {
		return fail(`"conclusion" wasn't supplied.`)
	}
	if o := in.Output; o != nil {
		if o.Title == nil || *o.Title == "" {
			return fail(`"title" wasn't supplied.`)
		}
		if o.Summary == nil || *o.Summary == "" {
			return fail(`"summary" wasn't supplied.`)
		}
		for _, f := range []struct {
			name string
			v    *string
		}{{"summary", o.Summary}, {"text", o.Text}} {
			// GitHub counts bytes here, though its reference says
			// characters (github/docs#35252).
			if f.v != nil && len(*f.v) > bot.MaxCheckText {
				return fail(fmt.Sprintf("%s exceeds a maximum bytesize of %d", f.name, bot.MaxCheckText))
			}
		}
	}
	if in.Actions != nil {
		if len(*in.Actions) > bot.MaxCheckActions {
			return fail(fmt.Sprintf("Only %d actions are allowed; %d were supplied.", bot.MaxCheckActions, len(*in.Actions)))
		}
		for _, a := range *in.Actions {
			for _, f := range []struct {
				name string
				v    *string
				max  int
			}{{"label", a.Label, bot.MaxActionLabel}, {"description", a.Description, bot.MaxActionDescription}, {"identifier", a.Identifier, bot.MaxActionIdentifier}} {
				if f.v == nil || *f.v == "" {
					return fail(fmt.Sprintf("%q wasn't supplied.", f.name))
				}
				if n := utf8.RuneCountInString(*f.v); n > f.max {
					return fail(fmt.Sprintf("%s is too long (maximum is %d characters, %d were supplied).", f.name, f.max, n))
				}
			}
		}
	}
	return true
}

// apply writes the fields in sets into cr, as GitHub does: a conclusion
// completes the run, a status other than completed clears a conclusion,
// an output replaces the whole output and an actions list the buttons.
func (in *checkRunInput) apply(cr *SimCheckRun, now time.Time, seq int64) {
	if in.Name != nil {
		cr.Name = *in.Name
	}
	if in.DetailsURL != nil {
		cr.DetailsURL = *in.DetailsURL
	}
	if in.ExternalID != nil {
		cr.ExternalID = *in.ExternalID
	}
	if in.Status != nil {
		cr.Status = *in.Status
	}
	if in.Conclusion != nil {
		cr.Status, cr.Conclusion = CheckCompleted, *in.Conclusion
	}
	if cr.Status == CheckCompleted {
		if cr.CompletedAt.IsZero() || in.Conclusion != nil {
			cr.CompletedAt = now
		}
	} else {
		cr.Conclusion, cr.CompletedAt = "", time.Time{}
	}
	if o := in.Output; o != nil {
		cr.Title, cr.Summary, cr.Text = *o.Title, *o.Summary, deref(o.Text, "")
	}
	if in.Actions != nil {
		cr.Actions = nil
		for _, a := range *in.Actions {
			cr.Actions = append(cr.Actions, bot.CheckAction{Label: *a.Label, Description: *a.Description, Identifier: *a.Identifier})
		}
	}
	st := CheckRunState{Status: cr.Status, Conclusion: cr.Conclusion, Title: cr.Title, ExternalID: cr.ExternalID, At: now, Seq: seq}
	for _, a := range cr.Actions {
		st.Actions = append(st.Actions, a.Identifier)
	}
	cr.History = append(cr.History, st)
}

// createCheckRun serves POST /repos/{owner}/{repo}/check-runs.
func (s *Simulator) createCheckRun(w http.ResponseWriter, r *http.Request) {
	app, ok := s.appOfToken(r)
	if !ok {
		writeError(w, http.StatusForbidden, "You must authenticate via a GitHub App.", checkRunsDoc)
		return
	}
	var in checkRunInput
	if !decodeJSON(w, r, &in) || !in.validate(w, true, checkRunsDoc) {
		return
	}
	if !isSHA(*in.HeadSHA) {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+*in.HeadSHA, checkRunsDoc)
		return
	}
	if in.Status == nil && in.Conclusion == nil {
		in.Status = &validCheckStatuses[0] // queued, GitHub's default
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	now := time.Now().UTC().Truncate(time.Second)
	s.mu.Lock()
	cr := &SimCheckRun{CheckRun: CheckRun{HeadSHA: strings.ToLower(*in.HeadSHA), AppID: app}, Repo: repo, StartedAt: now}
	cr.SuiteID = s.suite(app, repo, cr.HeadSHA).id
	s.nextID++
	cr.ID = s.nextID
	in.apply(cr, now, s.nextID)
	if s.checks.runs == nil {
		s.checks.runs = map[int64]*SimCheckRun{}
	}
	s.checks.runs[cr.ID] = cr
	out := s.checkRunJSON(r, cr)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// suite returns the check suite of app's check runs on sha, creating it
// the first time, as GitHub keeps one suite per App and commit. Callers
// hold s.mu.
func (s *Simulator) suite(app int64, repo, sha string) *simSuite {
	k := strconv.FormatInt(app, 10) + ":" + repoKey(repo) + "@" + strings.ToLower(sha)
	if s.checks.suites == nil {
		s.checks.suites = map[string]*simSuite{}
	}
	su := s.checks.suites[k]
	if su == nil {
		s.nextID++
		su = &simSuite{id: s.nextID, updated: time.Now().UTC().Truncate(time.Second)}
		s.checks.suites[k] = su
	}
	return su
}

// checkRun finds check run id of the request's repository, answering 404
// when there is none. Callers hold s.mu.
func (s *Simulator) checkRun(w http.ResponseWriter, r *http.Request, doc string) *SimCheckRun {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	cr := s.checks.runs[id]
	if err != nil || cr == nil || repoKey(cr.Repo) != repoKey(r.PathValue("owner")+"/"+r.PathValue("repo")) {
		writeError(w, http.StatusNotFound, "Not Found", doc)
		return nil
	}
	return cr
}

// getCheckRun serves GET /repos/{owner}/{repo}/check-runs/{id}.
func (s *Simulator) getCheckRun(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	cr := s.checkRun(w, r, "https://docs.github.com/rest/checks/runs#get-a-check-run")
	if cr == nil {
		s.mu.Unlock()
		return
	}
	out := s.checkRunJSON(r, cr)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// updateCheckRun serves PATCH /repos/{owner}/{repo}/check-runs/{id}: only
// the App that created a check run may change it.
func (s *Simulator) updateCheckRun(w http.ResponseWriter, r *http.Request) {
	app, ok := s.appOfToken(r)
	if !ok {
		writeError(w, http.StatusForbidden, "You must authenticate via a GitHub App.", checkRunUpdateDoc)
		return
	}
	s.mu.Lock()
	cr := s.checkRun(w, r, checkRunUpdateDoc)
	s.mu.Unlock()
	if cr == nil {
		return
	}
	if cr.AppID != app {
		writeError(w, http.StatusForbidden, fmt.Sprintf("Invalid app_id `%d` - check run can only be modified by the GitHub App that created it.", app), checkRunUpdateDoc)
		return
	}
	var in checkRunInput
	if !decodeJSON(w, r, &in) || !in.validate(w, false, checkRunUpdateDoc) {
		return
	}
	s.mu.Lock()
	s.nextID++
	in.apply(cr, time.Now().UTC().Truncate(time.Second), s.nextID)
	out := s.checkRunJSON(r, cr)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// listCheckRunsForRef serves GET
// /repos/{owner}/{repo}/commits/{ref}/check-runs with GitHub's filters:
// check_name, status, app_id, and filter=latest (the default: the newest
// check run of each App and name) or all. Newest first, paginated.
func (s *Simulator) listCheckRunsForRef(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter := q.Get("filter")
	if filter == "" {
		filter = "latest"
	}
	if filter != "latest" && filter != "all" {
		writeValidation(w, "CheckRun", "filter", "invalid", "filter must be one of latest, all", checkRunsListDoc)
		return
	}
	var appID int64
	if v := q.Get("app_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeValidation(w, "CheckRun", "app_id", "invalid", "", checkRunsListDoc)
			return
		}
		appID = id
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	ref := r.PathValue("ref")
	s.mu.Lock()
	if sha, ok := s.deploys.branches[repoKey(repo)+":"+ref]; ok {
		ref = sha
	}
	var match []*SimCheckRun
	seen := map[string]bool{}
	all := s.repoCheckRuns(repo)
	for i := len(all) - 1; i >= 0; i-- { // newest first
		cr := all[i]
		switch {
		case !strings.EqualFold(cr.HeadSHA, ref),
			q.Has("check_name") && cr.Name != q.Get("check_name"),
			q.Has("status") && cr.Status != q.Get("status"),
			appID != 0 && cr.AppID != appID:
			continue
		}
		k := strconv.FormatInt(cr.AppID, 10) + "/" + cr.Name
		if filter == "latest" && seen[k] {
			continue
		}
		seen[k] = true
		match = append(match, cr)
	}
	s.mu.Unlock()
	lo, hi, ok := paginate(w, r, len(match))
	if !ok {
		return
	}
	runs := []map[string]any{}
	s.mu.Lock()
	for _, cr := range match[lo:hi] {
		runs = append(runs, s.checkRunJSON(r, cr))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(match), "check_runs": runs})
}

// checkRunJSON is cr as GitHub returns it. Callers hold s.mu.
func (s *Simulator) checkRunJSON(r *http.Request, cr *SimCheckRun) map[string]any {
	id := strconv.FormatInt(cr.ID, 10)
	api := baseURL(r) + "/repos/" + cr.Repo
	var conclusion, completed any
	if cr.Status == CheckCompleted {
		conclusion, completed = cr.Conclusion, cr.CompletedAt.Format(time.RFC3339)
	}
	return map[string]any{
		"id":           cr.ID,
		"node_id":      "CR_" + id,
		"head_sha":     cr.HeadSHA,
		"external_id":  cr.ExternalID,
		"url":          api + "/check-runs/" + id,
		"html_url":     strings.TrimSuffix(s.WebURL, "/") + "/" + cr.Repo + "/runs/" + id,
		"details_url":  nullable(cr.DetailsURL),
		"status":       cr.Status,
		"conclusion":   conclusion,
		"started_at":   cr.StartedAt.Format(time.RFC3339),
		"completed_at": completed,
		"output": map[string]any{
			"title":             nullable(cr.Title),
			"summary":           nullable(cr.Summary),
			"text":              nullable(cr.Text),
			"annotations_count": 0,
			"annotations_url":   api + "/check-runs/" + id + "/annotations",
		},
		"name":          cr.Name,
		"check_suite":   map[string]any{"id": cr.SuiteID},
		"app":           map[string]any{"id": cr.AppID, "slug": "mlbot", "name": "mlbot"},
		"pull_requests": []any{},
	}
}

// CheckRunPress describes the check_run delivery GitHub sends when sender
// presses a button of check run id in repo: its Re-run when identifier is
// "" (action rerequested), else the action button of that identifier
// (requested_action), which the check run must show. The caller adds
// what the simulator does not know (the clone URL, the pull requests
// GitHub would name) and builds the body with CheckRunPayload.
func (s *Simulator) CheckRunPress(repo string, id int64, sender, identifier string) (CheckRunOptions, error) {
	s.mu.Lock()
	cr := s.checks.runs[id]
	if cr == nil || repoKey(cr.Repo) != repoKey(repo) {
		s.mu.Unlock()
		return CheckRunOptions{}, fmt.Errorf("github simulator: no check run %d in %s", id, repo)
	}
	c := copyCheckRun(cr)
	s.mu.Unlock()
	o := CheckRunOptions{Action: "rerequested", Repo: repo, ID: c.ID, SuiteID: c.SuiteID, AppID: c.AppID, Name: c.Name, HeadSHA: c.HeadSHA,
		ExternalID: c.ExternalID, DetailsURL: c.DetailsURL, Status: c.Status, Conclusion: c.Conclusion, Title: c.Title, Summary: c.Summary,
		Sender: sender}
	if identifier != "" {
		if !slices.ContainsFunc(c.Actions, func(a bot.CheckAction) bool { return a.Identifier == identifier }) {
			return CheckRunOptions{}, fmt.Errorf("github simulator: check run %d shows no button %q", id, identifier)
		}
		o.Action, o.Identifier = "requested_action", identifier
	}
	return o, nil
}

// CheckSuiteRerun describes the check_suite delivery GitHub sends when
// sender presses Re-run all on app's check suite of sha in repo, and,
// like GitHub, marks the suite updated now. The caller builds the body
// with CheckSuitePayload, as for CheckRunPress.
func (s *Simulator) CheckSuiteRerun(repo, sha string, app int64, sender string) (CheckSuiteOptions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strconv.FormatInt(app, 10) + ":" + repoKey(repo) + "@" + strings.ToLower(sha)
	su := s.checks.suites[k]
	if su == nil {
		return CheckSuiteOptions{}, fmt.Errorf("github simulator: App %d has no check suite on %s in %s", app, sha, repo)
	}
	// GitHub's timestamps have whole seconds; each request moves it on.
	now := time.Now().UTC().Truncate(time.Second)
	if !now.After(su.updated) {
		now = su.updated.Add(time.Second)
	}
	su.updated = now
	return CheckSuiteOptions{Action: "rerequested", Repo: repo, ID: su.id, AppID: app, HeadSHA: sha, UpdatedAt: now, Sender: sender}, nil
}
