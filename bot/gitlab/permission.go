package gitlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
)

// GetPermission returns user's permission on repo: it finds the user by
// username (GET /users?username=…), then their membership including
// inherited group membership (GET /projects/:id/members/all/:user_id),
// and maps its access level onto GitHub's vocabulary with
// accessPermission. An unknown user or a 404 for the membership is
// PermissionNone with no error.
func (c *Client) GetPermission(ctx context.Context, repo bot.Repo, user string) (bot.Permission, error) {
	if user == "" {
		return "", errors.New("gitlab: permission of an empty username")
	}
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return "", err
	}
	var id int64
	if n, ok := strings.CutPrefix(user, "id:"); ok {
		// Webhooks name a merge request's author only by id, which the
		// members API takes directly.
		if id, err = strconv.ParseInt(n, 10, 64); err != nil || id <= 0 {
			return "", fmt.Errorf("gitlab: bad user id %q", user)
		}
	} else {
		users, resp, err := c.api.Users.ListUsers(&gl.ListUsersOptions{Username: gl.Ptr(user)}, gl.WithContext(ctx))
		if err != nil {
			return "", apiError(http.MethodGet, "/users", resp, err)
		}
		for _, u := range users {
			// GitLab matches usernames case-insensitively.
			if u != nil && strings.EqualFold(u.Username, user) {
				id = u.ID
				break
			}
		}
	}
	if id == 0 {
		return bot.PermissionNone, nil
	}
	m, resp, err := c.api.ProjectMembers.GetInheritedProjectMember(pid, id, gl.WithContext(ctx))
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return bot.PermissionNone, nil
		}
		return "", apiError(http.MethodGet, "/projects/"+pidPath+"/members/all/"+strconv.FormatInt(id, 10), resp, err)
	}
	return accessPermission(m.AccessLevel), nil
}

// accessPermission maps a GitLab access level onto a bot.Permission:
// no access and Minimal access (5) are none, Guest (10), Planner (15) and
// Reporter (20) read, Developer (30) write, Maintainer (40) maintain, and
// Owner (50) admin. Levels GitLab may add in between count as the
// highest of these they reach.
func accessPermission(level gl.AccessLevelValue) bot.Permission {
	switch {
	case level >= gl.OwnerPermissions:
		return bot.PermissionAdmin
	case level >= gl.MaintainerPermissions:
		return bot.PermissionMaintain
	case level >= gl.DeveloperPermissions:
		return bot.PermissionWrite
	case level >= gl.GuestPermissions:
		return bot.PermissionRead
	}
	return bot.PermissionNone
}

// awardNames maps GitHub's reaction names, which CreateReaction takes,
// onto GitLab's award emoji names.
var awardNames = map[string]string{
	"eyes":     "eyes",
	"+1":       "thumbsup",
	"-1":       "thumbsdown",
	"rocket":   "rocket",
	"confused": "confused",
	"heart":    "heart",
	"hooray":   "tada",
	"laugh":    "laughing",
}

// CreateReaction awards an emoji to note commentID on merge request
// number (POST /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji).
// emoji is one of GitHub's reaction names (eyes, +1, -1, rocket, confused,
// heart, hooray, laugh), mapped onto GitLab's award names (+1 is thumbsup,
// hooray tada, laugh laughing …). Awarding the same emoji again succeeds:
// GitLab refuses it with a 404 saying the name "has already been taken",
// which counts as done.
func (c *Client) CreateReaction(ctx context.Context, repo bot.Repo, number int, commentID int64, emoji string) error {
	name, ok := awardNames[emoji]
	if !ok {
		return fmt.Errorf("gitlab: unknown reaction %q", emoji)
	}
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return err
	}
	var notFoundBody []byte
	_, resp, err := c.api.AwardEmoji.CreateMergeRequestAwardEmojiOnNote(pid, int64(number), commentID,
		&gl.CreateAwardEmojiOptions{Name: name}, gl.WithContext(ctx), keepNotFoundBody(&notFoundBody))
	if err == nil {
		return nil
	}
	apiErr := apiError(http.MethodPost,
		notesPath(pidPath, number)+"/"+strconv.FormatInt(commentID, 10)+"/award_emoji", resp, err)
	var he *bot.HostError
	if !errors.As(apiErr, &he) {
		return apiErr
	}
	if he.StatusCode == http.StatusNotFound && len(notFoundBody) > 0 {
		// "404 Note Not Found" says more than gl's bare "404 Not Found".
		he.Message = errorMessage(&gl.ErrorResponse{Body: notFoundBody})
	}
	if (he.StatusCode == http.StatusNotFound || he.StatusCode == http.StatusBadRequest) &&
		strings.Contains(he.Message, "has already been taken") {
		return nil
	}
	return apiErr
}

// keepNotFoundBody returns a request option that stores the body of a 404
// answer in *body: gl discards it unread, yet it is the only thing telling
// an award that already exists from a note that does not. It hooks the
// per-request retry check, which sees the response before gl does, and
// never asks for a retry, as the client is configured without retries.
func keepNotFoundBody(body *[]byte) gl.RequestOptionFunc {
	return gl.WithRequestRetry(func(_ context.Context, resp *http.Response, _ error) (bool, error) {
		if resp != nil && resp.StatusCode == http.StatusNotFound && resp.Body != nil {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(data))
			*body = data
		}
		return false, nil
	})
}
