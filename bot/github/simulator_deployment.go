package github

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Deployment is a deployment as the simulator holds it now, with every
// status it was given, oldest first.
type Deployment struct {
	ID          int64
	Repo        string
	Environment string
	// Ref is the ref the deployment was requested for; SHA the commit it
	// resolved to (the same when a SHA was requested).
	Ref         string
	SHA         string
	Task        string
	Description string
	Production  bool
	Transient   bool
	Creator     string
	CreatedAt   time.Time
	Statuses    []DeploymentStatus
}

// DeploymentStatus is one status of a deployment. AutoInactive marks the
// inactive statuses GitHub added itself when a newer deployment of the
// environment succeeded with auto_inactive on.
type DeploymentStatus struct {
	ID             int64
	State          string
	LogURL         string
	EnvironmentURL string
	Description    string
	Creator        string
	AutoInactive   bool
	CreatedAt      time.Time
}

// deploymentStore holds the simulator's deployments. Guarded by
// Simulator.mu.
type deploymentStore struct {
	byID     map[int64]*Deployment
	branches map[string]string // repoKey+":"+branch → sha
}

func newDeploymentStore() *deploymentStore {
	return &deploymentStore{byID: map[int64]*Deployment{}, branches: map[string]string{}}
}

// The states a deployment status may have.
var validDeploymentStates = []string{"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}

const (
	deploymentsDoc       = "https://docs.github.com/rest/deployments/deployments#create-a-deployment"
	deploymentStatusDoc  = "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status"
	deploymentStatusesOK = "https://docs.github.com/rest/deployments/statuses#list-deployment-statuses"
)

func (s *Simulator) deploymentRoutes() {
	s.route("POST /repos/{owner}/{repo}/deployments", authToken, s.createDeployment)
	s.route("GET /repos/{owner}/{repo}/deployments", authToken, s.listDeployments)
	s.route("GET /repos/{owner}/{repo}/deployments/{id}", authToken, s.getDeployment)
	s.route("POST /repos/{owner}/{repo}/deployments/{id}/statuses", authToken, s.createDeploymentStatus)
	s.route("GET /repos/{owner}/{repo}/deployments/{id}/statuses", authToken, s.listDeploymentStatuses)
}

// SetBranch makes branch a ref of repo pointing at sha, as a push would:
// deployments may name it, GET /repos/{owner}/{repo}/branches/{branch}
// returns it, and pull requests into it list it as their base. Any
// 40-hex-digit SHA is a valid ref without this.
func (s *Simulator) SetBranch(repo, branch, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deploys.branches[repoKey(repo)+":"+branch] = sha
}

// Deployments returns the deployments of repo, oldest first, each with
// its statuses in the order they were set.
func (s *Simulator) Deployments(repo string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Deployment
	for _, d := range s.repoDeployments(repo) {
		out = append(out, copyDeployment(d))
	}
	return out
}

func copyDeployment(d *Deployment) Deployment {
	c := *d
	c.Statuses = slices.Clone(d.Statuses)
	return c
}

// repoDeployments returns repo's deployments by ascending id. Callers
// hold s.mu.
func (s *Simulator) repoDeployments(repo string) []*Deployment {
	var out []*Deployment
	for _, d := range s.deploys.byID {
		if repoKey(d.Repo) == repoKey(repo) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *Deployment) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func isSHA(ref string) bool {
	if len(ref) != 40 {
		return false
	}
	for _, c := range ref {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

func (s *Simulator) createDeployment(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Ref                   *string   `json:"ref"`
		Task                  *string   `json:"task"`
		AutoMerge             *bool     `json:"auto_merge"`
		RequiredContexts      *[]string `json:"required_contexts"`
		Payload               any       `json:"payload"`
		Environment           *string   `json:"environment"`
		Description           *string   `json:"description"`
		TransientEnvironment  *bool     `json:"transient_environment"`
		ProductionEnvironment *bool     `json:"production_environment"`
	}
	if !decodeJSON(w, r, &in) {
		return
	}
	if in.Ref == nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"ref\" wasn't supplied.", deploymentsDoc)
		return
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	ref := *in.Ref

	s.mu.Lock()
	sha, ok := s.deploys.branches[repoKey(repo)+":"+ref]
	if !ok && isSHA(ref) {
		sha, ok = strings.ToLower(ref), true
	}
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, "No ref found for: "+ref, deploymentsDoc)
		return
	}
	// Without required_contexts every context set on the commit must be
	// success; with it, the contexts it names must be, present or not.
	latest := map[string]string{}
	var contexts []string
	for _, st := range s.statuses[repoKey(repo)+"@"+sha] {
		if _, seen := latest[st.Context]; !seen {
			contexts = append(contexts, st.Context)
		}
		latest[st.Context] = st.State
	}
	if in.RequiredContexts != nil {
		contexts = *in.RequiredContexts
	}
	var failed []map[string]string
	for _, ctx := range contexts {
		if state := latest[ctx]; state != "success" {
			if state == "" {
				state = "missing"
			}
			failed = append(failed, map[string]string{"context": ctx, "state": state})
		}
	}
	if len(failed) > 0 {
		s.mu.Unlock()
		writeJSON(w, http.StatusConflict, map[string]any{
			"message":           "Conflict: Commit status checks failed for " + ref + ".",
			"errors":            []map[string]any{{"contexts": failed, "resource": "Deployment", "field": "required_contexts", "code": "invalid"}},
			"documentation_url": deploymentsDoc,
			"status":            "409",
		})
		return
	}
	d := &Deployment{
		Repo:        repo,
		Environment: deref(in.Environment, "production"),
		Ref:         ref,
		SHA:         sha,
		Task:        deref(in.Task, "deploy"),
		Description: deref(in.Description, ""),
		Creator:     s.BotLogin,
		CreatedAt:   time.Now().UTC(),
	}
	d.Production = d.Environment == "production"
	if in.ProductionEnvironment != nil {
		d.Production = *in.ProductionEnvironment
	}
	if in.TransientEnvironment != nil {
		d.Transient = *in.TransientEnvironment
	}
	s.nextID++
	d.ID = s.nextID
	s.deploys.byID[d.ID] = d
	out := s.deploymentJSON(r, d)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// decodeJSON decodes the request body into v, answering GitHub's 400 for
// malformed JSON and its 422 for a value of the wrong type.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		writeError(w, http.StatusUnprocessableEntity,
			fmt.Sprintf("Invalid request.\n\nFor 'properties/%s', value is not of type %s.", te.Field, te.Type), simDocs)
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", simDocs)
		return false
	}
	return true
}

