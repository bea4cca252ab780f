package gitlab

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Deployment is a deployment as the simulator holds it now. Statuses
// lists every status it had, oldest first, starting with the one it was
// created with.
type Deployment struct {
	ID          int64
	IID         int64
	Environment string
	Ref         string
	SHA         string
	Tag         bool
	Status      string
	Statuses    []string
	User        User
	CreatedAt   time.Time
	UpdatedAt   time.Time
	FinishedAt  *time.Time
}

// simEnvironment is an environment, created by its first deployment.
type simEnvironment struct {
	id        int64
	name      string
	createdAt time.Time
}

// deploymentStatuses are the statuses the create and update endpoints
// accept; deploymentFilterStatuses those the list endpoint filters by.
var (
	deploymentStatuses       = []string{"running", "success", "failed", "canceled"}
	deploymentFilterStatuses = []string{"created", "running", "success", "failed", "canceled", "skipped", "blocked"}
)

// deploymentEvent is the state-machine event GitLab fires to move a
// deployment to each status, and the statuses it may fire from: run only
// from created or blocked, the others from any status but their own.
var deploymentEvent = map[string]struct {
	event string
	from  func(string) bool
}{
	"running":  {"run", func(s string) bool { return s == "created" || s == "blocked" }},
	"success":  {"succeed", func(s string) bool { return s != "success" }},
	"failed":   {"drop", func(s string) bool { return s != "failed" }},
	"canceled": {"cancel", func(s string) bool { return s != "canceled" }},
}

// Deployments returns the deployments of the project at path, oldest
// first, each in its current status.
func (s *Simulator) Deployments(projectPath string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(projectPath)]
	if p == nil {
		return nil
	}
	out := make([]Deployment, 0, len(p.deployments))
	for _, d := range p.deployments {
		c := *d
		c.Statuses = slices.Clone(d.Statuses)
		out = append(out, c)
	}
	return out
}

func (s *Simulator) serveDeployments(rq *simRequest, p *simProject, seg []string) {
	m := rq.r.Method
	switch {
	case len(seg) == 0 && m == http.MethodGet:
		s.listDeployments(rq, p)
	case len(seg) == 0 && m == http.MethodPost:
		s.createDeployment(rq, p)
	case len(seg) == 1 && m == http.MethodGet:
		if _, err := strconv.ParseInt(seg[0], 10, 64); err != nil {
			writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "deployment_id is invalid"})
			return
		}
		if d := findDeployment(rq, p, seg[0]); d != nil {
			writeJSON(rq.w, http.StatusOK, s.deploymentJSON(rq.r, p, d))
		}
	case len(seg) == 1 && m == http.MethodPut:
		s.updateDeployment(rq, p, seg[0])
	default:
		notFound(rq.w)
	}
}

// findDeployment returns deployment id of p, answering GitLab's 404 when
// there is none.
func findDeployment(rq *simRequest, p *simProject, id string) *Deployment {
	n, err := strconv.ParseInt(id, 10, 64)
	if err == nil {
		for _, d := range p.deployments {
			if d.ID == n {
				return d
			}
		}
	}
	writeJSON(rq.w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
	return nil
}

// missingParams answers Grape's 400 for required parameters that are
// absent, naming them all as Grape does, and returns false then.
func missingParams(rq *simRequest, names ...string) bool {
	var missing []string
	for _, n := range names {
		if _, ok := rq.params[n]; !ok {
			missing = append(missing, n+" is missing")
		}
	}
	if len(missing) > 0 {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": strings.Join(missing, ", ")})
		return false
	}
	return true
}

func (s *Simulator) createDeployment(rq *simRequest, p *simProject) {
	if !missingParams(rq, "environment", "sha", "ref", "tag", "status") {
		return
	}
	params := rq.params
	var invalid []string
	tag, err := strconv.ParseBool(params["tag"])
	if err != nil {
		invalid = append(invalid, "tag is invalid")
	}
	if !slices.Contains(deploymentStatuses, params["status"]) {
		invalid = append(invalid, "status does not have a valid value")
	}
	if len(invalid) > 0 {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": strings.Join(invalid, ", ")})
		return
	}
	// The simulator knows no branches, so only an empty ref names none.
	if params["ref"] == "" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"ref": {"The branch or tag does not exist"}}})
		return
	}
	if params["environment"] == "" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"name": {"can't be blank"}}})
		return
	}
	if params["sha"] == "" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"sha": {"can't be blank"}}})
		return
	}
	now := s.now().UTC()
	env := s.environmentLocked(p, params["environment"], now)
	d := &Deployment{
		ID:          s.newIDLocked(),
		IID:         int64(len(p.deployments) + 1),
		Environment: env.name,
		Ref:         params["ref"],
		SHA:         params["sha"],
		Tag:         tag,
		Status:      params["status"],
		Statuses:    []string{params["status"]},
		User:        *s.userLocked(s.BotUsername),
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if d.Status != "running" {
		d.FinishedAt = &now
	}
	p.deployments = append(p.deployments, d)
	writeJSON(rq.w, http.StatusCreated, s.deploymentJSON(rq.r, p, d))
}

