package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

func TestDeploymentLifecycle(t *testing.T) {
	tests := []struct {
		name   string
		repo   bot.Repo
		states []bot.DeploymentState
		// want is the statuses GitLab records, and calls the requests
		// after the create.
		want  []string
		calls []string
	}{
		{
			name:   "in progress then success",
			repo:   bot.Repo{ID: testID},
			states: []bot.DeploymentState{bot.DeploymentInProgress, bot.DeploymentSuccess},
			want:   []string{"running", "success"},
			// The deployment is created running: in_progress needs no call.
			calls: []string{"PUT 200"},
		},
		{
			name:   "queued, in progress, failure",
			repo:   bot.Repo{FullName: testProject},
			states: []bot.DeploymentState{bot.DeploymentQueued, bot.DeploymentInProgress, bot.DeploymentFailure},
			want:   []string{"running", "failed"},
			calls:  []string{"PUT 200"},
		},
		{
			name:   "error is failed",
			repo:   bot.Repo{ID: testID},
			states: []bot.DeploymentState{bot.DeploymentError},
			want:   []string{"running", "failed"},
			calls:  []string{"PUT 200"},
		},
		{
			name:   "success twice, as a retried task does",
			repo:   bot.Repo{ID: testID},
			states: []bot.DeploymentState{bot.DeploymentSuccess, bot.DeploymentSuccess},
			want:   []string{"running", "success"},
			calls:  []string{"PUT 200", "PUT 400", "GET 200"},
		},
		{
			name:   "inactive makes no call",
			repo:   bot.Repo{ID: testID},
			states: []bot.DeploymentState{bot.DeploymentSuccess, bot.DeploymentInactive},
			want:   []string{"running", "success"},
			calls:  []string{"PUT 200"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, sim := newTestClient(t, testToken)
			in := bot.Deployment{Environment: "production", Ref: "main", SHA: testSHA, Description: "model v7", Production: true}
			got, err := c.CreateDeployment(ctx, tt.repo, in)
			if err != nil {
				t.Fatal(err)
			}
			want := in
			want.ID = got.ID
			if got.ID == 0 || got != want {
				t.Errorf("CreateDeployment = %+v, want %+v", got, want)
			}
			for i, st := range tt.states {
				err := c.UpdateDeployment(ctx, tt.repo, got.ID, bot.DeploymentStatus{State: st, LogURL: "https://mlbot.example/runs/1"})
				if err != nil {
					t.Fatalf("UpdateDeployment #%d (%s): %v", i, st, err)
				}
			}
			deps := sim.Deployments(testProject)
			if len(deps) != 1 {
				t.Fatalf("simulator holds %d deployments", len(deps))
			}
			d := deps[0]
			if d.ID != got.ID || d.Environment != "production" || d.Ref != "main" || d.SHA != testSHA || d.Tag ||
				d.Status != tt.want[len(tt.want)-1] || strings.Join(d.Statuses, ",") != strings.Join(tt.want, ",") {
				t.Errorf("deployment = %+v, want statuses %v", d, tt.want)
			}

			all := sim.Rec.Find("", "/deployments")
			var body map[string]any
			if err := json.Unmarshal(all[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			if all[0].Method != http.MethodPost || all[0].Status != 201 || body["environment"] != "production" ||
				body["ref"] != "main" || body["sha"] != testSHA || body["tag"] != false || body["status"] != "running" {
				t.Errorf("create: %s %s → %d", all[0].Method, all[0].Body, all[0].Status)
			}
			var calls []string
			for _, call := range all[1:] {
				calls = append(calls, call.Method+" "+strconv.Itoa(call.Status))
			}
			if strings.Join(calls, ", ") != strings.Join(tt.calls, ", ") {
				t.Errorf("calls after the create = %v, want %v", calls, tt.calls)
			}
		})
	}
}

func TestDeploymentErrors(t *testing.T) {
	hostError := func(code int, msg string, temporary bool) func(*testing.T, error) {
		return func(t *testing.T, err error) {
			t.Helper()
			var he *bot.HostError
			if !errors.As(err, &he) || he.StatusCode != code || !strings.Contains(he.Message, msg) || he.Temporary() != temporary {
				t.Errorf("err = %#v, want a HostError %d with %q", err, code, msg)
			}
		}
	}
	tests := []struct {
		name   string
		setup  func(*Simulator)
		create bot.Deployment // used when update is false
		update bool           // call UpdateDeployment on a fresh deployment
		id     int64          // deployment to update; 0 is the fresh one
		state  bot.DeploymentState
		check  func(*testing.T, error)
	}{
		{
			name:  "create: 502 is temporary",
			setup: func(s *Simulator) { s.Faults.Add(forgesim.Fault{Status: http.StatusBadGateway}) },
			check: hostError(502, "injected fault", true),
		},
		{
			name:   "update: 502 is temporary",
			setup:  func(s *Simulator) { s.Faults.Add(forgesim.Fault{Status: http.StatusBadGateway}) },
			update: true, state: bot.DeploymentSuccess,
			check: hostError(502, "injected fault", true),
		},
		{
			name: "create: 429",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "11"}})
			},
			check: wantRateLimit(11 * time.Second),
		},
		{
			name:   "update: rate limit spent",
			setup:  func(s *Simulator) { s.SetRateLimit(0, time.Now().Add(30*time.Second)) },
			update: true, state: bot.DeploymentFailure,
			check: func(t *testing.T, err error) {
				var rl *bot.RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter < 25*time.Second {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name:   "update: invalid status",
			update: true, state: "rolled_back",
			check: hostError(400, "status does not have a valid value", false),
		},
		{
			name:   "update: unknown deployment",
			update: true, id: 424242, state: bot.DeploymentSuccess,
			check: func(t *testing.T, err error) {
				hostError(404, "404", false)(t, err)
				if !errors.Is(err, bot.ErrNotFound) {
					t.Errorf("err = %v is not ErrNotFound", err)
				}
			},
		},
		{
			name:   "create: missing ref",
			create: bot.Deployment{Environment: "production", SHA: testSHA},
			check:  hostError(400, "ref is missing", false),
		},
		{
			name:   "create: missing environment and sha",
			create: bot.Deployment{Ref: "main"},
			check:  hostError(400, "environment is missing, sha is missing", false),
		},
		{
			name: "create: ref unknown to GitLab",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusBadRequest, Body: `{"message":{"ref":["The branch or tag does not exist"]}}`})
			},
			check: hostError(400, "The branch or tag does not exist", false),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, sim := newTestClient(t, testToken)
			repo := bot.Repo{ID: testID}
			var err error
			if tt.update {
				d, cerr := c.CreateDeployment(ctx, repo, bot.Deployment{Environment: "production", Ref: "main", SHA: testSHA})
				if cerr != nil {
					t.Fatal(cerr)
				}
				id := tt.id
				if id == 0 {
					id = d.ID
				}
				if tt.setup != nil {
					tt.setup(sim)
				}
				err = c.UpdateDeployment(ctx, repo, id, bot.DeploymentStatus{State: tt.state})
				if st := sim.Deployments(testProject)[0].Statuses; len(st) != 1 {
					t.Errorf("a refused update left statuses %v", st)
				}
			} else {
				if tt.setup != nil {
					tt.setup(sim)
				}
				in := tt.create
				if in == (bot.Deployment{}) {
					in = bot.Deployment{Environment: "production", Ref: "main", SHA: testSHA}
				}
				var got bot.Deployment
				got, err = c.CreateDeployment(ctx, repo, in)
				if got != (bot.Deployment{}) {
					t.Errorf("deployment %+v alongside error %v", got, err)
				}
				if n := len(sim.Deployments(testProject)); n != 0 {
					t.Errorf("a refused create left %d deployments", n)
				}
			}
			tt.check(t, err)
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