// deployment finds deployment id of the request's repository, answering
// 404 when there is none. Callers hold s.mu.
func (s *Simulator) deployment(w http.ResponseWriter, r *http.Request) *Deployment {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	d := s.deploys.byID[id]
	if err != nil || d == nil || repoKey(d.Repo) != repoKey(r.PathValue("owner")+"/"+r.PathValue("repo")) {
		writeError(w, http.StatusNotFound, "Not Found", deploymentStatusesOK)
		return nil
	}
	return d
}

func (s *Simulator) getDeployment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.deployment(w, r)
	if d == nil {
		s.mu.Unlock()
		return
	}
	out := s.deploymentJSON(r, d)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// listDeployments lists deployments newest first, filtered by sha, ref,
// task and environment as GitHub does.
func (s *Simulator) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	all := s.repoDeployments(r.PathValue("owner") + "/" + r.PathValue("repo"))
	var match []*Deployment
	for i := len(all) - 1; i >= 0; i-- {
		d := all[i]
		if (q.Has("sha") && q.Get("sha") != d.SHA) || (q.Has("ref") && q.Get("ref") != d.Ref) ||
			(q.Has("task") && q.Get("task") != d.Task) || (q.Has("environment") && q.Get("environment") != d.Environment) {
			continue
		}
		match = append(match, d)
	}
	lo, hi, ok := paginate(w, r, len(match))
	out := []map[string]any{}
	if ok {
		for _, d := range match[lo:hi] {
			out = append(out, s.deploymentJSON(r, d))
		}
	}
	s.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Simulator) createDeploymentStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	found := s.deployment(w, r) != nil
	s.mu.Unlock()
	if !found {
		return
	}
	var in struct {
		State          string  `json:"state"`
		TargetURL      *string `json:"target_url"`
		LogURL         *string `json:"log_url"`
		Description    *string `json:"description"`
		Environment    *string `json:"environment"`
		EnvironmentURL *string `json:"environment_url"`
		AutoInactive   *bool   `json:"auto_inactive"`
	}
	if !decodeJSON(w, r, &in) {
		return
	}
	if !slices.Contains(validDeploymentStates, in.State) {
		writeValidation(w, "DeploymentStatus", "state", "custom", "state is not included in the list", deploymentStatusDoc)
		return
	}
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > MaxStatusDescription {
		writeValidation(w, "DeploymentStatus", "description", "custom", "description is too long (maximum is 140 characters)", deploymentStatusDoc)
		return
	}
	st := DeploymentStatus{
		State:          in.State,
		LogURL:         deref(in.LogURL, deref(in.TargetURL, "")), // target_url is log_url's legacy name
		EnvironmentURL: deref(in.EnvironmentURL, ""),
		Description:    deref(in.Description, ""),
		CreatedAt:      time.Now().UTC(),
	}
	s.mu.Lock()
	d := s.deployment(w, r)
	if d == nil { // cannot happen: deployments are never deleted
		s.mu.Unlock()
		return
	}
	if in.Environment != nil && *in.Environment != "" {
		d.Environment = *in.Environment
	}
	st.Creator = s.BotLogin
	s.nextID++
	st.ID = s.nextID
	d.Statuses = append(d.Statuses, st)
	// auto_inactive (on by default) marks the prior non-transient,
	// non-production deployments of the environment that had succeeded.
	if in.State == "success" && deref(in.AutoInactive, true) {
		for _, old := range s.repoDeployments(d.Repo) {
			if old.ID >= d.ID || old.Environment != d.Environment || old.Transient || old.Production ||
				len(old.Statuses) == 0 || old.Statuses[len(old.Statuses)-1].State != "success" {
				continue
			}
			s.nextID++
			old.Statuses = append(old.Statuses, DeploymentStatus{ID: s.nextID, State: "inactive", Creator: s.BotLogin, AutoInactive: true, CreatedAt: st.CreatedAt})
		}
	}
	out := s.deploymentStatusJSON(r, d, st)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// listDeploymentStatuses lists a deployment's statuses newest first.
