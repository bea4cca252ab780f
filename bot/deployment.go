package bot

// DeploymentState is the state of a deployment record on the host, in
// GitHub's vocabulary; GitLab maps it onto running/success/failed/canceled.
type DeploymentState string

// Deployment states.
const (
	DeploymentQueued     DeploymentState = "queued"
	DeploymentInProgress DeploymentState = "in_progress"
	DeploymentSuccess    DeploymentState = "success"
	DeploymentFailure    DeploymentState = "failure"
	DeploymentError      DeploymentState = "error"
	// DeploymentInactive marks the deployment a newer one replaced
	// (GitHub only; GitLab tracks it itself).
	DeploymentInactive DeploymentState = "inactive"
)

// Deployment is a deployment record on the host: GitHub's Deployments API,
// GitLab's deployments of an environment.
type Deployment struct {
	// ID is the host's id, set by CreateDeployment.
	ID int64 `json:"id,omitempty"`
	// Environment is the environment's name ("production").
	Environment string `json:"environment"`
	// Ref is the branch the deployed commit belongs to (GitLab requires
	// one); SHA is the deployed commit.
	Ref string `json:"ref"`
	SHA string `json:"sha"`
	// Description says what is deployed ("model v7").
	Description string `json:"description,omitempty"`
	// Production marks a production environment (GitHub).
	Production bool `json:"production,omitempty"`
}

// DeploymentStatus is a state change of a deployment.
type DeploymentStatus struct {
	State DeploymentState
	// LogURL links the deploy's log (mlbot's run page).
	LogURL string
	// EnvironmentURL is where the deployed model answers.
	EnvironmentURL string
	Description    string
}
