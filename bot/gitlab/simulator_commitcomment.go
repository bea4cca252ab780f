package gitlab

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// CommitComment is a comment on a commit as the simulator holds it, in
// GitLab's JSON shape.
type CommitComment struct {
	Note   string `json:"note"`
	Path   any    `json:"path"`
	Line   any    `json:"line"`
	Author User   `json:"author"`
}

// CommitComments returns the comments on commit sha of the project at
// path, oldest first.
func (s *Simulator) CommitComments(projectPath, sha string) []CommitComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPath[strings.ToLower(projectPath)]
	if p == nil {
		return nil
	}
	return append([]CommitComment(nil), p.commitComments[sha]...)
}

// createCommitComment serves POST
// /projects/:id/repository/commits/:sha/comments, whose text is "note".
func (s *Simulator) createCommitComment(rq *simRequest, p *simProject, sha string) {
	note, ok := rq.params["note"]
	if !ok || note == "" {
		writeJSON(rq.w, http.StatusBadRequest, map[string]string{"error": "note is missing"})
		return
	}
	if utf8.RuneCountInString(note) > MaxNoteLength {
		writeJSON(rq.w, http.StatusBadRequest, map[string]any{
			"message": map[string][]string{"note": {fmt.Sprintf("is too long (maximum is %d characters)", MaxNoteLength)}},
		})
		return
	}
	c := CommitComment{Note: note, Author: *s.userLocked(s.BotUsername)}
	if p.commitComments == nil {
		p.commitComments = map[string][]CommitComment{}
	}
	p.commitComments[sha] = append(p.commitComments[sha], c)
	writeJSON(rq.w, http.StatusCreated, c)
}