func (s *Simulator) listDeploymentStatuses(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.deployment(w, r)
	if d == nil {
		s.mu.Unlock()
		return
	}
	lo, hi, ok := paginate(w, r, len(d.Statuses))
	out := []map[string]any{}
	if ok {
		for i := lo; i < hi; i++ {
			out = append(out, s.deploymentStatusJSON(r, d, d.Statuses[len(d.Statuses)-1-i]))
		}
	}
	s.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Simulator) deploymentJSON(r *http.Request, d *Deployment) map[string]any {
	api := baseURL(r) + "/repos/" + d.Repo
	id := strconv.FormatInt(d.ID, 10)
	updated := d.CreatedAt
	if n := len(d.Statuses); n > 0 {
		updated = d.Statuses[n-1].CreatedAt
	}
	return map[string]any{
		"url":                    api + "/deployments/" + id,
		"id":                     d.ID,
		"node_id":                "DE_" + id,
		"sha":                    d.SHA,
		"ref":                    d.Ref,
		"task":                   d.Task,
		"payload":                map[string]any{},
		"original_environment":   d.Environment,
		"environment":            d.Environment,
		"description":            nullable(d.Description),
		"creator":                map[string]any{"login": d.Creator, "type": userType(d.Creator)},
		"created_at":             d.CreatedAt.Format(time.RFC3339),
		"updated_at":             updated.Format(time.RFC3339),
		"statuses_url":           api + "/deployments/" + id + "/statuses",
		"repository_url":         api,
		"transient_environment":  d.Transient,
		"production_environment": d.Production,
	}
}

func (s *Simulator) deploymentStatusJSON(r *http.Request, d *Deployment, st DeploymentStatus) map[string]any {
	api := baseURL(r) + "/repos/" + d.Repo
	dep := api + "/deployments/" + strconv.FormatInt(d.ID, 10)
	return map[string]any{
		"url":             dep + "/statuses/" + strconv.FormatInt(st.ID, 10),
		"id":              st.ID,
		"node_id":         "DES_" + strconv.FormatInt(st.ID, 10),
		"state":           st.State,
		"creator":         map[string]any{"login": st.Creator, "type": userType(st.Creator)},
		"description":     st.Description,
		"environment":     d.Environment,
		"target_url":      st.LogURL,
		"log_url":         st.LogURL,
		"environment_url": st.EnvironmentURL,
		"created_at":      st.CreatedAt.Format(time.RFC3339),
		"updated_at":      st.CreatedAt.Format(time.RFC3339),
		"deployment_url":  dep,
		"repository_url":  api,
	}
}
