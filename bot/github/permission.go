package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// GetPermission returns user's permission on repo
// (GET /repos/{owner}/{repo}/collaborators/{username}/permission). The
// role_name GitHub reports is used when it is a built-in role, as it tells
// maintain and triage apart where the legacy permission field says write
// and read; a custom role counts as the base permission GitHub reports for
// it. A 404, which GitHub answers for an unknown user or one who may not
// see the repository, is PermissionNone with no error.
func (c *Client) GetPermission(ctx context.Context, repo bot.Repo, user string) (bot.Permission, error) {
	if user == "" {
		return "", errors.New("github: permission of an empty user name")
	}
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return "", err
	}
	path := fmt.Sprintf("repos/%s/%s/collaborators/%s/permission", owner, name, url.PathEscape(user))
	// go-github v60's RepositoryPermissionLevel has no role_name, so the
	// answer is decoded here.
	req, err := cl.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return "", fmt.Errorf("github: %s %s: %w", http.MethodGet, path, err)
	}
	var level struct {
		Permission string `json:"permission"`
		RoleName   string `json:"role_name"`
	}
	resp, err := cl.Do(ctx, req, &level)
	if err != nil {
		var er *gh.ErrorResponse
		if resp != nil && resp.StatusCode == http.StatusNotFound && errors.As(err, &er) {
			return bot.PermissionNone, nil
		}
		c.forgetOn401(resp, owner, name)
		return "", c.wrap(http.MethodGet, path, err)
	}
	return permission(level.RoleName, level.Permission)
}

// permission maps GitHub's role_name and legacy permission fields onto a
// bot.Permission.
func permission(roleName, legacy string) (bot.Permission, error) {
	switch p := bot.Permission(roleName); p {
	case bot.PermissionAdmin, bot.PermissionMaintain, bot.PermissionWrite, bot.PermissionTriage, bot.PermissionRead:
		return p, nil
	}
	// A custom role (or none, or an older GitHub Enterprise Server without
	// role_name): the legacy field carries its base role.
	p, err := bot.ParsePermission(legacy)
	if err != nil || legacy == "" {
		return "", fmt.Errorf("github: collaborator permission %q (role %q) is not one mlbot knows", legacy, roleName)
	}
	return p, nil
}

// reactions are the reaction contents GitHub accepts.
var reactions = []string{"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}

// CreateReaction reacts to issue comment commentID with emoji, one of
// GitHub's reaction names: +1, -1, laugh, confused, heart, hooray, rocket
// or eyes (POST /repos/{owner}/{repo}/issues/comments/{id}/reactions).
// Reacting again the same way succeeds: GitHub then answers 200 with the
// existing reaction instead of 201. GitHub addresses issue comments by id
// alone, so number is not used.
func (c *Client) CreateReaction(ctx context.Context, repo bot.Repo, _ int, commentID int64, emoji string) error {
	if !slices.Contains(reactions, emoji) {
		return fmt.Errorf("github: unknown reaction %q", emoji)
	}
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return err
	}
	_, resp, err := cl.Reactions.CreateIssueCommentReaction(ctx, owner, name, commentID, emoji)
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return c.wrap(http.MethodPost, fmt.Sprintf("repos/%s/%s/issues/comments/%d/reactions", owner, name, commentID), err)
	}
	return nil
}
