package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// CreateDeployment records a deployment of d.SHA to d.Environment
// (POST /repos/{owner}/{repo}/deployments) and returns d with the id
// GitHub gave it. The SHA is sent as the ref, so the record names exactly
// the deployed commit; d.Ref is kept in the returned value only.
//
// auto_merge is off, so GitHub never merges the default branch into the
// ref instead of deploying, and required_contexts is empty, so GitHub does
// not refuse the deployment because a commit status on it (mlbot's own,
// say) is pending or failing. Any answer but 201 is an error: GitHub
// answers 202 with a message when it merged instead of deploying, and 409
// when required contexts failed.
func (c *Client) CreateDeployment(ctx context.Context, repo bot.Repo, d bot.Deployment) (bot.Deployment, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return bot.Deployment{}, err
	}
	req := &gh.DeploymentRequest{
		AutoMerge:             gh.Bool(false),
		RequiredContexts:      &[]string{},
		ProductionEnvironment: gh.Bool(d.Production),
		TransientEnvironment:  gh.Bool(false),
	}
	// Empty values are left out so that GitHub, not mlbot, says what is
	// missing (an empty environment would become GitHub's "production").
	if d.SHA != "" {
		req.Ref = gh.String(d.SHA)
	}
	if d.Environment != "" {
		req.Environment = gh.String(d.Environment)
	}
	if d.Description != "" {
		req.Description = gh.String(d.Description)
	}
	path := fmt.Sprintf("repos/%s/%s/deployments", owner, name)
	dep, resp, err := cl.Repositories.CreateDeployment(ctx, owner, name, req)
	var accepted *gh.AcceptedError
	switch {
	case errors.As(err, &accepted):
		// go-github reports a 202 as an error carrying the raw body.
		return bot.Deployment{}, c.unexpected(http.MethodPost, path, http.StatusAccepted, accepted.Raw)
	case err != nil:
		c.forgetOn401(resp, owner, name)
		return bot.Deployment{}, c.wrap(http.MethodPost, path, err)
	case resp.StatusCode != http.StatusCreated:
		return bot.Deployment{}, c.unexpected(http.MethodPost, path, resp.StatusCode, nil)
	case dep.GetID() == 0:
		return bot.Deployment{}, fmt.Errorf("github: %s %s: answer has no deployment id", http.MethodPost, c.baseURL.Path+path)
	}
	out := d
	out.ID = dep.GetID()
	if e := dep.GetEnvironment(); e != "" {
		out.Environment = e
	}
	if sha := dep.GetSHA(); sha != "" {
		out.SHA = sha
	}
	return out, nil
}

// UpdateDeployment adds a status to deployment id
// (POST /repos/{owner}/{repo}/deployments/{id}/statuses). The state is
// sent as given, bot.DeploymentState being GitHub's vocabulary, so GitHub
// itself refuses one it does not know with a 422. The description is cut
// to 140 characters. auto_inactive is off: mlbot marks the deployment a
// new one replaced inactive itself, and GitHub's automatic marking would
// skip production environments anyway.
func (c *Client) UpdateDeployment(ctx context.Context, repo bot.Repo, id int64, st bot.DeploymentStatus) error {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return err
	}
	req := &gh.DeploymentStatusRequest{
		State:        gh.String(string(st.State)),
		AutoInactive: gh.Bool(false),
	}
	if st.LogURL != "" {
		req.LogURL = gh.String(st.LogURL)
	}
	if st.EnvironmentURL != "" {
		req.EnvironmentURL = gh.String(st.EnvironmentURL)
	}
	if st.Description != "" {
		req.Description = gh.String(truncate(st.Description, MaxStatusDescription))
	}
	path := fmt.Sprintf("repos/%s/%s/deployments/%d/statuses", owner, name, id)
	_, resp, err := cl.Repositories.CreateDeploymentStatus(ctx, owner, name, id, req)
	var accepted *gh.AcceptedError
	switch {
	case errors.As(err, &accepted):
		return c.unexpected(http.MethodPost, path, http.StatusAccepted, accepted.Raw)
	case err != nil:
		c.forgetOn401(resp, owner, name)
		return c.wrap(http.MethodPost, path, err)
	case resp.StatusCode != http.StatusCreated:
		return c.unexpected(http.MethodPost, path, resp.StatusCode, nil)
	}
	return nil
}

// unexpected is the error for a 2xx answer that is not the 201 a create
// call expects, with GitHub's message when the body has one.
func (c *Client) unexpected(method, path string, code int, body []byte) error {
	var m struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &m)
	msg := m.Message
	if msg == "" {
		msg = fmt.Sprintf("unexpected %d %s answer", code, http.StatusText(code))
	}
	return &bot.HostError{Forge: ForgeName, Method: method, Path: c.baseURL.Path + path, StatusCode: code, Message: msg}
}
