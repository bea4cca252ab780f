package github

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CommitComment is a comment on a commit as the simulator holds it.
type CommitComment struct {
	ID        int64
	Repo      string
	SHA       string
	User      string
	Body      string
	CreatedAt time.Time
}

// CommitComments returns the comments on commit sha of repo, oldest first.
func (s *Simulator) CommitComments(repo, sha string) []CommitComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CommitComment(nil), s.commitComments[repoKey(repo)+"@"+sha]...)
}

// createCommitComment serves POST /repos/{owner}/{repo}/commits/{sha}/comments.
func (s *Simulator) createCommitComment(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	repo, sha := r.PathValue("owner")+"/"+r.PathValue("repo"), r.PathValue("sha")
	s.mu.Lock()
	s.nextID++
	c := CommitComment{ID: s.nextID, Repo: repo, SHA: sha, User: s.BotLogin, Body: body, CreatedAt: time.Now().UTC()}
	if s.commitComments == nil {
		s.commitComments = map[string][]CommitComment{}
	}
	k := repoKey(repo) + "@" + sha
	s.commitComments[k] = append(s.commitComments[k], c)
	s.mu.Unlock()
	id := strconv.FormatInt(c.ID, 10)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id":         c.ID,
		"node_id":    "CC_" + id,
		"url":        baseURL(r) + "/repos/" + repo + "/comments/" + id,
		"html_url":   fmt.Sprintf("%s/%s/commit/%s#commitcomment-%s", strings.TrimSuffix(s.WebURL, "/"), repo, sha, id),
		"commit_id":  sha,
		"body":       c.Body,
		"user":       map[string]any{"login": c.User, "type": userType(c.User)},
		"created_at": c.CreatedAt.Format(time.RFC3339),
		"updated_at": c.CreatedAt.Format(time.RFC3339),
	})
}