func (s *Simulator) environmentLocked(p *simProject, name string, now time.Time) *simEnvironment {
	for _, e := range p.environments {
		if e.name == name {
			return e
		}
	}
	e := &simEnvironment{id: s.newIDLocked(), name: name, createdAt: now}
	p.environments = append(p.environments, e)
	return e
}

// updateDeployment moves a deployment to a new status, refusing with a
// 400 what GitLab's state machine refuses (running to running, success to
// success …).
func (s *Simulator) updateDeployment(rq *simRequest, p *simProject, id string) {
	if !missingParams(rq, "status") {
		return
	}
	status := rq.params["status"]
	if !slices.Contains(deploymentStatuses, status) {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "status does not have a valid value"})
		return
	}
	d := findDeployment(rq, p, id)
	if d == nil {
		return
	}
	ev := deploymentEvent[status]
	if !ev.from(d.Status) {
		writeJSON(rq.w, http.StatusBadRequest, map[string]any{"message": map[string][]string{
			"status": {fmt.Sprintf("cannot transition via %q", ev.event)},
		}})
		return
	}
	now := s.now().UTC()
	d.Status, d.UpdatedAt = status, now
	d.Statuses = append(d.Statuses, status)
	if status != "running" {
		d.FinishedAt = &now
	}
	writeJSON(rq.w, http.StatusOK, s.deploymentJSON(rq.r, p, d))
}

// listDeployments lists deployments filtered by environment and status,
// ordered by order_by (id by default) and sort (asc by default).
func (s *Simulator) listDeployments(rq *simRequest, p *simProject) {
	params := rq.params
	if st, ok := params["status"]; ok && !slices.Contains(deploymentFilterStatuses, st) {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "status does not have a valid value"})
		return
	}
	orderBy := cmp.Or(params["order_by"], "id")
	if !slices.Contains([]string{"id", "iid", "created_at", "updated_at", "finished_at", "ref"}, orderBy) {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "order_by does not have a valid value"})
		return
	}
	sortDir := cmp.Or(params["sort"], "asc")
	if sortDir != "asc" && sortDir != "desc" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "sort does not have a valid value"})
		return
	}
	var list []*Deployment
	for _, d := range p.deployments {
		if env, ok := params["environment"]; ok && d.Environment != env {
			continue
		}
		if st, ok := params["status"]; ok && d.Status != st {
			continue
		}
		list = append(list, d)
	}
	slices.SortStableFunc(list, func(a, b *Deployment) int {
		c := 0
		switch orderBy {
		case "updated_at":
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		case "ref":
			c = strings.Compare(a.Ref, b.Ref)
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if sortDir == "desc" {
			c = -c
		}
		return c
	})
	start, end := paginate(rq.w, rq.r, len(list))
	out := []map[string]any{}
	for _, d := range list[start:end] {
		out = append(out, s.deploymentJSON(rq.r, p, d))
	}
	writeJSON(rq.w, http.StatusOK, out)
}

func (s *Simulator) deploymentJSON(r *http.Request, p *simProject, d *Deployment) map[string]any {
	env := map[string]any{"name": d.Environment}
	for _, e := range p.environments {
		if e.name == d.Environment {
			env = map[string]any{
				"id":           e.id,
				"name":         e.name,
				"slug":         envSlug(e.name),
				"external_url": nil,
				"state":        "available",
				"tier":         envTier(e.name),
				"created_at":   e.createdAt,
				"updated_at":   e.createdAt,
			}
		}
	}
	return map[string]any{
		"id":          d.ID,
		"iid":         d.IID,
		"ref":         d.Ref,
		"sha":         d.SHA,
		"status":      d.Status,
		"created_at":  d.CreatedAt,
		"updated_at":  d.UpdatedAt,
		"finished_at": d.FinishedAt,
		"user": map[string]any{
			"id": d.User.ID, "username": d.User.Username, "name": d.User.Name,
			"state": d.User.State, "avatar_url": d.User.AvatarURL, "web_url": d.User.WebURL,
		},
		"environment": env,
		"deployable":  nil,
		"approvals":   []any{},
	}
}

// envSlug approximates GitLab's environment slug: lower case, runs of
// other characters as one dash.
func envSlug(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// envTier guesses the tier from the name roughly as GitLab does for
// environments created without one.
func envTier(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "dev") || strings.Contains(n, "review"):
		return "development"
	case strings.Contains(n, "test") || strings.Contains(n, "qa"):
		return "testing"
	case strings.Contains(n, "stag") || strings.Contains(n, "pre"):
		return "staging"
	case strings.Contains(n, "prod") || strings.Contains(n, "live"):
		return "production"
	}
	return "other"
}