// The simulator's listing and lookup, through gl, as GitLab answers them.
func TestSimulatorDeployments(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestClient(t, testToken)
	repo := bot.Repo{ID: testID}
	var ids []int64
	for i, env := range []string{"staging", "production", "staging", "staging"} {
		d, err := c.CreateDeployment(ctx, repo, bot.Deployment{Environment: env, Ref: "main", SHA: testSHA})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
		if i < 2 {
			if err := c.UpdateDeployment(ctx, repo, d.ID, bot.DeploymentStatus{State: bot.DeploymentSuccess}); err != nil {
				t.Fatal(err)
			}
		}
	}
	list, resp, err := c.api.Deployments.ListProjectDeployments(testID, &gl.ListProjectDeploymentsOptions{
		Environment: gl.Ptr("staging"), ListOptions: gl.ListOptions{PerPage: 2},
	})
	if err != nil || len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[2] || resp.NextPage != 2 || resp.TotalItems != 3 {
		t.Fatalf("page 1 = %v, next %d, %v", list, resp.NextPage, err)
	}
	if list[0].Environment == nil || list[0].Environment.Name != "staging" || list[0].Environment.Slug != "staging" || list[0].Status != "success" {
		t.Errorf("listed deployment = %+v", list[0])
	}
	list, _, err = c.api.Deployments.ListProjectDeployments(testID, &gl.ListProjectDeploymentsOptions{
		Environment: gl.Ptr("staging"), Status: gl.Ptr("running"), Sort: gl.Ptr("desc"),
	})
	if err != nil || len(list) != 2 || list[0].ID != ids[3] || list[1].ID != ids[2] {
		t.Errorf("running staging deployments, newest first = %v, %v", list, err)
	}
	_, resp, err = c.api.Deployments.ListProjectDeployments(testID, &gl.ListProjectDeploymentsOptions{Status: gl.Ptr("bogus")})
	if err == nil || resp.StatusCode != 400 {
		t.Errorf("bad status filter: %v", err)
	}
	d, _, err := c.api.Deployments.GetProjectDeployment(testProject, ids[1])
	if err != nil || d.Status != "success" || d.Environment.Name != "production" || d.Environment.Tier != "production" ||
		d.Ref != "main" || d.SHA != testSHA || d.IID != 2 || d.User == nil || d.User.Username != "mlbot" {
		t.Errorf("GetProjectDeployment = %+v, %v", d, err)
	}
	if _, resp, err := c.api.Deployments.GetProjectDeployment(testID, 999999); err == nil || resp.StatusCode != 404 {
		t.Errorf("unknown deployment: %v", err)
	}
	// Production and staging are distinct environments with their own ids.
	if list[0].Environment.ID == d.Environment.ID {
		t.Errorf("staging and production share environment id %d", d.Environment.ID)
	}
}
