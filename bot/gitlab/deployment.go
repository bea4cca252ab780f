package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
)

// CreateDeployment records a deployment of d.SHA on branch d.Ref to
// environment d.Environment (POST /projects/:id/deployments, with tag
// false and status running; GitLab creates the environment when it does
// not exist) and returns d with GitLab's deployment id. GitLab requires
// ref to name an existing branch or tag. Empty fields are left out, so
// that GitLab's 400 says which is missing.
func (c *Client) CreateDeployment(ctx context.Context, repo bot.Repo, d bot.Deployment) (bot.Deployment, error) {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return bot.Deployment{}, err
	}
	opt := &gl.CreateProjectDeploymentOptions{
		Tag:    gl.Ptr(false),
		Status: gl.Ptr(gl.DeploymentStatusRunning),
	}
	if d.Environment != "" {
		opt.Environment = gl.Ptr(d.Environment)
	}
	if d.SHA != "" {
		opt.SHA = gl.Ptr(d.SHA)
	}
	if d.Ref != "" {
		opt.Ref = gl.Ptr(d.Ref)
	}
	path := deploymentsPath(pidPath)
	dep, resp, err := c.api.Deployments.CreateProjectDeployment(pid, opt, gl.WithContext(ctx))
	if err != nil {
		return bot.Deployment{}, apiError(http.MethodPost, path, resp, err)
	}
	if dep == nil || dep.ID == 0 {
		return bot.Deployment{}, fmt.Errorf("gitlab API %s %s: answer has no deployment id", http.MethodPost, path)
	}
	out := d
	out.ID = dep.ID
	if dep.Environment != nil && dep.Environment.Name != "" {
		out.Environment = dep.Environment.Name
	}
	return out, nil
}

// glDeploymentStatus maps a deployment state onto GitLab's: queued and
// in_progress are running, failure and error failed. ok is false for
// inactive, which GitLab has no use for: it treats the environment's
// latest successful deployment as current by itself. A state mlbot does
// not know is passed on as it is, for GitLab to refuse.
func glDeploymentStatus(s bot.DeploymentState) (status gl.DeploymentStatusValue, ok bool) {
	switch s {
	case bot.DeploymentQueued, bot.DeploymentInProgress:
		// CreateDeployment made it running already, and GitLab refuses
		// running → running: nothing to say.
		return "", false
	case bot.DeploymentSuccess:
		return gl.DeploymentStatusSuccess, true
	case bot.DeploymentFailure, bot.DeploymentError:
		return gl.DeploymentStatusFailed, true
	case bot.DeploymentInactive:
		return "", false
	}
	return gl.DeploymentStatusValue(s), true
}

// UpdateDeployment sets the status of deployment id
// (PUT /projects/:id/deployments/:deployment_id); see glDeploymentStatus
// for the mapping. DeploymentInactive, DeploymentQueued and
// DeploymentInProgress make no call at all. GitLab has no
// URL or description on deployments, so only st.State is used.
//
// GitLab refuses with a 400 to move a deployment to the status it
// already has (running to running: CreateDeployment already made it
// running, so queued and in_progress always meet this; or success again
// when a task is retried). After a 400 the deployment is read back, and
// when it already has the wanted status the call counts as done.
func (c *Client) UpdateDeployment(ctx context.Context, repo bot.Repo, id int64, st bot.DeploymentStatus) error {
	status, ok := glDeploymentStatus(st.State)
	if !ok {
		return nil
	}
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return err
	}
	path := deploymentsPath(pidPath) + "/" + strconv.FormatInt(id, 10)
	_, resp, err := c.api.Deployments.UpdateProjectDeployment(pid, id,
		&gl.UpdateProjectDeploymentOptions{Status: gl.Ptr(status)}, gl.WithContext(ctx))
	if err == nil {
		return nil
	}
	apiErr := apiError(http.MethodPut, path, resp, err)
	var he *bot.HostError
	if errors.As(apiErr, &he) && he.StatusCode == http.StatusBadRequest {
		if dep, _, err := c.api.Deployments.GetProjectDeployment(pid, id, gl.WithContext(ctx)); err == nil && dep.Status == string(status) {
			return nil
		}
	}
	return apiErr
}

func deploymentsPath(pidPath string) string {
	return "/projects/" + pidPath + "/deployments"
}
