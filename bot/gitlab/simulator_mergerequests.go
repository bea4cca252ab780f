package gitlab

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The simulator's branches and merge requests, which the reconciler lists:
// GET /projects/:id/merge_requests and GET
// /projects/:id/repository/branches/:branch.

// MergeRequestSpec is a merge request as OpenMergeRequest creates it.
type MergeRequestSpec struct {
	IID          int
	Title        string
	SourceBranch string
	// TargetBranch is where it merges; empty means "main".
	TargetBranch string
	// SHA is the source branch's head commit.
	SHA string
	// SourceProjectID is the fork the source branch lives in; 0 for the
	// project itself.
	SourceProjectID int64
	// Author is the author's username.
	Author string
	Draft  bool
	// State is opened, closed or merged; OpenMergeRequest sets opened.
	State     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SetBranch points branch of project path at sha, as a push would.
func (s *Simulator) SetBranch(path, branch, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(path)]
	if p == nil {
		return
	}
	if p.branches == nil {
		p.branches = map[string]string{}
	}
	p.branches[branch] = sha
}

// OpenMergeRequest opens mr on project path (added with AddProject),
// without delivering any webhook. Opening an iid again replaces it, as a
// push to its source branch would move it.
func (s *Simulator) OpenMergeRequest(path string, mr MergeRequestSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(path)]
	if p == nil {
		return
	}
	if mr.TargetBranch == "" {
		mr.TargetBranch = "main"
	}
	if mr.State == "" {
		mr.State = "opened"
	}
	if mr.Title == "" {
		mr.Title = "Merge request"
	}
	if mr.SourceProjectID == 0 {
		mr.SourceProjectID = p.id
	}
	now := s.now().UTC()
	if mr.CreatedAt.IsZero() {
		mr.CreatedAt = now
	}
	if mr.UpdatedAt.IsZero() {
		mr.UpdatedAt = now
	}
	s.userLocked(mr.Author)
	for i, m := range p.mrs {
		if m.IID == mr.IID {
			p.mrs[i] = &mr
			return
		}
	}
	p.mrs = append(p.mrs, &mr)
}

// CloseMergeRequest closes merge request iid of project path.
func (s *Simulator) CloseMergeRequest(path string, iid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.byPath[strings.ToLower(path)]; p != nil {
		for _, m := range p.mrs {
			if m.IID == iid {
				m.State, m.UpdatedAt = "closed", s.now().UTC()
			}
		}
	}
}

// listMergeRequests answers GET /projects/:id/merge_requests: state
// opened, closed, merged or all (the default), newest first (by iid, which
// follows creation).
func (s *Simulator) listMergeRequests(rq *simRequest, p *simProject) {
	state := rq.params["state"]
	if state == "" {
		state = "all"
	}
	if !slices.Contains([]string{"opened", "closed", "merged", "locked", "all"}, state) {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "state does not have a valid value"})
		return
	}
	var mrs []*MergeRequestSpec
	for _, m := range p.mrs {
		if state == "all" || m.State == state {
			mrs = append(mrs, m)
		}
	}
	sort.SliceStable(mrs, func(i, j int) bool { return mrs[i].IID > mrs[j].IID })
	start, end := paginate(rq.w, rq.r, len(mrs))
	out := []map[string]any{}
	for _, m := range mrs[start:end] {
		author := s.userLocked(m.Author)
		out = append(out, map[string]any{
			"id":                int64(m.IID) + p.id*100_000,
			"iid":               m.IID,
			"project_id":        p.id,
			"title":             m.Title,
			"state":             m.State,
			"created_at":        m.CreatedAt.Format(time.RFC3339Nano),
			"updated_at":        m.UpdatedAt.Format(time.RFC3339Nano),
			"target_branch":     m.TargetBranch,
			"source_branch":     m.SourceBranch,
			"source_project_id": m.SourceProjectID,
			"target_project_id": p.id,
			"author":            author,
			"draft":             m.Draft,
			"work_in_progress":  m.Draft,
			"sha":               m.SHA,
			"merge_status":      "can_be_merged",
			"web_url":           baseURL(rq.r) + "/" + p.path + "/-/merge_requests/" + strconv.Itoa(m.IID),
		})
	}
	writeJSON(rq.w, http.StatusOK, out)
}

// getBranch answers GET /projects/:id/repository/branches/:branch.
func (s *Simulator) getBranch(rq *simRequest, p *simProject, branch string) {
	sha, ok := p.branches[branch]
	if !ok {
		writeJSON(rq.w, http.StatusNotFound, map[string]string{"message": "404 Branch Not Found"})
		return
	}
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"name":      branch,
		"merged":    false,
		"protected": branch == "main",
		"default":   branch == "main",
		"web_url":   baseURL(rq.r) + "/" + p.path + "/-/tree/" + branch,
		"commit":    map[string]any{"id": sha, "short_id": sha[:min(8, len(sha))]},
	})
}
